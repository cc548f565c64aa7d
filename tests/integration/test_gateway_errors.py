"""Bad input gets the right S3 error, every response has a request id, and the process survives.

Requests are signed with botocore's signer and sent with http.client, so the test controls every
byte (no Content-Length, odd Expect values, aws-chunked bodies, garbage).
"""

from __future__ import annotations

import hashlib
import http.client
import io
import random
import socket
import time
import uuid
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, urlsplit

import pytest
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.httpchecksum import (
    AwsChunkedWrapper,
    BaseChecksum,
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc64NvmeChecksum,
)

from gateway import auth as sigv4
from tests.integration.gateway_fixtures import Gateway, running_gateway


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("gw")) as gateway:
        yield gateway


@pytest.fixture(scope="module")
def bucket(gw: Gateway) -> str:
    name = f"e-{uuid.uuid4().hex[:12]}"
    gw.client().create_bucket(Bucket=name)
    return name


def _signed_headers(gw: Gateway, method: str, path: str, *, body: bytes = b"", headers: dict[str, str] | None = None,
                    payload: str | None = None, secret: str | None = None, key: str | None = None) -> dict[str, str]:
    request = AWSRequest(method=method, url=gw.endpoint + path, data=body, headers=headers or {})
    request.headers["x-amz-content-sha256"] = payload or hashlib.sha256(body).hexdigest()
    signer = S3SigV4Auth(Credentials(key or gw.access_key, secret or gw.secret_key), "s3", gw.region)
    if payload is not None:
        signer.payload = lambda _request: payload
    signer.add_auth(request)
    return dict(request.headers.items())


