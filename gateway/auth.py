"""AWS Signature V4 verification as pure functions (the shape of minio's signer, run backwards).

Nothing here does I/O: the app turns an aiohttp request into a `SignedRequest`, `verify()` checks it
and returns the `AuthContext` the body decoder needs to check aws-chunked chunk signatures.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from functools import lru_cache
from urllib.parse import quote, unquote

from dfstore.errors import AccessDenied, InvalidAccessKeyId, RequestTimeTooSkewed, SignatureDoesNotMatch
from gateway import sigv2
from gateway.errors import (
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    ExpiredPresignedRequest,
    MissingContentSHA256,
)
from gateway.signed import UNSIGNED_PAYLOAD, AuthContext, SignedRequest

ALGORITHM = "AWS4-HMAC-SHA256"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
STREAMING_SIGNED_TRAILER = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER"
STREAMING_UNSIGNED_TRAILER = "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_PRESIGN_EXPIRES_S = 7 * 24 * 3600
AMZ_DATE_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Credential:
    access_key: str
    date: str
    region: str
    service: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*")
_UNRESERVED_PATH = re.compile(r"[A-Za-z0-9_.~/-]*")
_AMZ_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z")


def uri_encode(value: str, *, keep_slash: bool = False) -> str:
    """RFC 3986 encoding as SigV4 wants it: only A-Z a-z 0-9 - . _ ~ stay (and '/' in paths)."""
    if (_UNRESERVED_PATH if keep_slash else _UNRESERVED).fullmatch(value):
        return value  # the common case, without quote()'s cost (a dozen calls per request)
    return quote(value, safe="/~" if keep_slash else "~")


def canonical_query(query: Sequence[tuple[str, str]], *, exclude: str = "") -> str:
    pairs = sorted((uri_encode(k), uri_encode(v)) for k, v in query if k != exclude)
    return "&".join(f"{k}={v}" for k, v in pairs)


def canonical_headers(headers: Mapping[str, Sequence[str]], signed: Sequence[str]) -> str:
    lines = []
    for name in signed:
        values = headers.get(name, ())
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}\n")
    return "".join(lines)


def canonical_request(
    method: str, uri: str, query: str, headers: Mapping[str, Sequence[str]], signed: Sequence[str], payload: str
) -> str:
    return "\n".join(
        [method, uri, query, canonical_headers(headers, signed), ";".join(signed), payload]
    )


def string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
    return "\n".join([ALGORITHM, amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()])


@lru_cache(maxsize=64)
def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = _hmac(("AWS4" + secret).encode(), date)
    key = _hmac(key, region)
    key = _hmac(key, service)
    return _hmac(key, "aws4_request")


def sign(key: bytes, text: str) -> str:
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def chunk_string_to_sign(ctx: AuthContext, previous_signature: str, chunk_sha256: str) -> str:
    return "\n".join(
        ["AWS4-HMAC-SHA256-PAYLOAD", ctx.amz_date, ctx.scope, previous_signature, EMPTY_SHA256, chunk_sha256]
    )


def trailer_string_to_sign(ctx: AuthContext, previous_signature: str, trailer_block: bytes) -> str:
    digest = hashlib.sha256(trailer_block).hexdigest()
    return "\n".join(["AWS4-HMAC-SHA256-TRAILER", ctx.amz_date, ctx.scope, previous_signature, digest])


def parse_credential(value: str, error: type[Exception]) -> Credential:
    parts = value.split("/")
    if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0]:
        raise error(f"the credential {value!r} is malformed; expected <key>/<date>/<region>/s3/aws4_request")
    if parts[3] != "s3":
        raise error(f"the credential's service must be s3, not {parts[3]!r}")
    return Credential(parts[0], parts[1], parts[2], parts[3])


def parse_authorization(value: str) -> tuple[Credential, list[str], str]:
    """`AWS4-HMAC-SHA256 Credential=..., SignedHeaders=a;b, Signature=hex` -> parts."""
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise AuthorizationHeaderMalformed(f"unsupported authorization algorithm {algorithm!r}")
    fields: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, val = item.strip().partition("=")
        if sep:
            fields[name.strip()] = val.strip()
    try:
        credential = parse_credential(fields["Credential"], AuthorizationHeaderMalformed)
        signed = fields["SignedHeaders"].split(";")
        signature = fields["Signature"]
    except KeyError as exc:
        raise AuthorizationHeaderMalformed(f"the authorization header lacks {exc.args[0]}") from None
    return credential, signed, signature


def parse_amz_date(value: str) -> datetime | None:
    exact = _AMZ_DATE.fullmatch(value)
    try:
        if exact:  # what every client sends; strptime takes ~50 us for it
            y, mo, d, h, mi, sec = (int(part) for part in exact.groups())
            return datetime(y, mo, d, h, mi, sec, tzinfo=UTC)
        return datetime.strptime(value, AMZ_DATE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        pass
    try:
        parsed = parsedate_to_datetime(value)  # the plain Date header (RFC 7231)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def is_presigned(req: SignedRequest) -> bool:
    return req.query_value("X-Amz-Signature") is not None or req.query_value("X-Amz-Credential") is not None


def is_presigned_v2(req: SignedRequest) -> bool:
    return req.query_value("AWSAccessKeyId") is not None and req.query_value("Signature") is not None


def verify(
    req: SignedRequest,
    credentials: Mapping[str, str],
    *,
    now: datetime,
    max_skew: timedelta = timedelta(minutes=15),
) -> AuthContext:
    """Check the request's SigV4 signature (header or presigned). `credentials` maps access key -> secret."""
    authorization = req.header("authorization")
    if authorization.startswith("AWS "):
        return sigv2.verify_header(req, credentials, now, max_skew)
    if authorization:
        return _verify_header(req, credentials, now, max_skew)
    if is_presigned(req):
        return _verify_presigned(req, credentials, now)
    if is_presigned_v2(req):
        return sigv2.verify_presigned(req, credentials, now)
    raise AccessDenied("Access Denied: the request is not signed")


