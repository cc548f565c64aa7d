"""minio, the aws cli, s3cmd, rclone and s3fs, unmodified and with default settings, against a real
gateway. The command-line tools run as subprocesses configured through flags and environment only."""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import s3fs
from botocore.httpchecksum import CrtCrc32cChecksum, CrtCrc64NvmeChecksum
from minio import Minio
from minio.commonconfig import CopySource
from minio.error import S3Error

from tests.integration.gateway_fixtures import Gateway, up_gateway

MiB = 1024 * 1024
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def gw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """`dfly up`: the clients run against what a user starts, with the keys it generated."""
    with up_gateway(tmp_path_factory.mktemp("gw")) as gateway:
        yield gateway


@pytest.fixture
def bucket(gw: Gateway) -> str:
    name = f"c-{uuid.uuid4().hex[:12]}"
    gw.client().create_bucket(Bucket=name)
    return name


def _keys(gw: Gateway, bucket: str) -> list[str]:
    return [o["Key"] for o in gw.client().list_objects_v2(Bucket=bucket).get("Contents", [])]


def _run(cmd: list[str], env: dict[str, str], timeout: float = 90) -> str:
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{cmd[:3]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def _write(path: Path, size: int, seed: int) -> bytes:
    data = random.Random(seed).randbytes(size)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


# ---- minio ----------------------------------------------------------------------------------------


def test_minio(gw: Gateway, bucket: str, tmp_path: Path) -> None:
    mc = Minio(gw.endpoint.removeprefix("http://"), access_key=gw.access_key, secret_key=gw.secret_key,
               secure=False, region=gw.region)
    data = _write(tmp_path / "up.bin", 12 * MiB + 3, 1)  # minio-py splits this into parts
    mc.fput_object(bucket, "dir/up.bin", str(tmp_path / "up.bin"))
    mc.fget_object(bucket, "dir/up.bin", str(tmp_path / "down.bin"))
    assert (tmp_path / "down.bin").read_bytes() == data
    mc.put_object(bucket, "small", io.BytesIO(b"tiny"), 4, metadata={"x-amz-meta-a": "b"})
    stat = mc.stat_object(bucket, "small")
    assert stat.size == 4 and stat.etag == hashlib.md5(b"tiny").hexdigest()
    assert stat.metadata is not None and stat.metadata["x-amz-meta-a"] == "b"
    assert sorted(o.object_name for o in mc.list_objects(bucket, recursive=True)) == ["dir/up.bin", "small"]
    assert sorted(o.object_name for o in mc.list_objects(bucket)) == ["dir/", "small"]
    mc.copy_object(bucket, "copied", CopySource(bucket, "small"))
    assert mc.get_object(bucket, "copied").read() == b"tiny"
    put_url = mc.presigned_put_object(bucket, "pre", expires=timedelta(minutes=5))
    req = urllib.request.Request(put_url, data=b"presigned", method="PUT", headers={"Content-Type": ""})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    with urllib.request.urlopen(mc.presigned_get_object(bucket, "pre"), timeout=10) as resp:
        assert resp.read() == b"presigned"
    mc.remove_object(bucket, "copied")
    with pytest.raises(S3Error) as exc:
        mc.stat_object(bucket, "copied")
    assert exc.value.code == "NoSuchKey"
    with pytest.raises(S3Error) as exc:
        mc.get_object("no-such-bucket-x", "k")
    assert exc.value.code == "NoSuchBucket"


# ---- aws cli --------------------------------------------------------------------------------------


def _aws_env(gw: Gateway, tmp_path: Path) -> dict[str, str]:
    empty = tmp_path / "aws-empty"
    empty.write_text("")
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "AWS_ACCESS_KEY_ID": gw.access_key,
        "AWS_SECRET_ACCESS_KEY": gw.secret_key,
        "AWS_DEFAULT_REGION": gw.region,
        "AWS_CONFIG_FILE": str(empty),
        "AWS_SHARED_CREDENTIALS_FILE": str(empty),
    }


def _aws(gw: Gateway, env: dict[str, str], *args: str) -> str:
    return _run([str(BIN / "aws"), "--endpoint-url", gw.endpoint, "s3", *args], env)