def _send(gw: Gateway, method: str, path: str, body: bytes | None = None,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def _code(body: bytes) -> str:
    return ET.fromstring(body).findtext("Code") or ""


def _check_error(result: tuple[int, dict[str, str], bytes], status: int, code: str) -> None:
    got_status, headers, body = result
    assert (got_status, _code(body)) == (status, code), body[:300]
    assert headers["content-type"].startswith("application/xml")
    assert headers["x-amz-request-id"]
    assert ET.fromstring(body).findtext("RequestId") == headers["x-amz-request-id"]


def test_wrong_signature_wrong_key_and_unsigned(gw: Gateway, bucket: str) -> None:
    path = f"/{bucket}/k"
    _check_error(_send(gw, "GET", path, headers=_signed_headers(gw, "GET", path, secret="wrong")), 403,
                 "SignatureDoesNotMatch")
    _check_error(_send(gw, "GET", path, headers=_signed_headers(gw, "GET", path, key="NOPE")), 403,
                 "InvalidAccessKeyId")
    _check_error(_send(gw, "GET", path), 403, "AccessDenied")


def test_clock_skew(gw: Gateway, bucket: str) -> None:
    path = f"/{bucket}/k"
    headers = _signed_headers(gw, "GET", path)
    skewed = (datetime.now(UTC) - timedelta(minutes=20)).strftime(sigv4.AMZ_DATE_FORMAT)
    # Re-sign with the skewed date so only the clock is wrong, not the signature.
    creds = {gw.access_key: gw.secret_key}
    headers["X-Amz-Date"] = skewed
    signed = ["host", "x-amz-content-sha256", "x-amz-date"]
    canonical = sigv4.canonical_request(
        "GET", path, "", {"host": [f"127.0.0.1:{gw.port}"], "x-amz-content-sha256": [sigv4.EMPTY_SHA256],
                          "x-amz-date": [skewed]}, signed, sigv4.EMPTY_SHA256)
    scope = f"{skewed[:8]}/{gw.region}/s3/aws4_request"
    key = sigv4.signing_key(creds[gw.access_key], skewed[:8], gw.region, "s3")
    signature = sigv4.sign(key, sigv4.string_to_sign(skewed, scope, canonical))
    headers = {"X-Amz-Date": skewed, "x-amz-content-sha256": sigv4.EMPTY_SHA256,
               "Authorization": f"AWS4-HMAC-SHA256 Credential={gw.access_key}/{scope}, "
                                f"SignedHeaders={';'.join(signed)}, Signature={signature}"}
    _check_error(_send(gw, "GET", path, headers=headers), 403, "RequestTimeTooSkewed")


def test_expired_presigned_url(gw: Gateway, bucket: str) -> None:
    gw.client().put_object(Bucket=bucket, Key="pre", Body=b"x")
    request = AWSRequest(method="GET", url=f"{gw.endpoint}/{bucket}/pre")
    S3SigV4QueryAuth(Credentials(gw.access_key, gw.secret_key), "s3", gw.region, expires=1).add_auth(request)
    url = urlsplit(request.url)
    assert _send(gw, "GET", f"{url.path}?{url.query}")[0] == 200
    time.sleep(2.1)
    status, _, body = _send(gw, "GET", f"{url.path}?{url.query}")
    assert (status, _code(body)) == (403, "AccessDenied") and b"expired" in body


def test_unknown_bucket_and_key_and_head_without_body(gw: Gateway, bucket: str) -> None:
    path = "/no-such-bucket-here/k"
    _check_error(_send(gw, "GET", path, headers=_signed_headers(gw, "GET", path)), 404, "NoSuchBucket")
    _check_error(_send(gw, "GET", "/no-such-bucket-here", headers=_signed_headers(gw, "GET", "/no-such-bucket-here")),
                 404, "NoSuchBucket")
    path = f"/{bucket}/missing"
    _check_error(_send(gw, "GET", path, headers=_signed_headers(gw, "GET", path)), 404, "NoSuchKey")
    status, headers, body = _send(gw, "HEAD", path, headers=_signed_headers(gw, "HEAD", path))
    assert (status, body) == (404, b"") and headers["x-amz-request-id"]


def test_range_nine_to_three(gw: Gateway, bucket: str) -> None:
    gw.client().put_object(Bucket=bucket, Key="ten", Body=b"0123456789")
    path = f"/{bucket}/ten"
    headers = _signed_headers(gw, "GET", path, headers={"Range": "bytes=9-3"})
    _check_error(_send(gw, "GET", path, headers=headers), 416, "InvalidRange")
    headers = _signed_headers(gw, "GET", path, headers={"Range": "bytes=20-"})
    result = _send(gw, "GET", path, headers=headers)
    _check_error(result, 416, "InvalidRange")
    assert result[1]["content-range"] == "bytes */10"


def test_key_too_long(gw: Gateway, bucket: str) -> None:
    path = f"/{bucket}/" + quote("k" * 2048)
    headers = _signed_headers(gw, "PUT", path, body=b"x")
    _check_error(_send(gw, "PUT", path, body=b"x", headers=headers), 400, "KeyTooLongError")


def test_malformed_xml_and_bad_part_order(gw: Gateway, bucket: str) -> None:
    s3 = gw.client()
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    path = f"/{bucket}/mp?uploadId={upload}"
    body = b"<CompleteMultipartUpload><Part><PartNumber>1"
    _check_error(_send(gw, "POST", path, body, _signed_headers(gw, "POST", path, body=body)), 400, "MalformedXML")
    etags = [s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=n, Body=b"p" * (5 * 1024 * 1024))
             ["ETag"] for n in (1, 2)]
    parts = [{"PartNumber": 2, "ETag": etags[1]}, {"PartNumber": 1, "ETag": etags[0]}]
    with pytest.raises(s3.exceptions.ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload, MultipartUpload={"Parts": parts})
    assert exc.value.response["Error"]["Code"] == "InvalidPartOrder"
    with pytest.raises(s3.exceptions.ClientError) as exc:
        s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]})
    assert exc.value.response["Error"]["Code"] == "InvalidPart"


