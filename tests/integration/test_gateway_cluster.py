"""Two peers' gateways in a P2P cluster (scheduler, seed peer, peers as real processes) over an S3
origin whose bytes are counted on the wire: what one gateway writes, the other reads byte-exact,
with the origin read about once, and every PUT, COPY and DELETE is seen at once through the other."""

from __future__ import annotations

import asyncio
import hashlib
import random
import uuid
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from tests.cluster import S3_ACCESS_KEY, S3_SECRET_KEY
from tests.fixtures.rclone import rclone_s3  # noqa: F401  (fixture)
from tests.integration.test_p2p_cluster import Cluster, cluster  # noqa: F401  (fixture)

MiB = 1024 * 1024
pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _s3(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=S3_ACCESS_KEY,
                        aws_secret_access_key=S3_SECRET_KEY, region_name="us-east-1")


async def test_write_through_one_gateway_read_through_another(cluster: Cluster) -> None:  # noqa: F811
    await asyncio.to_thread(cluster.scheduler)
    await asyncio.to_thread(cluster.daemon, "seed", seed=True)
    writer, reader = [await asyncio.to_thread(cluster.daemon, f"peer-{i}") for i in range(2)]
    await asyncio.sleep(1.0)  # health checks and host announcements
    a, b = _s3(writer.ready["s3"]), _s3(reader.ready["s3"])
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
