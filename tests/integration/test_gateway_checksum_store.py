"""Full-object checksums kept with the object: boto3, unmodified, against a real daemon (directory
origin, and an S3 origin served by rclone). A checksum a PutObject carried comes back on full-object
GET/HEAD with `x-amz-checksum-mode: ENABLED`, and boto3 validates it against the bytes it reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError, FlexibleChecksumError
from botocore.httpchecksum import (
    BaseChecksum,
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)

import sdk
from tests.cluster import s3_client
from tests.fixtures.rclone import RcloneS3, rclone_s3  # noqa: F401  (fixture)
from tests.integration.gateway_fixtures import Gateway, running_gateway

CHECKSUMS: dict[str, type[BaseChecksum]] = {
    "CRC32": Crc32Checksum, "CRC32C": CrtCrc32cChecksum, "CRC64NVME": CrtCrc64NvmeChecksum,
    "SHA1": Sha1Checksum, "SHA256": Sha256Checksum,
}


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with running_gateway(tmp_path_factory.mktemp("gwsum")) as gateway:
        yield gateway


@pytest.fixture
def s3(gw: Gateway) -> Any:
    return gw.client()


@pytest.fixture
def bucket(s3: Any) -> str:
    name = f"k-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


def checksum_of(algorithm: str, data: bytes) -> str:
    checksum = CHECKSUMS[algorithm]()
    checksum.update(data)
    return str(checksum.b64digest())


def sent_checksums(response: dict[str, Any]) -> dict[str, str]:
    return {k: v for k, v in response["ResponseMetadata"]["HTTPHeaders"].items() if k.startswith("x-amz-checksum")}


def sidecar(gw: Gateway, bucket: str, key: str) -> Path:
    h = hashlib.sha256(key.encode()).hexdigest()
    return gw.origin / ".dfly" / "meta" / bucket / h[:2] / f"{h}.json"


@pytest.mark.parametrize("algorithm", sorted(CHECKSUMS))
def test_put_checksum_comes_back_on_get_and_head(gw: Gateway, s3: Any, bucket: str, algorithm: str) -> None:
    data = random.Random(algorithm).randbytes(1024 * 1024 + 13)
    expected = checksum_of(algorithm, data)
    put = s3.put_object(Bucket=bucket, Key="obj", Body=data, ChecksumAlgorithm=algorithm)
    assert put[f"Checksum{algorithm}"] == expected
    for _ in range(2):  # a miss (origin read), then a cache hit
        got = s3.get_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
        assert got["Body"].read() == data
        assert got[f"Checksum{algorithm}"] == expected and got["ChecksumType"] == "FULL_OBJECT"
        assert sent_checksums(got) == {f"x-amz-checksum-{algorithm.lower()}": expected,
                                       "x-amz-checksum-type": "FULL_OBJECT"}
    head = s3.head_object(Bucket=bucket, Key="obj", ChecksumMode="ENABLED")
    assert head[f"Checksum{algorithm}"] == expected and head["ChecksumType"] == "FULL_OBJECT"
    assert "dfly-checksum" not in head["Metadata"] and head["Metadata"] == {}
    # without the mode header: no checksum
    assert sent_checksums(s3.head_object(Bucket=bucket, Key="obj")) == {}
    quiet = gw.client(response_checksum_validation="when_required")  # sends no x-amz-checksum-mode
    plain = quiet.get_object(Bucket=bucket, Key="obj")
    assert plain["Body"].read() == data and sent_checksums(plain) == {}


def test_no_checksum_on_partial_or_conditional_answers(s3: Any, bucket: str) -> None:
    data = bytes(range(256)) * 40
    etag = s3.put_object(Bucket=bucket, Key="r", Body=data, ChecksumAlgorithm="CRC32C")["ETag"]
    ranged = s3.get_object(Bucket=bucket, Key="r", Range="bytes=10-99", ChecksumMode="ENABLED")
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206 and ranged["Body"].read() == data[10:100]
    assert sent_checksums(ranged) == {}
    head = s3.head_object(Bucket=bucket, Key="r", Range="bytes=0-9", ChecksumMode="ENABLED")
    assert head["ResponseMetadata"]["HTTPStatusCode"] == 206 and sent_checksums(head) == {}
    part = s3.get_object(Bucket=bucket, Key="r", PartNumber=1, ChecksumMode="ENABLED")
    assert part["Body"].read() == data and sent_checksums(part) == {}
    assert sent_checksums(s3.head_object(Bucket=bucket, Key="r", PartNumber=1, ChecksumMode="ENABLED")) == {}
    for condition in ({"IfNoneMatch": etag}, {"IfMatch": '"' + "0" * 32 + '"'}):
        with pytest.raises(ClientError) as exc:
            s3.get_object(Bucket=bucket, Key="r", ChecksumMode="ENABLED", **condition)
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] in (304, 412)
        assert sent_checksums(exc.value.response) == {}
    full = s3.get_object(Bucket=bucket, Key="r", ChecksumMode="ENABLED", IfMatch=etag)
    assert full["Body"].read() == data and full["ChecksumCRC32C"] == checksum_of("CRC32C", data)


def test_objects_written_without_a_checksum_have_none(gw: Gateway, bucket: str) -> None:
    bare = gw.client(request_checksum_calculation="when_required")
    bare.put_object(Bucket=bucket, Key="bare", Body=b"no checksum")
    got = bare.get_object(Bucket=bucket, Key="bare", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"no checksum" and sent_checksums(got) == {}
    # a client cannot forge the reserved entry through x-amz-meta-*
    bare.put_object(Bucket=bucket, Key="forged", Body=b"data", Metadata={"dfly-checksum": "crc32:AAAAAA==", "a": "b"})
    got = bare.get_object(Bucket=bucket, Key="forged", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"data" and sent_checksums(got) == {} and got["Metadata"] == {"a": "b"}
    # multipart uploads keep no checksum (S3's composite checksums are not kept)
    s3 = gw.client()
    upload = s3.create_multipart_upload(Bucket=bucket, Key="mp", ChecksumAlgorithm="CRC32")["UploadId"]
    part = s3.upload_part(Bucket=bucket, Key="mp", UploadId=upload, PartNumber=1, Body=b"p" * 1000,
                          ChecksumAlgorithm="CRC32")
    s3.complete_multipart_upload(Bucket=bucket, Key="mp", UploadId=upload,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})
    got = s3.get_object(Bucket=bucket, Key="mp", ChecksumMode="ENABLED")
    assert got["Body"].read() == b"p" * 1000 and sent_checksums(got) == {}


def test_copy_keeps_the_checksum_unless_another_algorithm_is_asked(s3: Any, bucket: str) -> None:
    data = b"copied bytes " * 1000
    crc = checksum_of("CRC32", data)
    s3.put_object(Bucket=bucket, Key="src", Body=data, ChecksumAlgorithm="CRC32", Metadata={"m": "1"})
    source = {"Bucket": bucket, "Key": "src"}
    s3.copy_object(Bucket=bucket, Key="copy", CopySource=source)
    s3.copy_object(Bucket=bucket, Key="replaced", CopySource=source, MetadataDirective="REPLACE",
                   Metadata={"m": "2"})
    s3.copy_object(Bucket=bucket, Key="same-alg", CopySource=source, MetadataDirective="REPLACE",
                   ChecksumAlgorithm="CRC32")
    for key, meta in (("copy", {"m": "1"}), ("replaced", {"m": "2"}), ("same-alg", {})):
        got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert got["Body"].read() == data and got["ChecksumCRC32"] == crc, key
        assert got["Metadata"] == meta, key
    # another algorithm is not computed over the copy: the copy has no checksum
    s3.copy_object(Bucket=bucket, Key="other-alg", CopySource=source, ChecksumAlgorithm="SHA256")
    s3.copy_object(Bucket=bucket, Key="other-alg-r", CopySource=source, MetadataDirective="REPLACE",
                   ChecksumAlgorithm="SHA256")
    for key in ("other-alg", "other-alg-r"):
        got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert got["Body"].read() == data and sent_checksums(got) == {}, key
    assert s3.head_object(Bucket=bucket, Key="other-alg")["Metadata"] == {"m": "1"}


def test_overwrite_through_dfstore_clears_the_checksum(gw: Gateway, s3: Any, bucket: str) -> None:
    s3.put_object(Bucket=bucket, Key="o1", Body=b"first", ChecksumAlgorithm="SHA256")
    s3.put_object(Bucket=bucket, Key="o2", Body=b"first", ChecksumAlgorithm="SHA256")
    assert s3.head_object(Bucket=bucket, Key="o1", ChecksumMode="ENABLED")["ChecksumSHA256"]
    with sdk.Client(gw.dfstore) as dfstore:
        dfstore.put_object(bucket, "o1", b"second version", mode=sdk.PutMode.WRITE_BACK)
        dfstore.put_object(bucket, "o2", b"second version")  # AsyncWriteBack: read from the journal first
    for key in ("o1", "o2"):
        got = s3.get_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")
        assert got["Body"].read() == b"second version" and sent_checksums(got) == {}, key
        assert sent_checksums(s3.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED")) == {}, key


def test_a_damaged_stored_checksum_fails_boto3s_validation(gw: Gateway, s3: Any, bucket: str) -> None:
    data = random.Random(9).randbytes(200_000)
    s3.put_object(Bucket=bucket, Key="d", Body=data, ChecksumAlgorithm="CRC32")
    assert s3.get_object(Bucket=bucket, Key="d")["Body"].read() == data  # boto3's default mode: valid
    path = sidecar(gw, bucket, "d")
    record = json.loads(path.read_text())
    assert record["user_meta"]["dfly-checksum"] == "crc32:" + checksum_of("CRC32", data)
    record["user_meta"]["dfly-checksum"] = "crc32:" + checksum_of("CRC32", data[:-1])
    tmp = path.with_suffix(".edit")
    tmp.write_text(json.dumps(record))
    os.replace(tmp, path)
    with pytest.raises(FlexibleChecksumError):
        s3.get_object(Bucket=bucket, Key="d")["Body"].read()
    # HEAD answers what is stored; the bytes are unchanged
    assert s3.head_object(Bucket=bucket, Key="d", ChecksumMode="ENABLED")["ChecksumCRC32"] != checksum_of("CRC32", data)


def test_s3_origin_keeps_the_checksum(tmp_path: Path, rclone_s3: RcloneS3) -> None:  # noqa: F811
    origin = {"kind": "s3", "endpoint": rclone_s3.endpoint, "access_key": rclone_s3.access_key,
              "secret_key": rclone_s3.secret_key}
    direct = s3_client(rclone_s3.endpoint, access_key=rclone_s3.access_key, secret_key=rclone_s3.secret_key,
                       request_checksum_calculation="when_required", response_checksum_validation="when_required")
    with running_gateway(tmp_path / "gw", origin=origin) as gw:
        s3 = gw.client()
        s3.create_bucket(Bucket="sums")
        data = random.Random(4).randbytes(300_000)
        for algorithm in ("SHA256", "CRC64NVME"):
            key = f"s-{algorithm}"
            s3.put_object(Bucket="sums", Key=key, Body=data, ChecksumAlgorithm=algorithm, Metadata={"u": "v"})
            got = s3.get_object(Bucket="sums", Key=key, ChecksumMode="ENABLED")
            assert got["Body"].read() == data and got[f"Checksum{algorithm}"] == checksum_of(algorithm, data)
            assert got["Metadata"] == {"u": "v"}
            head = s3.head_object(Bucket="sums", Key=key, ChecksumMode="ENABLED")
            assert head[f"Checksum{algorithm}"] == checksum_of(algorithm, data)
            stored = {k.lower(): v for k, v in direct.head_object(Bucket="sums", Key=key)["Metadata"].items()}
            assert stored["dfly-checksum"] == f"{algorithm.lower()}:{checksum_of(algorithm, data)}"
        ranged = s3.get_object(Bucket="sums", Key="s-SHA256", Range="bytes=5-9", ChecksumMode="ENABLED")
        assert ranged["Body"].read() == data[5:10] and sent_checksums(ranged) == {}
        s3.copy_object(Bucket="sums", Key="copy", CopySource={"Bucket": "sums", "Key": "s-SHA256"})
        assert s3.head_object(Bucket="sums", Key="copy", ChecksumMode="ENABLED")["ChecksumSHA256"] == \
            checksum_of("SHA256", data)
        # altered at the origin by hand: boto3 refuses the bytes
        direct.copy_object(Bucket="sums", Key="s-SHA256", CopySource={"Bucket": "sums", "Key": "s-SHA256"},
                           MetadataDirective="REPLACE",
                           Metadata={"dfly-checksum": "sha256:" + checksum_of("SHA256", b"other")})
        with pytest.raises(FlexibleChecksumError):
            s3.get_object(Bucket="sums", Key="s-SHA256")["Body"].read()
        with sdk.Client(gw.dfstore) as dfstore:
            dfstore.put_object("sums", "s-SHA256", b"overwritten", mode=sdk.PutMode.WRITE_BACK)
        got = s3.get_object(Bucket="sums", Key="s-SHA256", ChecksumMode="ENABLED")
        assert got["Body"].read() == b"overwritten" and sent_checksums(got) == {}