def test_missing_content_length_and_expect(gw: Gateway, bucket: str) -> None:
    path = f"/{bucket}/nolen"
    headers = _signed_headers(gw, "PUT", path, payload=sigv4.UNSIGNED_PAYLOAD)
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
    conn.putrequest("PUT", path, skip_accept_encoding=True)
    for name, value in headers.items():
        conn.putheader(name, value)
    conn.putheader("Transfer-Encoding", "chunked")
    conn.endheaders()
    conn.send(b"5\r\nhello\r\n0\r\n\r\n")
    resp = conn.getresponse()
    assert resp.status == 411 and _code(resp.read()) == "MissingContentLength"
    conn.close()
    # An Expect value we do not know is ignored, not answered with 417.
    path = f"/{bucket}/expect"
    headers = _signed_headers(gw, "PUT", path, body=b"abc", headers={"Expect": "something-else"})
    assert _send(gw, "PUT", path, b"abc", headers)[0] == 200


def _head(gw: Gateway, method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{gw.port}"] + [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def test_expect_100_continue_waits_for_auth(gw: Gateway, bucket: str) -> None:
    path = f"/{bucket}/cont"
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        headers = _signed_headers(gw, "PUT", path, body=b"abc", headers={"Expect": "100-continue"})
        sock.sendall(_head(gw, "PUT", path, headers | {"Content-Length": "3"}))
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue")
        sock.sendall(b"abc")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        headers = _signed_headers(gw, "PUT", path, body=b"abc", headers={"Expect": "100-continue"}, secret="bad")
        sock.sendall(_head(gw, "PUT", path, headers | {"Content-Length": "3"}))
        assert sock.recv(4096).startswith(b"HTTP/1.1 403")  # refused before the body is sent


TRAILER_CHECKSUMS: dict[str, type[BaseChecksum]] = {
    "crc32": Crc32Checksum, "crc32c": CrtCrc32cChecksum, "crc64nvme": CrtCrc64NvmeChecksum,
}


def _chunked_put(gw: Gateway, path: str, payload: bytes, *, damage: bool = False, algorithm: str = "crc32",
                 transfer_chunked: bool = False) -> tuple[int, dict[str, str], bytes]:
    """botocore's own aws-chunked encoder with an unsigned trailing x-amz-checksum-<algorithm>."""
    trailer = f"x-amz-checksum-{algorithm}"
    body = AwsChunkedWrapper(io.BytesIO(payload), checksum_cls=TRAILER_CHECKSUMS[algorithm],
                             checksum_name=trailer).read()
    if damage:
        body = body.replace(f"{trailer}:".encode(), f"{trailer}:A".encode())
    extra = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(payload)),
             "x-amz-trailer": trailer, "x-amz-sdk-checksum-algorithm": algorithm.upper()}
    headers = _signed_headers(gw, "PUT", path, headers=extra, payload=sigv4.STREAMING_UNSIGNED_TRAILER)
    if not transfer_chunked:
        headers["Content-Length"] = str(len(body))
        return _send(gw, "PUT", path, body, headers)
    # No Content-Length at all: HTTP chunked transfer around the aws-chunked body (aws-sdk-go does this).
    conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=20)
    try:
        conn.request("PUT", path, body=iter([body[:70000], body[70000:]]), headers=headers, encode_chunked=True)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("algorithm", sorted(TRAILER_CHECKSUMS))
def test_aws_chunked_trailer_checksum(gw: Gateway, bucket: str, algorithm: str) -> None:
    payload = bytes(range(256)) * 4200  # a little over 1 MiB: two chunks
    expected = TRAILER_CHECKSUMS[algorithm]()
    expected.update(payload)
    status, headers, _ = _chunked_put(gw, f"/{bucket}/trailer", payload, algorithm=algorithm)
    assert status == 200 and headers["etag"] == f'"{hashlib.md5(payload).hexdigest()}"'
    assert headers[f"x-amz-checksum-{algorithm}"] == expected.b64digest()
    got = gw.client().get_object(Bucket=bucket, Key="trailer", ChecksumMode="ENABLED")
    assert got["Body"].read() == payload  # the trailer's checksum was kept, and boto3 validated it
    assert got["ResponseMetadata"]["HTTPHeaders"][f"x-amz-checksum-{algorithm}"] == expected.b64digest()
    status, _, _ = _chunked_put(gw, f"/{bucket}/trailer-te", payload, algorithm=algorithm, transfer_chunked=True)
    assert status == 200
    assert gw.client().get_object(Bucket=bucket, Key="trailer-te")["Body"].read() == payload
    status, _, body = _chunked_put(gw, f"/{bucket}/trailer-bad", payload, algorithm=algorithm, damage=True)
    assert status == 400 and _code(body) == "BadDigest"
    with pytest.raises(gw.client().exceptions.ClientError):
        gw.client().head_object(Bucket=bucket, Key="trailer-bad")


