"""Two peers' gateways in a P2P cluster (scheduler, seed peer, peers as real processes) over an S3
origin whose bytes are counted on the wire: what one gateway writes, the other reads byte-exact,
with the origin read about once, and every PUT, COPY and DELETE is seen at once through the other."""

from __future__ import annotations

import asyncio
import hashlib
import random
import uuid
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.cluster import s3_client
from tests.fixtures.rclone import rclone_s3  # noqa: F401  (fixture)
from tests.integration.test_p2p_cluster import Cluster, cluster  # noqa: F401  (fixture)

MiB = 1024 * 1024
pytestmark = [pytest.mark.cluster, pytest.mark.slow]


async def test_write_through_one_gateway_read_through_another(cluster: Cluster) -> None:  # noqa: F811
    await asyncio.to_thread(cluster.scheduler)
    await asyncio.to_thread(cluster.daemon, "seed", seed=True)
    writer, reader = [await asyncio.to_thread(cluster.daemon, f"peer-{i}") for i in range(2)]
    await asyncio.sleep(1.0)  # health checks and host announcements
    a, b = s3_client(writer.ready["s3"]), s3_client(reader.ready["s3"])
    bucket = f"g-{uuid.uuid4().hex[:10]}"
    size = 24 * MiB
    data = random.Random(3).randbytes(size)

    def write() -> None:
        a.create_bucket(Bucket=bucket)
        a.put_object(Bucket=bucket, Key="model.bin", Body=data)

    await asyncio.to_thread(write)
    before = cluster.proxy.bytes_from_target
    body = await asyncio.to_thread(lambda: b.get_object(Bucket=bucket, Key="model.bin")["Body"].read())
    origin_bytes = cluster.proxy.bytes_from_target - before
    assert hashlib.sha256(body).digest() == hashlib.sha256(data).digest()
    assert origin_bytes <= 1.1 * size, f"origin sent {origin_bytes / MiB:.1f} MiB for a {size // MiB} MiB read"
    print(f"read of {size // MiB} MiB through the second gateway: origin sent {origin_bytes / MiB:.2f} MiB")

    def consistency() -> None:
        a.put_object(Bucket=bucket, Key="model.bin", Body=b"version 2")  # overwrite: a new task version
        assert b.get_object(Bucket=bucket, Key="model.bin")["Body"].read() == b"version 2"
        b.copy_object(Bucket=bucket, Key="copy.bin", CopySource=f"{bucket}/model.bin")
        assert a.head_object(Bucket=bucket, Key="copy.bin")["ContentLength"] == len(b"version 2")
        assert sorted(o["Key"] for o in a.list_objects_v2(Bucket=bucket)["Contents"]) == ["copy.bin", "model.bin"]
        a.delete_object(Bucket=bucket, Key="model.bin")
        with pytest.raises(ClientError) as exc:
            b.head_object(Bucket=bucket, Key="model.bin")
        assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        with pytest.raises(ClientError) as exc:
            b.get_object(Bucket=bucket, Key="model.bin")
        assert exc.value.response["Error"]["Code"] == "NoSuchKey"
        assert [o["Key"] for o in b.list_objects_v2(Bucket=bucket)["Contents"]] == ["copy.bin"]

    await asyncio.to_thread(consistency)


async def test_ranged_s3_download_after_a_whole_read_comes_from_peers(cluster: Cluster, tmp_path: Any) -> None:  # noqa: F811
    """An object read whole through one peer (so the seed holds it whole too, as after a preheat), then
    downloaded by boto3 through another peer's gateway in 8 MiB ranged GETs: every range is a task of its
    own, which the seed cuts from its whole copy; the origin sends no object bytes again."""
    await asyncio.to_thread(cluster.scheduler)
    await asyncio.to_thread(cluster.daemon, "seed", seed=True)
    first, second = [await asyncio.to_thread(cluster.daemon, f"peer-{i}") for i in range(2)]
    await asyncio.sleep(1.0)  # health checks and host announcements
    bucket = f"r-{uuid.uuid4().hex[:10]}"
    size = 24 * MiB + 5
    data = random.Random(4).randbytes(size)
    (cluster.rclone.root / bucket).mkdir(parents=True)
    (cluster.rclone.root / bucket / "model.bin").write_bytes(data)

    a, b = s3_client(first.ready["s3"]), s3_client(second.ready["s3"])
    whole = await asyncio.to_thread(lambda: a.get_object(Bucket=bucket, Key="model.bin")["Body"].read())
    assert whole == data
    before = cluster.proxy.bytes_from_target
    target = tmp_path / "model.bin"
    await asyncio.to_thread(b.download_file, bucket, "model.bin", str(target))  # ranged GETs of 8 MiB
    origin_bytes = cluster.proxy.bytes_from_target - before
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(data).digest()
    assert origin_bytes < MiB, f"origin sent {origin_bytes / MiB:.1f} MiB for ranges of an object held whole"
    print(f"ranged download of {size // MiB} MiB after a whole read: origin sent {origin_bytes / 1024:.1f} KiB")
