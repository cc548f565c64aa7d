"""Network topology on the scheduler: the moving average, the memory store, picking hosts to probe,
the probe term of the evaluator, and the `database` config section (new and legacy layouts)."""

from __future__ import annotations

import asyncio
import logging
import random
from pathlib import Path

import pytest
import yaml

from p2p.common.config import ConfigError, load_config
from p2p.errors import StorageError
from p2p.proto.values import HostInfo, ProbeResult
from p2p.scheduler import evaluator
from p2p.scheduler.config import NetworkTopologySection, ProbeSection, RedisSection, SchedulerConfig
from p2p.scheduler.service import SchedulerService
from p2p.scheduler.topology import MemoryTopologyStore, NetworkTopology, moving_average
from p2p.scheduler.topology_redis import RedisTopologyStore, parse_rfc3339nano, rfc3339nano
from p2p.types import HostID
from tests.unit.test_scheduler_evaluator import World, bts, running

MS = 1_000_000


def probe(dest: str, rtt_ns: int, at: int = 1) -> ProbeResult:
    return ProbeResult(host_id=HostID(dest), rtt_ns=rtt_ns, created_at_ns=at)


def host(name: str) -> HostInfo:
    return HostInfo(id=HostID(name), ip="127.0.0.1", hostname=name, download_port=1)


def topology(count: int = 5, queue_length: int = 5, seed: int = 1) -> NetworkTopology:
    config = NetworkTopologySection(enable=True, probe=ProbeSection(count=count, queue_length=queue_length))
    return NetworkTopology(config, MemoryTopologyStore(queue_length), rng=random.Random(seed))


def test_moving_average_weights_recent_probes() -> None:
    assert moving_average([100]) == 100
    # avg = 100; avg = 100*0.1 + 200*0.9 = 190; avg = 190*0.1 + 300*0.9 = 289
    assert moving_average([100, 200, 300]) == 289


async def test_memory_store_keeps_the_last_queue_length_probes() -> None:
    store = MemoryTopologyStore(queue_length=3)
    src = HostID("a")
    for i, rtt in enumerate([10, 20, 30, 40, 50]):
        edge = await store.enqueue(src, probe("b", rtt * MS, at=i + 1))
    assert [p.rtt_ns for p in await store.probes(src, HostID("b"))] == [30 * MS, 40 * MS, 50 * MS]
    assert edge.probe_count == 3
    assert edge.average_rtt_ns == moving_average([30 * MS, 40 * MS, 50 * MS])
    assert (edge.created_at_ns, edge.updated_at_ns) == (1, 5)
    assert await store.probed_counts([HostID("b"), HostID("a"), HostID("x")]) == [5, 0, 0]


async def test_delete_host_drops_edges_both_ways_and_its_count() -> None:
    store = MemoryTopologyStore(queue_length=5)
    await store.enqueue(HostID("a"), probe("b", MS))
    await store.enqueue(HostID("b"), probe("a", MS))
    await store.enqueue(HostID("c"), probe("d", MS))
    await store.delete_host(HostID("a"))
    assert [(e.src_host_id, e.dest_host_id) for e in await store.edges()] == [("c", "d")]
    assert await store.probed_counts([HostID("a")]) == [0]


async def test_probed_hosts_are_the_least_probed_and_never_the_source() -> None:
    nt = topology(count=2)
    hosts = [host(n) for n in ("src", "h1", "h2", "h3", "h4")]
    # h1 probed 3 times, h2 twice, h3 once, h4 never.
    for dest, times in (("h1", 3), ("h2", 2), ("h3", 1)):
        for _ in range(times):
            await nt.enqueue(HostID("x"), [probe(dest, MS)])
    chosen = await nt.find_probed_hosts(HostID("src"), hosts)
    assert [h.id for h in chosen] == ["h4", "h3"]
    # Few hosts: all of them (but the source).
    few = await topology(count=5).find_probed_hosts(HostID("src"), hosts[:3])
    assert sorted(h.id for h in few) == ["h1", "h2"]