def test_sha256_mismatch(gw: Gateway, bucket: str) -> None:
    path = f"/{bucket}/sha"
    headers = _signed_headers(gw, "PUT", path, body=b"right")
    _check_error(_send(gw, "PUT", path, b"wrong", headers), 400, "XAmzContentSHA256Mismatch")


def test_survives_garbage(gw: Gateway, bucket: str) -> None:
    junk = [b"\x00\xff" * 100 + b"\r\n\r\n", b"GET /" + b"a" * 100000 + b" HTTP/1.1\r\n\r\n",
            b"PUT /x/y HTTP/1.1\r\nContent-Length: -5\r\n\r\n", b"GET / HTTP/1.1\r\nHost: [\r\n\r\n"]
    for data in junk:
        with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            sock.recv(4096)
    # A client that goes away halfway through a PUT leaves nothing behind.
    path = f"/{bucket}/half"
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        headers = _signed_headers(gw, "PUT", path, payload=sigv4.UNSIGNED_PAYLOAD)
        sock.sendall(_head(gw, "PUT", path, headers | {"Content-Length": "100000"}) + b"a" * 10)
        time.sleep(0.2)
    time.sleep(0.3)
    with pytest.raises(gw.client().exceptions.ClientError):
        gw.client().head_object(Bucket=bucket, Key="half")
    path = "/" + bucket + "/%ff%fe"
    assert _send(gw, "GET", path, headers=_signed_headers(gw, "GET", path))[0] in (400, 403, 404)
    assert "Buckets" in gw.client().list_buckets()  # still serving


def _signed_chunked_body(gw: Gateway, headers: dict[str, str], payload: bytes, chunk: int) -> bytes:
    """Frame `payload` as STREAMING-AWS4-HMAC-SHA256-PAYLOAD, chaining signatures from the seed."""
    authorization = headers["Authorization"]
    seed = authorization.rsplit("Signature=", 1)[1]
    amz_date = headers["X-Amz-Date"]
    scope = f"{amz_date[:8]}/{gw.region}/s3/aws4_request"
    ctx = sigv4.AuthContext(gw.access_key, amz_date, scope,
                            sigv4.signing_key(gw.secret_key, amz_date[:8], gw.region, "s3"), seed,
                            sigv4.STREAMING_SIGNED)
    out, previous = b"", seed
    pieces = [payload[i:i + chunk] for i in range(0, len(payload), chunk)] + [b""]
    for piece in pieces:
        sig = sigv4.sign(ctx.signing_key,
                         sigv4.chunk_string_to_sign(ctx, previous, hashlib.sha256(piece).hexdigest()))
        out += f"{len(piece):x};chunk-signature={sig}\r\n".encode() + piece + b"\r\n"
        previous = sig
    return out