def _verify_header(
    req: SignedRequest, credentials: Mapping[str, str], now: datetime, max_skew: timedelta
) -> AuthContext:
    credential, signed, signature = parse_authorization(req.header("authorization"))
    secret = credentials.get(credential.access_key)
    if secret is None:
        raise InvalidAccessKeyId("The AWS Access Key Id you provided does not exist in our records.")
    raw_date = req.header("x-amz-date") or req.header("date")
    when = parse_amz_date(raw_date)
    if when is None:
        raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header")
    if abs(now - when) > max_skew:
        raise RequestTimeTooSkewed("The difference between the request time and the server's time is too large.")
    if "host" not in signed:
        raise AuthorizationHeaderMalformed("the host header must be signed")
    payload = req.header("x-amz-content-sha256")
    if not payload:
        raise MissingContentSHA256("x-amz-content-sha256 is required for header-signed requests")
    amz_date = req.header("x-amz-date") or when.strftime(AMZ_DATE_FORMAT)
    return _check_signature(
        req, credential, secret, signed, signature, amz_date, payload, query=canonical_query(req.query)
    )


def _verify_presigned(req: SignedRequest, credentials: Mapping[str, str], now: datetime) -> AuthContext:
    def need(name: str) -> str:
        value = req.query_value(name)
        if not value:
            raise AuthorizationQueryParametersError(f"the presigned URL lacks {name}")
        return value

    if need("X-Amz-Algorithm") != ALGORITHM:
        raise AuthorizationQueryParametersError("X-Amz-Algorithm must be AWS4-HMAC-SHA256")
    credential = parse_credential(need("X-Amz-Credential"), AuthorizationQueryParametersError)
    amz_date = need("X-Amz-Date")
    expires_s = need("X-Amz-Expires")
    signed = need("X-Amz-SignedHeaders").split(";")
    signature = need("X-Amz-Signature")
    secret = credentials.get(credential.access_key)
    if secret is None:
        raise InvalidAccessKeyId("The AWS Access Key Id you provided does not exist in our records.")
    when = parse_amz_date(amz_date)
    if when is None or not expires_s.isdigit():
        raise AuthorizationQueryParametersError("X-Amz-Date or X-Amz-Expires is malformed")
    if int(expires_s) > MAX_PRESIGN_EXPIRES_S:
        raise AuthorizationQueryParametersError("X-Amz-Expires must be less than a week (604800 seconds)")
    if now > when + timedelta(seconds=int(expires_s)):
        raise ExpiredPresignedRequest("Request has expired")
    payload = req.query_value("X-Amz-Content-Sha256") or UNSIGNED_PAYLOAD
    query = canonical_query(req.query, exclude="X-Amz-Signature")
    return _check_signature(req, credential, secret, signed, signature, amz_date, payload, query=query)


def _check_signature(
    req: SignedRequest,
    credential: Credential,
    secret: str,
    signed: list[str],
    signature: str,
    amz_date: str,
    payload: str,
    *,
    query: str,
) -> AuthContext:
    if not amz_date.startswith(credential.date):
        raise SignatureDoesNotMatch("the credential date does not match the request date")
    key = signing_key(secret, credential.date, credential.region, credential.service)
    for uri in _uri_candidates(req.raw_path):
        canonical = canonical_request(req.method, uri, query, req.headers, signed, payload)
        expected = sign(key, string_to_sign(amz_date, credential.scope, canonical))
        if hmac.compare_digest(expected, signature):
            return AuthContext(credential.access_key, amz_date, credential.scope, key, signature, payload)
    raise SignatureDoesNotMatch(
        "The request signature we calculated does not match the signature you provided. "
        "Check your key and signing method."
    )


def _uri_candidates(raw_path: str) -> list[str]:
    """Clients sign the path as they sent it, or as SigV4 would encode it; accept either."""
    sent = raw_path or "/"
    normalized = uri_encode(unquote(sent), keep_slash=True)
    return [sent] if normalized == sent else [sent, normalized]


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()