def test_aws_cli_cp_sync_ls_rm(gw: Gateway, bucket: str, tmp_path: Path) -> None:
    env = _aws_env(gw, tmp_path)
    tree = tmp_path / "tree"
    files = {"a.txt": _write(tree / "a.txt", 100, 1), "sub/b.bin": _write(tree / "sub" / "b.bin", 9 * MiB, 2),
             "sub/with space.txt": _write(tree / "sub" / "with space.txt", 10, 3)}
    _aws(gw, env, "cp", str(tree / "a.txt"), f"s3://{bucket}/single/a.txt")
    _aws(gw, env, "sync", str(tree), f"s3://{bucket}/tree")
    assert sorted(_keys(gw, bucket)) == ["single/a.txt", *sorted(f"tree/{k}" for k in files)]
    listing = _aws(gw, env, "ls", f"s3://{bucket}/tree/")
    assert "PRE sub/" in listing and "a.txt" in listing
    out = tmp_path / "out"
    _aws(gw, env, "sync", f"s3://{bucket}/tree", str(out))
    for name, data in files.items():
        assert (out / name).read_bytes() == data
    again = _aws(gw, env, "sync", str(tree), f"s3://{bucket}/tree")
    assert "upload:" not in again  # nothing changed: sync compares sizes and times through ListObjectsV2
    _aws(gw, env, "rm", "--recursive", f"s3://{bucket}/tree")
    assert _keys(gw, bucket) == ["single/a.txt"]


@pytest.mark.parametrize("algorithm", ["CRC32C", "CRC64NVME"])
def test_aws_cli_checksum_algorithm(gw: Gateway, bucket: str, tmp_path: Path, algorithm: str) -> None:
    """--checksum-algorithm on a PUT (the gateway echoes the value it verified), on a 9 MiB multipart
    `cp`, and a wrong --checksum-<algorithm> refused with BadDigest."""
    env = _aws_env(gw, tmp_path)
    small, big = _write(tmp_path / "small.bin", 100_000, 8), _write(tmp_path / "big.bin", 9 * MiB, 9)
    checksum_cls, wrong_option = {"CRC32C": (CrtCrc32cChecksum, "--checksum-crc32-c"),
                                  "CRC64NVME": (CrtCrc64NvmeChecksum, "--checksum-crc64-nvme")}[algorithm]
    expected = checksum_cls()
    expected.update(small)
    s3api = [str(BIN / "aws"), "--endpoint-url", gw.endpoint, "s3api", "put-object", "--bucket", bucket,
             "--body", str(tmp_path / "small.bin")]  # fmt: skip
    reply = json.loads(_run([*s3api, "--key", "small.bin", "--checksum-algorithm", algorithm], env))
    assert reply[f"Checksum{algorithm}"] == expected.b64digest()
    _aws(gw, env, "cp", "--checksum-algorithm", algorithm, str(tmp_path / "big.bin"), f"s3://{bucket}/big.bin")
    assert gw.client().get_object(Bucket=bucket, Key="small.bin")["Body"].read() == small
    assert gw.client().get_object(Bucket=bucket, Key="big.bin")["Body"].read() == big
    wrong = checksum_cls()
    wrong.update(big[:100])
    bad = subprocess.run([*s3api, "--key", "bad.bin", wrong_option, wrong.b64digest()],
                         env=env, capture_output=True, text=True, timeout=90, check=False)  # fmt: skip
    assert bad.returncode != 0 and "BadDigest" in bad.stderr, bad.stderr
    assert "bad.bin" not in _keys(gw, bucket)


@pytest.mark.slow
def test_aws_cli_100_mib_upload(gw: Gateway, bucket: str, tmp_path: Path) -> None:
    env = _aws_env(gw, tmp_path)
    data = _write(tmp_path / "big.bin", 100 * MiB, 7)
    _aws(gw, env, "cp", str(tmp_path / "big.bin"), f"s3://{bucket}/big.bin")
    _aws(gw, env, "cp", f"s3://{bucket}/big.bin", str(tmp_path / "back.bin"))
    assert hashlib.md5((tmp_path / "back.bin").read_bytes()).digest() == hashlib.md5(data).digest()


# ---- s3cmd ----------------------------------------------------------------------------------------


