"""Network topology with real processes: a scheduler and three daemons probing each other every 0.3 s.

The scheduler ends up with an edge for every ordered pair of daemons, each with a positive RTT; with
Redis configured the edges are in Redis in Dragonfly's key layout; a daemon that leaves takes its
edges with it; a scheduler linked to a manager reports the edges with its keepalive.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import yaml
from grpc import aio
from redis.asyncio import Redis

from dfly.procs import Child, spawn
from p2p.clients.scheduler import SchedulerClient
from p2p.common.ids import host_id, local_hostname
from p2p.proto import scheduler_pb2 as pb
from p2p.proto import scheduler_pb2_grpc as pb_grpc
from p2p.proto.values import TopologyEdge
from p2p.types import HostID
from tests.cluster import fs_origin, start_daemon
from tests.integration.manager_proc import Api, database_config, manager_process
from tests.redis_server import require_redis

pytestmark = [pytest.mark.cluster]

DAEMONS = 3
DEADLINE_S = 30.0


def start_scheduler(workdir: Path, extra: dict[str, Any]) -> Child:
    cfg = {"server": {"listen": "127.0.0.1", "port": 0}} | extra
    (workdir / "scheduler").mkdir(parents=True, exist_ok=True)
    path = workdir / "scheduler" / "scheduler.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return spawn(
        "scheduler",
        ["p2p.scheduler", "--config", str(path), "--log-level", "DEBUG"],
        ready_file=workdir / "scheduler" / "ready.json",
        log_path=workdir / "scheduler" / "scheduler.log",
    )


def daemon_host_id(child: Child) -> HostID:
    port = int(child.ready["upload"].rsplit(":", 1)[1])
    return host_id("127.0.0.1", f"{local_hostname()}-{port}")


@pytest.fixture
def stack() -> Iterator[ExitStack]:
    with ExitStack() as s:
        yield s


async def wait_edges(client: SchedulerClient, address: str, hosts: set[HostID]) -> list[TopologyEdge]:
    """Until every ordered pair of `hosts` has an edge with at least two probes (bounded in time)."""
    want = {(a, b) for a in hosts for b in hosts if a != b}
    deadline = time.monotonic() + DEADLINE_S
    while True:
        edges = [e for e in await client.stat_topology(address) if {e.src_host_id, e.dest_host_id} <= hosts]
        have = {(e.src_host_id, e.dest_host_id) for e in edges if e.probe_count >= 2}
        if have >= want:
            return edges
        assert time.monotonic() < deadline, f"edges after {DEADLINE_S} s: {sorted(have)} of {sorted(want)}"
        await asyncio.sleep(0.2)


@pytest.mark.parametrize("backend", ["memory", "redis"])
async def test_daemons_probe_each_other(tmp_path: Path, stack: ExitStack, backend: str) -> None:
    extra: dict[str, Any] = {
        "network_topology": {"enable": True, "collect_interval_s": 0.5, "probe": {"count": 5, "queue_length": 3}}
    }
    if backend == "redis":
        extra["database"] = {"redis": {"addrs": [require_redis()], "network_topology_db": 3}}
    scheduler = start_scheduler(tmp_path, extra)
    stack.callback(scheduler.stop)
    address = scheduler.ready["address"]
    daemon_extra = {
        "daemon": {
            "scheduler": {"addresses": [address], "health_interval_s": 0.2},
            "network_topology": {"enable": True, "probe": {"interval_s": 0.3}},
        }
    }
    origin = fs_origin(tmp_path)
    daemons = []
    for _ in range(DAEMONS):
        child = start_daemon(tmp_path, origin, extra=daemon_extra)
        stack.callback(child.stop)
        daemons.append(child)
    hosts = {daemon_host_id(d) for d in daemons}
    assert len(hosts) == DAEMONS

    client = SchedulerClient([address])
    redis: Redis | None = Redis(host="127.0.0.1", port=6379, db=3) if backend == "redis" else None
    try:
        edges = await wait_edges(client, address, hosts)
        assert len(edges) == DAEMONS * (DAEMONS - 1)
        for edge in edges:
            assert 0 < edge.average_rtt_ns < 1_000_000_000, edge
            assert 2 <= edge.probe_count <= 3, edge  # the queue keeps probe.queue_length
            assert 0 < edge.created_at_ns <= edge.updated_at_ns
        if redis is not None:
            for edge in edges:
                src, dest = edge.src_host_id, edge.dest_host_id
                fields = await redis.hgetall(f"scheduler:network-topology:{src}:{dest}")
                assert {b"createdAt", b"averageRTT", b"updatedAt"} <= set(fields)
                assert int(fields[b"averageRTT"]) > 0
                probes = await redis.lrange(f"scheduler:probes:{src}:{dest}", 0, -1)
                assert 1 <= len(probes) <= 3
                assert all(json.loads(p)["rtt"] > 0 and json.loads(p)["host"]["id"] == dest for p in probes)
                assert int(await redis.get(f"scheduler:probed-count:{dest}") or 0) >= 2

        # A daemon that stops leaves its host: every edge from or to it goes.
        gone = daemon_host_id(daemons[0])
        assert daemons[0].stop() == 0
        deadline = time.monotonic() + DEADLINE_S
        while any(gone in (e.src_host_id, e.dest_host_id) for e in await client.stat_topology(address)):
            assert time.monotonic() < deadline, "edges of a departed host are still there"
            await asyncio.sleep(0.2)
        if redis is not None:
            assert await redis.exists(f"scheduler:probed-count:{gone}") == 0
            assert [k async for k in redis.scan_iter(match=f"scheduler:*{gone}*")] == []
    finally:
        await client.aclose()
        if redis is not None:
            for h in hosts:  # leave no keys behind in the shared Redis
                keys = [k async for k in redis.scan_iter(match=f"scheduler:*{h}*")]
                if keys:
                    await redis.delete(*keys)
            await redis.aclose()
    # The scheduler's log shows the store it used, and no secret or error.
    log = (tmp_path / "scheduler" / "scheduler.log").read_text()
    assert f"network topology in {'Redis' if backend == 'redis' else 'memory'}" in log
    assert "Traceback" not in log


async def test_edges_reach_the_manager_snapshot(tmp_path: Path, stack: ExitStack) -> None:
    """The scheduler sends its edges with its keepalive; the manager serves them for the console."""
    home = tmp_path / "manager"
    home.mkdir()
    db = stack.enter_context(database_config("sqlite", home))
    mgr = stack.enter_context(manager_process(home, db))
    scheduler = start_scheduler(
        tmp_path,
        {
            "manager": {"address": mgr.grpc, "host_name": "sched-topology", "keepalive_interval_s": 0.3},
            "network_topology": {"enable": True},
        },
    )
    stack.callback(scheduler.stop)
    address = scheduler.ready["address"]
    daemon_extra = {
        "daemon": {
            "scheduler": {"addresses": [address], "health_interval_s": 0.2},
            "network_topology": {"enable": True, "probe": {"interval_s": 0.3}},
        }
    }
    origin = fs_origin(tmp_path)
    daemons = [start_daemon(tmp_path, origin, extra=daemon_extra) for _ in range(2)]
    for child in daemons:
        stack.callback(child.stop)
    hosts = {daemon_host_id(d) for d in daemons}
    addresses = {d.ready["upload"].removeprefix("http://") for d in daemons}

    async with aiohttp.ClientSession() as session:
        api = Api(mgr.url, session)
        await api.sign_in()
        deadline = time.monotonic() + DEADLINE_S
        while True:
            status, edges, _ = await api.call("GET", "/api/v1/clusters/1/topology")
            assert status == 200, edges
            if {(e["src_host_id"], e["dest_host_id"]) for e in edges} == {
                (a, b) for a in hosts for b in hosts if a != b
            }:
                break
            assert time.monotonic() < deadline, f"the manager's topology: {edges}"
            await asyncio.sleep(0.2)
    for edge in edges:
        assert edge["average_rtt_ns"] > 0 and edge["probe_count"] >= 1
        assert {edge["src_address"], edge["dest_address"]} == addresses
        assert edge["src_host_name"] == local_hostname()
        assert edge["updated_at_ns"] > 0


async def test_topology_rpcs_are_unimplemented_when_off(tmp_path: Path, stack: ExitStack) -> None:
    scheduler = start_scheduler(tmp_path, {})
    stack.callback(scheduler.stop)
    address = scheduler.ready["address"]
    async with aio.insecure_channel(address) as channel:
        stub = pb_grpc.SchedulerStub(channel)
        for call, request in (
            (stub.SyncProbes, pb.SyncProbesRequest()),
            (stub.ReportProbes, pb.ReportProbesRequest()),
            (stub.StatTopology, pb.StatTopologyRequest()),
        ):
            with pytest.raises(aio.AioRpcError) as err:
                await call(request, timeout=5)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert "network topology is disabled" in (err.value.details() or "")