async def test_failed_probes_are_not_stored_and_rtt_lookup_is_by_host_either_way() -> None:
    nt = topology()
    failed = ProbeResult(host_id=HostID("b"), rtt_ns=0, created_at_ns=1, success=False, description="timeout")
    assert await nt.enqueue(HostID("a"), [failed]) == []
    assert nt.rtt_ns(HostID("a"), HostID("b")) is None
    await nt.enqueue(HostID("a"), [probe("b", 7 * MS)])
    assert nt.rtt_ns(HostID("a"), HostID("b")) == 7 * MS
    assert nt.rtt_ns(HostID("b"), HostID("a")) == 7 * MS
    await nt.delete_host(HostID("b"))
    assert nt.rtt_ns(HostID("a"), HostID("b")) is None
    assert await nt.edges() == []


async def test_nearer_parent_ranks_higher_with_everything_else_equal() -> None:
    w = World()
    child = running(w.peer("child"))
    near, far = bts(w.peer("near")), bts(w.peer("far"))
    nt = topology()
    await nt.enqueue(child.host.id, [probe(near.host.id, 2 * MS), probe(far.host.id, 300 * MS)])
    total = w.task.total_piece_count
    near_score = evaluator.evaluate(near, child, total, nt.rtt_ns)
    far_score = evaluator.evaluate(far, child, total, nt.rtt_ns)
    assert near_score > far_score
    assert near_score - far_score == pytest.approx(0.12 * (300 - 2) / 1000)
    # Whichever comes first in the sample, the nearer one is ranked first.
    for seed in range(5):
        ranked = evaluator.find_candidate_parents(
            child, set(), limit=2, sample_size=40, rng=random.Random(seed), rtt=nt.rtt_ns
        )
        assert ranked == [near, far]
    # Without probe data the term is 0 for both: equal scores.
    nobody = topology()
    assert evaluator.evaluate(near, child, total, nobody.rtt_ns) == evaluator.evaluate(far, child, total, nobody.rtt_ns)


def test_probe_score_is_keyed_by_host_not_peer() -> None:
    w = World()
    child = running(w.peer("child", host="hc"))
    parent = bts(w.peer("parent", host="hp"))
    by_host = {(HostID("hc"), HostID("hp")): 100 * MS}
    assert evaluator.probe_score(parent, child, lambda a, b: by_host.get((a, b))) == pytest.approx(0.9)
    by_peer = {("child", "parent"): 100 * MS}
    assert evaluator.probe_score(parent, child, lambda a, b: by_peer.get((a, b))) == 0.0
    # 1 s or more: 0, never negative.
    assert evaluator.probe_score(parent, child, lambda a, b: 2_000 * MS) == 0.0


async def test_service_stores_known_hosts_only_and_gc_drops_edges() -> None:
    svc = SchedulerService(SchedulerConfig(), topology=topology(), rng=random.Random(0))
    try:
        for name in ("a", "b"):
            svc.announce_host(host(name))
        assert [h.id for h in await svc.sync_probes(host("a"))] == ["b"]  # never itself
        await svc.report_probes(HostID("a"), [probe("b", MS), probe("ghost", MS), probe("a", MS)])
        await svc.report_probes(HostID("stranger"), [probe("b", MS)])
        assert [(e.src_host_id, e.dest_host_id) for e in await svc.topology_edges()] == [("a", "b")]
        assert svc.gc_hosts() == 2  # idle normal hosts go, and their edges with them
        await asyncio.gather(*svc._jobs)
        assert await svc.topology_edges() == []
        assert svc.topology is not None and svc.topology.rtt_ns(HostID("a"), HostID("b")) is None
    finally:
        await svc.aclose()