def test_signed_aws_chunked_upload(gw: Gateway, bucket: str) -> None:
    payload = bytes(range(256)) * 700  # 179200 bytes in 64 KiB chunks, as the Java SDK sends
    path = f"/{bucket}/signed-chunks"
    extra = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": str(len(payload))}
    headers = _signed_headers(gw, "PUT", path, headers=extra, payload=sigv4.STREAMING_SIGNED)
    body = _signed_chunked_body(gw, headers, payload, 65536)
    status, _, text = _send(gw, "PUT", path, body, headers | {"Content-Length": str(len(body))})
    assert status == 200, text
    assert gw.client().get_object(Bucket=bucket, Key="signed-chunks")["Body"].read() == payload
    headers = _signed_headers(gw, "PUT", path + "-bad", headers=extra, payload=sigv4.STREAMING_SIGNED)
    body = _signed_chunked_body(gw, headers, payload, 65536).replace(b"\x00\x01\x02", b"\x00\x01\x03", 1)
    _check_error(_send(gw, "PUT", path + "-bad", body, headers | {"Content-Length": str(len(body))}), 403,
                 "SignatureDoesNotMatch")


def test_overlapping_uploads_of_one_part(gw: Gateway, bucket: str) -> None:
    """A resent part 1 overlaps the first attempt: neither stalls, the last to finish is the part."""
    s3 = gw.client()
    upload = s3.create_multipart_upload(Bucket=bucket, Key="overlap")["UploadId"]
    path = f"/{bucket}/overlap?partNumber=1&uploadId={upload}"
    first, second = b"1" * 200_000, b"2" * 200_000
    slow = socket.create_connection(("127.0.0.1", gw.port), timeout=10)
    headers = _signed_headers(gw, "PUT", path, body=first)
    slow.sendall(_head(gw, "PUT", path, headers | {"Content-Length": str(len(first))}) + first[:1000])
    time.sleep(0.2)
    headers = _signed_headers(gw, "PUT", path, body=second)
    status, resp_headers, _ = _send(gw, "PUT", path, second, headers)  # completes while `slow` is open
    assert status == 200 and resp_headers["etag"] == f'"{hashlib.md5(second).hexdigest()}"'
    slow.sendall(first[1000:])
    assert slow.recv(4096).startswith(b"HTTP/1.1 200")
    slow.close()
    parts = s3.list_parts(Bucket=bucket, Key="overlap", UploadId=upload)["Parts"]
    assert [p["ETag"] for p in parts] == [f'"{hashlib.md5(first).hexdigest()}"']
    s3.complete_multipart_upload(Bucket=bucket, Key="overlap", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": parts[0]["ETag"]}]})
    assert s3.get_object(Bucket=bucket, Key="overlap")["Body"].read() == first


def test_virtual_host_style(tmp_path_factory: pytest.TempPathFactory) -> None:
    with running_gateway(tmp_path_factory.mktemp("vhost"), domain="s3.local") as vgw:
        s3 = vgw.client()
        s3.create_bucket(Bucket="vbucket")
        s3.put_object(Bucket="vbucket", Key="a/b", Body=b"vh")
        path = "/a/b"
        host = f"vbucket.s3.local:{vgw.port}"
        request = AWSRequest(method="GET", url=f"http://{host}{path}", headers={})
        request.headers["x-amz-content-sha256"] = sigv4.EMPTY_SHA256
        S3SigV4Auth(Credentials(vgw.access_key, vgw.secret_key), "s3", vgw.region).add_auth(request)
        status, _, body = _send(vgw, "GET", path, headers=dict(request.headers.items()) | {"Host": host})
        assert (status, body) == (200, b"vh")


def test_content_md5(gw: Gateway, bucket: str) -> None:
    import base64

    path = f"/{bucket}/md5"
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    headers = _signed_headers(gw, "PUT", path, body=b"data", headers={"Content-MD5": wrong})
    _check_error(_send(gw, "PUT", path, b"data", headers), 400, "BadDigest")
    headers = _signed_headers(gw, "PUT", path, body=b"data", headers={"Content-MD5": "not base64!"})
    _check_error(_send(gw, "PUT", path, b"data", headers), 400, "InvalidDigest")
    right = base64.b64encode(hashlib.md5(b"data").digest()).decode()
    headers = _signed_headers(gw, "PUT", path, body=b"data", headers={"Content-MD5": right})
    assert _send(gw, "PUT", path, b"data", headers)[0] == 200


def test_random_signed_requests_never_crash(gw: Gateway, bucket: str) -> None:
    """Signed requests with odd methods, sub-resources, headers and bodies: always an S3 answer, never a 500."""
    rng = random.Random(11)
    gw.client().put_object(Bucket=bucket, Key="fuzz", Body=b"0123456789")
    methods = ["GET", "PUT", "POST", "DELETE", "HEAD", "PATCH", "OPTIONS"]
    paths = ["/", f"/{bucket}", f"/{bucket}/fuzz", f"/{bucket}/new", "/Bad_Bucket/x", f"/{bucket}/a%00b"]
    queries = ["", "uploads", "uploadId=zz", "partNumber=0&uploadId=zz", "partNumber=99999&uploadId=zz",
               "list-type=2&continuation-token=!!", "max-keys=-1", "encoding-type=xml", "delete", "location",
               "partNumber=x", "acl", "versionId=1", "response-content-type=a%0d%0ab"]
    header_sets = [
        {}, {"Range": "bytes=a-b"}, {"Range": "bytes=5-1,7-9"}, {"x-amz-copy-source": "%ff"},
        {"x-amz-copy-source": f"/{bucket}/fuzz", "x-amz-metadata-directive": "MOVE"},
        {"x-amz-copy-source": f"{bucket}/fuzz", "x-amz-copy-source-range": "bytes=9-1"},
        {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": "zz"},
        {"x-amz-trailer": "x-amz-checksum-md5"}, {"x-amz-checksum-crc32": "!!"},
        {"If-Modified-Since": "yesterday"}, {"Content-MD5": "AAAA"},
    ]
    bodies = [b"", b"<Delete><Object><Key>fuzz</Key></Object></Delete>", b"\x00" * 100, b"<a>" * 50]
    deadline = time.monotonic() + 60
    for _ in range(150):
        if time.monotonic() > deadline:
            break
        method, path, query = rng.choice(methods), rng.choice(paths), rng.choice(queries)
        target = f"{path}?{query}" if query else path
        body = rng.choice(bodies) if method in ("PUT", "POST") else b""
        headers = _signed_headers(gw, method, target, body=body, headers=dict(rng.choice(header_sets)))
        status, resp_headers, _ = _send(gw, method, target, body, headers)
        assert status < 500 or status == 501, (method, target, headers, status)
        assert resp_headers.get("x-amz-request-id"), (method, target)
    gw.client().put_object(Bucket=bucket, Key="after-fuzz", Body=b"alive")  # the fuzz may have deleted "fuzz"
    assert gw.client().get_object(Bucket=bucket, Key="after-fuzz")["Body"].read() == b"alive"


def test_aws_chunked_line_without_end(gw: Gateway, bucket: str) -> None:
    path = f"/{bucket}/endless"
    body = b"a" * (2 * 1024 * 1024)  # a chunk-size "line" that never ends
    extra = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": "10"}
    headers = _signed_headers(gw, "PUT", path, headers=extra, payload=sigv4.STREAMING_UNSIGNED_TRAILER)
    status, _, text = _send(gw, "PUT", path, body, headers | {"Content-Length": str(len(body))})
    assert status == 400 and _code(text) == "InvalidChunkSizeError"


def test_broken_transfer_chunking(gw: Gateway, bucket: str) -> None:
    path = f"/{bucket}/broken-te"
    extra = {"Content-Encoding": "aws-chunked", "x-amz-decoded-content-length": "5"}
    headers = _signed_headers(gw, "PUT", path, headers=extra, payload=sigv4.STREAMING_UNSIGNED_TRAILER)
    with socket.create_connection(("127.0.0.1", gw.port), timeout=10) as sock:
        sock.sendall(_head(gw, "PUT", path, headers | {"Transfer-Encoding": "chunked"}) + b"zz-not-hex\r\n\r\n")
        reply = sock.recv(4096)
    assert reply.split(b" ", 2)[1] == b"400"  # refused by the HTTP parser or by us, never a 500