def test_s3cmd(gw: Gateway, bucket: str, tmp_path: Path) -> None:
    host = gw.endpoint.removeprefix("http://")
    config = tmp_path / "s3cfg"
    config.write_text(
        "[default]\n"
        f"access_key = {gw.access_key}\nsecret_key = {gw.secret_key}\n"
        f"host_base = {host}\nhost_bucket = {host}\nuse_https = False\nbucket_location = {gw.region}\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}

    def s3cmd(*args: str) -> str:
        return _run([str(BIN / "s3cmd"), "-c", str(config), *args], env)

    data = _write(tmp_path / "f.bin", 17 * MiB, 4)  # above s3cmd's 15 MiB multipart chunk
    s3cmd("put", str(tmp_path / "f.bin"), f"s3://{bucket}/s3cmd/f.bin")
    assert f"s3://{bucket}/s3cmd/f.bin" in s3cmd("ls", "-r", f"s3://{bucket}")
    s3cmd("get", f"s3://{bucket}/s3cmd/f.bin", str(tmp_path / "g.bin"))
    assert (tmp_path / "g.bin").read_bytes() == data
    s3cmd("info", f"s3://{bucket}/s3cmd/f.bin")
    s3cmd("del", f"s3://{bucket}/s3cmd/f.bin")
    assert _keys(gw, bucket) == []


# ---- rclone ---------------------------------------------------------------------------------------


def test_rclone_copy_check_cat_ls(gw: Gateway, bucket: str, tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "RCLONE_CONFIG": str(tmp_path / "rclone.conf"),
        "RCLONE_CONFIG_GW_TYPE": "s3",
        "RCLONE_CONFIG_GW_PROVIDER": "Other",
        "RCLONE_CONFIG_GW_ACCESS_KEY_ID": gw.access_key,
        "RCLONE_CONFIG_GW_SECRET_ACCESS_KEY": gw.secret_key,
        "RCLONE_CONFIG_GW_ENDPOINT": gw.endpoint,
        "RCLONE_CONFIG_GW_REGION": gw.region,
    }
    rclone = str(BIN / "rclone")
    src = tmp_path / "src"
    _write(src / "one.txt", 1000, 5)
    _write(src / "deep" / "two.bin", 6 * MiB, 6)
    _write(src / "deep" / "ü nicode.txt", 50, 7)
    _run([rclone, "copy", str(src), f"gw:{bucket}/rc"], env)
    _run([rclone, "check", str(src), f"gw:{bucket}/rc"], env)
    cat = subprocess.run([rclone, "cat", f"gw:{bucket}/rc/one.txt"], env=env, capture_output=True, timeout=60,
                         check=True).stdout
    assert cat == (src / "one.txt").read_bytes()
    listing = _run([rclone, "ls", f"gw:{bucket}/rc"], env)
    assert "deep/two.bin" in listing and "ü nicode.txt" in listing
    assert sorted(_keys(gw, bucket)) == ["rc/deep/two.bin", "rc/deep/ü nicode.txt", "rc/one.txt"]


# ---- s3fs / fsspec --------------------------------------------------------------------------------


def test_s3fs_open_ranges_ls_put(gw: Gateway, bucket: str, tmp_path: Path) -> None:
    fs = s3fs.S3FileSystem(key=gw.access_key, secret=gw.secret_key, endpoint_url=gw.endpoint,
                           client_kwargs={"region_name": gw.region}, skip_instance_cache=True)
    data = _write(tmp_path / "local.bin", 3 * MiB + 11, 8)
    fs.put(str(tmp_path / "local.bin"), f"{bucket}/fs/local.bin")
    with fs.open(f"{bucket}/fs/written.bin", "wb") as f:
        f.write(data[:1000])
    assert fs.ls(f"{bucket}/fs", detail=False) == [f"{bucket}/fs/local.bin", f"{bucket}/fs/written.bin"]
    with fs.open(f"{bucket}/fs/local.bin", "rb", block_size=MiB) as f:
        f.seek(2 * MiB - 5)
        assert f.read(10) == data[2 * MiB - 5:2 * MiB + 5]
        f.seek(len(data) - 3)
        assert f.read() == data[-3:]
    assert fs.cat_file(f"{bucket}/fs/local.bin", start=100, end=200) == data[100:200]
    assert fs.info(f"{bucket}/fs/written.bin")["size"] == 1000
    assert fs.cat(f"{bucket}/fs/written.bin") == data[:1000]
