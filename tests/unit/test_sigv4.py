"""SigV4 verification: the worked examples of the S3 API reference, and requests signed by botocore."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from dfstore.errors import AccessDenied, InvalidAccessKeyId, RequestTimeTooSkewed, SignatureDoesNotMatch
from gateway import auth
from gateway.errors import ExpiredPresignedRequest

KEY = "AKIAIOSFODNN7EXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
CREDS = {KEY: SECRET}
EXAMPLE_TIME = datetime(2013, 5, 24, 0, 0, 0, tzinfo=UTC)


def _request(method: str, url: str, headers: dict[str, str]) -> auth.SignedRequest:
    parts = urlsplit(url)
    query = []
    for item in parts.query.split("&"):
        if item:
            name, _, value = item.partition("=")
            query.append((unquote(name), unquote(value)))
    lowered: dict[str, list[str]] = {}
    for name, value in headers.items():
        lowered.setdefault(name.lower(), []).append(value)
    return auth.SignedRequest(method, parts.path or "/", query, lowered)


def test_s3_reference_get_object_example() -> None:
    """S3 API reference, "Example: GET Object" (header-signed, with a Range header)."""
    headers = {
        "Host": "examplebucket.s3.amazonaws.com",
        "Range": "bytes=0-9",
        "x-amz-content-sha256": auth.EMPTY_SHA256,
        "x-amz-date": "20130524T000000Z",
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={KEY}/20130524/us-east-1/s3/aws4_request,"
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,"
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
        ),
    }
    ctx = auth.verify(_request("GET", "http://examplebucket.s3.amazonaws.com/test.txt", headers), CREDS,
                      now=EXAMPLE_TIME)
    assert ctx.access_key == KEY
    assert ctx.scope == "20130524/us-east-1/s3/aws4_request"


def test_s3_reference_presigned_example() -> None:
    url = (
        "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
        f"&X-Amz-Credential={KEY}%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z"
        "&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
        "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    )
    req = _request("GET", url, {"Host": "examplebucket.s3.amazonaws.com"})
    assert auth.verify(req, CREDS, now=EXAMPLE_TIME + timedelta(hours=1)).payload_hash == auth.UNSIGNED_PAYLOAD
    with pytest.raises(ExpiredPresignedRequest):
        auth.verify(req, CREDS, now=EXAMPLE_TIME + timedelta(days=1, seconds=1))


def test_s3_reference_chunk_signatures() -> None:
    """S3 API reference, "Example: PUT Object" in aws-chunked with 64 KiB chunks."""
    ctx = auth.AuthContext(
        KEY, "20130524T000000Z", "20130524/us-east-1/s3/aws4_request",
        auth.signing_key(SECRET, "20130524", "us-east-1", "s3"),
        "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9", auth.STREAMING_SIGNED,
    )
    expected = [
        (65536, "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648"),
        (1024, "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497"),
        (0, "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9"),
    ]
    previous = ctx.seed_signature
    for size, signature in expected:
        digest = hashlib.sha256(b"a" * size).hexdigest()
        assert auth.sign(ctx.signing_key, auth.chunk_string_to_sign(ctx, previous, digest)) == signature
        previous = signature


def _botocore_signed(method: str, url: str, *, secret: str = SECRET, body: bytes = b"") -> auth.SignedRequest:
    request = AWSRequest(method=method, url=url, data=body)
    request.headers["x-amz-content-sha256"] = hashlib.sha256(body).hexdigest()
    S3SigV4Auth(Credentials(KEY, secret), "s3", "us-east-1").add_auth(request)
    return _request(method, request.url, dict(request.headers.items()) | {"Host": urlsplit(url).netloc})


@pytest.mark.parametrize(
    "key", ["plain.txt", "with space/and+plus", "per%cent", "ünïcödé/ключ", "trailing/", "a~b!c'd(e)*f"]
)
def test_botocore_header_signatures_verify(key: str) -> None:
    from botocore.utils import percent_encode

    url = f"http://127.0.0.1:9000/bucket/{percent_encode(key, safe='/~')}?prefix=a%2Bb&max-keys=3"
    ctx = auth.verify(_botocore_signed("GET", url), CREDS, now=datetime.now(UTC))
    assert ctx.access_key == KEY


def test_wrong_secret_wrong_key_skew_and_unsigned() -> None:
    url = "http://127.0.0.1:9000/bucket/key"
    with pytest.raises(SignatureDoesNotMatch):
        auth.verify(_botocore_signed("GET", url, secret="not-the-secret"), CREDS, now=datetime.now(UTC))
    with pytest.raises(InvalidAccessKeyId):
        auth.verify(_botocore_signed("GET", url), {"OTHER": SECRET}, now=datetime.now(UTC))
    later = datetime.now(UTC) + timedelta(minutes=16)  # the client's clock is 16 minutes behind ours
    with pytest.raises(RequestTimeTooSkewed):
        auth.verify(_botocore_signed("GET", url), CREDS, now=later)
    with pytest.raises(AccessDenied):
        auth.verify(_request("GET", url, {"Host": "127.0.0.1:9000"}), CREDS, now=datetime.now(UTC))


def test_tampered_header_fails() -> None:
    req = _botocore_signed("PUT", "http://127.0.0.1:9000/bucket/key", body=b"data")
    headers = dict(req.headers)
    headers["x-amz-content-sha256"] = [hashlib.sha256(b"other").hexdigest()]
    with pytest.raises(SignatureDoesNotMatch):
        auth.verify(auth.SignedRequest("PUT", req.raw_path, req.query, headers), CREDS, now=datetime.now(UTC))


def test_botocore_presigned_url_verifies() -> None:
    request = AWSRequest(method="GET", url="http://127.0.0.1:9000/bucket/some%20key")
    S3SigV4QueryAuth(Credentials(KEY, SECRET), "s3", "us-east-1", expires=60).add_auth(request)
    req = _request("GET", request.url, {"Host": "127.0.0.1:9000"})
    assert auth.verify(req, CREDS, now=datetime.now(UTC)).access_key == KEY
    with pytest.raises(ExpiredPresignedRequest):
        auth.verify(req, CREDS, now=datetime.now(UTC) + timedelta(seconds=120))
