"""boto3, unmodified and with default settings, against a real gateway over the real object service."""

from __future__ import annotations

import hashlib
import http.client
import random
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import ClientError
from botocore.httpchecksum import (
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)

from tests.integration.gateway_fixtures import Gateway, up_gateway

MiB = 1024 * 1024


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`dfly up`: the clients run against what a user starts, with the keys it generated."""
    with up_gateway(tmp_path_factory.mktemp("gw")) as gateway:
        yield gateway


@pytest.fixture
def s3(gw: Gateway) -> Any:
    return gw.client()


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"b-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_upload_and_download_file_multipart(s3: Any, bucket: str, tmp_path: Path) -> None:
    data = random.Random(1).randbytes(20 * MiB + 7)  # above boto3's 8 MiB multipart threshold: 3 parts
    src, dst = tmp_path / "src.bin", tmp_path / "dst.bin"
    src.write_bytes(data)
    s3.upload_file(str(src), bucket, "dir/big.bin")
    head = s3.head_object(Bucket=bucket, Key="dir/big.bin")
    assert head["ContentLength"] == len(data)
    parts = [data[i:i + 8 * MiB] for i in range(0, len(data), 8 * MiB)]  # boto3's default 8 MiB parts
    md5s = b"".join(hashlib.md5(p).digest() for p in parts)
    assert head["ETag"] == f'"{hashlib.md5(md5s).hexdigest()}-3"'
    second = s3.get_object(Bucket=bucket, Key="dir/big.bin", PartNumber=2)
    assert second["PartsCount"] == 3 and second["ContentRange"] == f"bytes {8 * MiB}-{16 * MiB - 1}/{len(data)}"
    assert second["Body"].read() == parts[1]
    assert s3.head_object(Bucket=bucket, Key="dir/big.bin", PartNumber=3)["ContentLength"] == len(parts[2])
    assert "dfly-parts" not in head["Metadata"]
    with pytest.raises(ClientError) as exc:
        s3.head_object(Bucket=bucket, Key="dir/big.bin", PartNumber=4)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 416
    s3.download_file(bucket, "dir/big.bin", str(dst))  # boto3 downloads this in ranged parts
    assert hashlib.sha256(dst.read_bytes()).digest() == hashlib.sha256(data).digest()


def test_put_get_metadata_and_etag(s3: Any, bucket: str) -> None:
    body = b"hello gateway"
    put = s3.put_object(
        Bucket=bucket, Key="m.txt", Body=body, ContentType="text/plain", Metadata={"owner": "me"},
        CacheControl="max-age=60", ContentDisposition="attachment",
    )
    assert put["ETag"] == f'"{hashlib.md5(body).hexdigest()}"'
    got = s3.get_object(Bucket=bucket, Key="m.txt")
    assert got["Body"].read() == body
    assert got["ContentType"] == "text/plain"
    assert got["Metadata"] == {"owner": "me"}
    assert got["CacheControl"] == "max-age=60"
    assert got["ContentDisposition"] == "attachment"
    assert got["ResponseMetadata"]["HTTPHeaders"]["x-amz-request-id"]
    s3.put_object(Bucket=bucket, Key="folder/", Body=b"")  # a directory marker, as s3fs and consoles make
    assert s3.head_object(Bucket=bucket, Key="folder/")["ContentLength"] == 0
    assert "folder/" in [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]


def test_ranges_and_conditionals(s3: Any, bucket: str) -> None:
    body = bytes(range(100))
    etag = s3.put_object(Bucket=bucket, Key="r", Body=body)["ETag"]
    part = s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-19")
    assert part["Body"].read() == body[10:20]
    assert part["ContentRange"] == "bytes 10-19/100"
    assert part["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert not any(h.startswith("x-amz-checksum") for h in part["ResponseMetadata"]["HTTPHeaders"])
    assert s3.get_object(Bucket=bucket, Key="r", Range="bytes=-5")["Body"].read() == body[-5:]
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", Range="bytes=200-300")
    assert _code(exc) == "InvalidRange"
    assert s3.get_object(Bucket=bucket, Key="r", IfMatch=etag)["Body"].read() == body
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", IfMatch='"nope"')
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    with pytest.raises(ClientError) as exc:
        s3.get_object(Bucket=bucket, Key="r", IfNoneMatch=etag)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    overridden = s3.get_object(Bucket=bucket, Key="r", ResponseContentType="x/y")
    assert overridden["ContentType"] == "x/y"


def test_list_v1_v2_delimiters_and_pagination(s3: Any, bucket: str) -> None:
    keys = ["a/1", "a/2", "b/1", "c", "d e+f%g", "ü/x"]
    for key in keys:
        s3.put_object(Bucket=bucket, Key=key, Body=key.encode())
    listed = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [p["Prefix"] for p in listed["CommonPrefixes"]] == ["a/", "b/", "ü/"]
    assert [o["Key"] for o in listed["Contents"]] == ["c", "d e+f%g"]
    assert listed["KeyCount"] == 5
    paginator = s3.get_paginator("list_objects_v2")
    seen = [o["Key"] for page in paginator.paginate(Bucket=bucket, PaginationConfig={"PageSize": 2})
            for o in page.get("Contents", [])]
    assert seen == sorted(keys, key=lambda k: k.encode())
    pages = s3.get_paginator("list_objects").paginate(Bucket=bucket, PaginationConfig={"PageSize": 4})
    v1 = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert v1 == seen
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, StartAfter="b/1")["Contents"]] == keys[3:]
    assert "Owner" in s3.list_objects_v2(Bucket=bucket, FetchOwner=True)["Contents"][0]
    assert "Owner" not in s3.list_objects_v2(Bucket=bucket)["Contents"][0]
    assert "Owner" in s3.list_objects(Bucket=bucket)["Contents"][0]
    v1 = s3.list_objects(Bucket=bucket, Delimiter="/", MaxKeys=2)
    assert v1["IsTruncated"] and v1["NextMarker"] == "b/"


def test_copy_and_metadata_directive(s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="src", Body=b"copy me", Metadata={"k": "v"}, ContentType="text/a")
    s3.copy_object(Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "src"})
    got = s3.get_object(Bucket=bucket, Key="dst")
    assert got["Body"].read() == b"copy me" and got["Metadata"] == {"k": "v"}
    s3.copy_object(Bucket=bucket, Key="dst2", CopySource=f"{bucket}/src", MetadataDirective="REPLACE",
                   Metadata={"n": "2"}, ContentType="text/b")
    head = s3.head_object(Bucket=bucket, Key="dst2")
    assert head["Metadata"] == {"n": "2"} and head["ContentType"] == "text/b"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="src", CopySource=f"{bucket}/src")
    assert _code(exc) == "InvalidRequest"
    with pytest.raises(ClientError) as exc:
        s3.copy_object(Bucket=bucket, Key="x", CopySource=f"{bucket}/src", CopySourceIfMatch='"bad"')
    assert _code(exc) == "PreconditionFailed"


def test_managed_copy_uses_upload_part_copy(s3: Any, bucket: str) -> None:
    data = random.Random(2).randbytes(9 * MiB)
    s3.put_object(Bucket=bucket, Key="big-src", Body=data)
    s3.copy({"Bucket": bucket, "Key": "big-src"}, bucket, "big-dst")  # above 8 MiB: UploadPartCopy
    head = s3.head_object(Bucket=bucket, Key="big-dst")
    assert head["ContentLength"] == len(data) and head["ETag"].endswith('-2"')
    assert s3.get_object(Bucket=bucket, Key="big-dst")["Body"].read() == data


def test_delete_and_delete_objects(s3: Any, bucket: str) -> None:
    for key in ("x1", "x2", "x3"):
        s3.put_object(Bucket=bucket, Key=key, Body=b"-")
    assert s3.delete_object(Bucket=bucket, Key="x1")["ResponseMetadata"]["HTTPStatusCode"] == 204
    s3.delete_object(Bucket=bucket, Key="x1")  # idempotent
    result = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "x2"}, {"Key": "x3"}, {"Key": "no"}]})
    assert sorted(d["Key"] for d in result["Deleted"]) == ["no", "x2", "x3"]
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    s3.delete_bucket(Bucket=bucket)
    with pytest.raises(ClientError) as exc:
        s3.head_bucket(Bucket=bucket)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404


def test_presigned_get_and_put(gw: Gateway, s3: Any, bucket: str) -> None:
    # boto3 presigns with SigV2 by default for a custom endpoint in us-east-1, with SigV4 when asked.
    for signer in (s3, gw.client(signature_version="s3v4")):
        put_url = urlsplit(signer.generate_presigned_url(
            "put_object", Params={"Bucket": bucket, "Key": "p k"}, ExpiresIn=60))
        conn = http.client.HTTPConnection(put_url.netloc, timeout=10)
        conn.request("PUT", f"{put_url.path}?{put_url.query}", body=b"presigned body")  # no Content-Type
        assert conn.getresponse().status == 200
        conn.close()
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "p k"}, ExpiresIn=60)
    with urllib.request.urlopen(get_url, timeout=10) as resp:
        assert resp.read() == b"presigned body"
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(get_url.replace("Signature=", "Signature=AA"), timeout=10)
    assert err.value.code == 403 and b"SignatureDoesNotMatch" in err.value.read()


def test_buckets_location_versioning_and_uploads(s3: Any, bucket: str) -> None:
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert s3.get_bucket_location(Bucket=bucket)["LocationConstraint"] is None
    assert "Status" not in s3.get_bucket_versioning(Bucket=bucket)
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    listed = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert [(u["Key"], u["UploadId"]) for u in listed] == [("mp", upload)]
    etag = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"part")["ETag"]
    assert [p["ETag"] for p in s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload)["Parts"]] == [etag]
    s3.abort_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload)
    with pytest.raises(ClientError) as exc:
        s3.list_parts(Bucket=bucket, Key="mp", UploadId=upload)
    assert _code(exc) == "NoSuchUpload"


CHECKSUM_CLASSES = {"CRC32": Crc32Checksum, "CRC32C": CrtCrc32cChecksum, "CRC64NVME": CrtCrc64NvmeChecksum,
                    "SHA1": Sha1Checksum, "SHA256": Sha256Checksum}  # fmt: skip


def test_checksum_modes(gw: Gateway, bucket: str) -> None:
    """Every flexible checksum boto3 can send (CRC32C and CRC64NVME through awscrt) is verified and
    echoed; a wrong one is refused with BadDigest and nothing is stored."""
    s3 = gw.client()
    data = random.Random(5).randbytes(3 * MiB + 7)  # four 1 MiB pieces on the gateway's side
    for algorithm, checksum_cls in CHECKSUM_CLASSES.items():
        expected = checksum_cls()
        expected.update(data)
        key = f"c-{algorithm}"
        reply = s3.put_object(Bucket=bucket, Key=key, Body=data, ChecksumAlgorithm=algorithm)
        assert reply[f"Checksum{algorithm}"] == expected.b64digest()
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == data
        wrong = checksum_cls()
        wrong.update(data[:-1])
        with pytest.raises(ClientError) as exc:
            s3.put_object(Bucket=bucket, Key=f"bad-{algorithm}", Body=data,
                          **{f"Checksum{algorithm}": wrong.b64digest()})
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
        assert _code(exc) == "BadDigest", algorithm
        with pytest.raises(ClientError):
            s3.head_object(Bucket=bucket, Key=f"bad-{algorithm}")
