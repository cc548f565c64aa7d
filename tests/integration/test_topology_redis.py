"""RedisTopologyStore against the real Redis: Dragonfly's key layout, the queue, the average, deletes."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import pytest
from redis.asyncio import Redis

from p2p.proto.values import ProbeResult
from p2p.scheduler.config import RedisSection
from p2p.scheduler.topology import moving_average
from p2p.scheduler.topology_redis import RedisTopologyStore, parse_rfc3339nano, redis_client
from p2p.types import HostID
from tests.redis_server import require_redis


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


MS = 1_000_000
T0 = 1_700_000_000_000_000_000


@pytest.fixture
async def store() -> AsyncIterator[tuple[RedisTopologyStore, Redis]]:
    addr = require_redis()
    config = RedisSection(addrs=[addr])
    raw = redis_client(config, config.network_topology_db)
    s = RedisTopologyStore.from_config(config, queue_length=3)
    yield s, raw
    await s.aclose()
    await raw.aclose()


def hid() -> HostID:
    return HostID(uuid.uuid4().hex)


async def test_keys_queue_and_average_in_dragonfly_layout(store: tuple[RedisTopologyStore, Redis]) -> None:
    s, raw = store
    src, dest = hid(), hid()
    try:
        rtts = [10 * MS, 20 * MS, 30 * MS, 40 * MS]
        for i, rtt in enumerate(rtts):
            edge = await s.enqueue(src, ProbeResult(host_id=dest, rtt_ns=rtt, created_at_ns=T0 + i))
        kept = rtts[-3:]
        assert edge.probe_count == 3
        assert edge.average_rtt_ns == moving_average(kept)
        assert (edge.created_at_ns, edge.updated_at_ns) == (T0, T0 + 3)

        raw_fields = await raw.hgetall(f"scheduler:network-topology:{src}:{dest}")
        fields = {_text(k): _text(v) for k, v in raw_fields.items()}
        assert int(fields["averageRTT"]) == moving_average(kept)
        assert parse_rfc3339nano(fields["createdAt"]) == T0
        assert parse_rfc3339nano(fields["updatedAt"]) == T0 + 3
        items = [json.loads(x) for x in await raw.lrange(f"scheduler:probes:{src}:{dest}", 0, -1)]
        assert [x["rtt"] for x in items] == kept
        assert all(x["host"]["id"] == dest for x in items)
        assert int(await raw.get(f"scheduler:probed-count:{dest}") or 0) == 4

        assert [p.rtt_ns for p in await s.probes(src, dest)] == kept
        assert await s.probed_counts([dest, hid()]) == [4, 0]
        mine = [e for e in await s.edges() if e.src_host_id == src]
        assert [(e.dest_host_id, e.average_rtt_ns, e.probe_count) for e in mine] == [(dest, moving_average(kept), 3)]
        assert [e.dest_host_id for e in await s.edges(dest)] == [dest]
    finally:
        await s.delete_host(src)
        await s.delete_host(dest)
    assert (
        await raw.exists(
            f"scheduler:network-topology:{src}:{dest}",
            f"scheduler:probes:{src}:{dest}",
            f"scheduler:probed-count:{dest}",
        )
        == 0
    )


async def test_delete_host_drops_edges_from_and_to_it(store: tuple[RedisTopologyStore, Redis]) -> None:
    s, raw = store
    a, b, c = hid(), hid(), hid()
    try:
        await s.enqueue(a, ProbeResult(host_id=b, rtt_ns=MS, created_at_ns=T0))
        await s.enqueue(b, ProbeResult(host_id=a, rtt_ns=MS, created_at_ns=T0))
        await s.enqueue(b, ProbeResult(host_id=c, rtt_ns=MS, created_at_ns=T0))
        await s.delete_host(a)
        left = {(e.src_host_id, e.dest_host_id) for e in await s.edges(b)}
        assert left == {(b, c)}
        assert await raw.exists(f"scheduler:probes:{a}:{b}", f"scheduler:probes:{b}:{a}") == 0
        assert await raw.exists(f"scheduler:probed-count:{a}") == 0
    finally:
        for h in (a, b, c):
            await s.delete_host(h)
