"""AWS Signature Version 2 (HMAC-SHA1), header (`Authorization: AWS key:sig`) and query string
(`AWSAccessKeyId`, `Expires`, `Signature`). boto3 still presigns with it by default for a custom
endpoint in us-east-1, so the gateway must accept it. Pure functions, like the SigV4 verifier."""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

from dfstore.errors import AccessDenied, InvalidAccessKeyId, RequestTimeTooSkewed, SignatureDoesNotMatch
from gateway.errors import ExpiredPresignedRequest
from gateway.signed import UNSIGNED_PAYLOAD, AuthContext, SignedRequest

# Query parameters that are part of the signed resource (the S3 developer guide's list).
SUB_RESOURCES = frozenset(
    "acl cors delete lifecycle location logging notification partNumber policy requestPayment restore tagging "
    "torrent uploadId uploads versionId versioning versions website response-cache-control "
    "response-content-disposition response-content-encoding response-content-language response-content-type "
    "response-expires".split()
)


def canonical_resource(req: SignedRequest, bucket_prefix: str = "") -> str:
    pairs = sorted((k, v) for k, v in req.query if k in SUB_RESOURCES)
    resource = bucket_prefix + (req.raw_path or "/")
    if pairs:
        resource += "?" + "&".join(f"{k}={v}" if v else k for k, v in pairs)
    return resource


def string_to_sign(req: SignedRequest, date_or_expires: str, bucket_prefix: str = "") -> str:
    amz = sorted(
        (name, ",".join(v.strip() for v in values))
        for name, values in req.headers.items()
        if name.startswith("x-amz-")
    )
    lines = [req.method, req.header("content-md5"), req.header("content-type"), date_or_expires]
    return "\n".join(lines) + "\n" + "".join(f"{n}:{v}\n" for n, v in amz) + canonical_resource(req, bucket_prefix)


def signature(secret: str, text: str) -> str:
    return base64.b64encode(hmac.new(secret.encode(), text.encode(), hashlib.sha1).digest()).decode()


def _check(req: SignedRequest, secret: str, given: str, date_or_expires: str, access_key: str) -> AuthContext:
    expected = signature(secret, string_to_sign(req, date_or_expires))
    if not hmac.compare_digest(expected, given):
        raise SignatureDoesNotMatch(
            "The request signature we calculated does not match the signature you provided. "
            "Check your key and signing method."
        )
    return AuthContext(access_key, "", "", b"", given, UNSIGNED_PAYLOAD)


def verify_header(
    req: SignedRequest, credentials: Mapping[str, str], now: datetime, max_skew: timedelta
) -> AuthContext:
    access_key, _, given = req.header("authorization")[len("AWS "):].strip().rpartition(":")
    secret = credentials.get(access_key)
    if secret is None:
        raise InvalidAccessKeyId("The AWS Access Key Id you provided does not exist in our records.")
    raw_date = req.header("x-amz-date") or req.header("date")
    try:
        when = parsedate_to_datetime(raw_date)
    except (TypeError, ValueError, IndexError):
        raise AccessDenied("AWS authentication requires a valid Date or x-amz-date header") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if abs(now - when) > max_skew:
        raise RequestTimeTooSkewed("The difference between the request time and the server's time is too large.")
    # With x-amz-date present the Date line is empty: x-amz-date is signed among the x-amz-* headers.
    date_line = "" if req.header("x-amz-date") else req.header("date")
    return _check(req, secret, given, date_line, access_key)


def verify_presigned(req: SignedRequest, credentials: Mapping[str, str], now: datetime) -> AuthContext:
    access_key = req.query_value("AWSAccessKeyId") or ""
    given = req.query_value("Signature") or ""
    expires = req.query_value("Expires") or ""
    secret = credentials.get(access_key)
    if secret is None:
        raise InvalidAccessKeyId("The AWS Access Key Id you provided does not exist in our records.")
    if not expires.isdigit():
        raise AccessDenied("Query-string authentication requires the Signature, Expires and AWSAccessKeyId parameters")
    if now.timestamp() > int(expires):
        raise ExpiredPresignedRequest("Request has expired")
    return _check(req, secret, given, expires, access_key)