async def test_a_store_outage_is_a_storage_error() -> None:
    # A real Redis client at a port nobody listens on.
    store = RedisTopologyStore.from_config(RedisSection(addrs=["127.0.0.1:1"]), queue_length=5)
    nt = NetworkTopology(NetworkTopologySection(enable=True), store)
    svc = SchedulerService(SchedulerConfig(), topology=nt)
    try:
        svc.announce_host(host("a"))
        svc.announce_host(host("b"))
        with pytest.raises(StorageError, match="network topology store"):
            await svc.report_probes(HostID("a"), [probe("b", MS)])
        with pytest.raises(StorageError):
            await svc.topology_edges()
    finally:
        await svc.aclose()
        await nt.aclose()


def test_rfc3339nano_round_trip() -> None:
    ns = 1_700_000_000_123_456_789
    assert rfc3339nano(ns) == "2023-11-14T22:13:20.123456789Z"
    assert rfc3339nano(1_700_000_000_000_000_000) == "2023-11-14T22:13:20Z"
    assert rfc3339nano(1_700_000_000_500_000_000) == "2023-11-14T22:13:20.5Z"
    for value in (ns, 1_700_000_000_000_000_000, 1_700_000_000_500_000_000):
        assert parse_rfc3339nano(rfc3339nano(value)) == value


def write(tmp_path: Path, data: dict[str, object]) -> Path:
    path = tmp_path / "scheduler.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_database_section_defaults_and_secret(tmp_path: Path) -> None:
    cfg = load_config(SchedulerConfig, None)
    assert cfg.database.redis.addrs == []
    redis = cfg.database.redis
    assert (redis.broker_db, redis.backend_db, redis.network_topology_db) == (1, 2, 3)
    assert cfg.network_topology.enable is False
    assert (cfg.network_topology.probe.queue_length, cfg.network_topology.probe.count) == (5, 5)
    path = write(
        tmp_path,
        {
            "database": {"redis": {"addrs": ["127.0.0.1:6379"], "password": "hunter2", "network_topology_db": 7}},
            "network_topology": {"enable": True, "collect_interval_s": 30, "probe": {"queue_length": 3, "count": 2}},
        },
    )
    cfg = load_config(SchedulerConfig, path)
    assert cfg.database.redis.addrs == ["127.0.0.1:6379"]
    assert cfg.database.redis.network_topology_db == 7
    assert cfg.database.redis.password is not None
    assert cfg.database.redis.password.get_secret_value() == "hunter2"
    assert "hunter2" not in cfg.model_dump_json()
    assert cfg.network_topology.probe.count == 2


def test_legacy_top_level_redis_is_mapped_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(
        tmp_path,
        {"redis": {"addrs": ["10.0.0.1:6379"], "password": "pw", "masterName": "mymaster", "brokerDB": 5}},
    )
    with caplog.at_level(logging.WARNING, logger="p2p.scheduler.config"):
        cfg = load_config(SchedulerConfig, path)
    redis = cfg.database.redis
    assert redis.addrs == ["10.0.0.1:6379"]
    assert redis.master_name == "mymaster"
    assert redis.broker_db == 5
    assert redis.network_topology_db == 3
    assert redis.password is not None and redis.password.get_secret_value() == "pw"
    assert any("deprecated" in r.getMessage() and "database.redis" in r.getMessage() for r in caplog.records)
    assert all("pw" not in r.getMessage() for r in caplog.records)


def test_legacy_host_port_layout_and_new_keys_win(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {"redis": {"host": "10.0.0.2", "port": 6380, "backend_db": 4}, "database": {"redis": {"backend_db": 9}}},
    )
    cfg = load_config(SchedulerConfig, path)
    assert cfg.database.redis.addrs == ["10.0.0.2:6380"]
    assert cfg.database.redis.backend_db == 9
    with pytest.raises(ConfigError, match="redis"):
        load_config(SchedulerConfig, write(tmp_path, {"redis": {"addrs": ["a:1"], "bogus": 1}}))
