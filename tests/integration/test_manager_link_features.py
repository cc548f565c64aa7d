"""A scheduler process registered with a real manager: advertised address, and the `preheat` and
`schedule` features enforced by the scheduler itself on direct gRPC calls, kept while the manager
is down."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import aiohttp
import grpc
from grpc import aio

from p2p.clients.manager import ManagerClient
from p2p.proto import convert
from p2p.proto import scheduler_pb2_grpc as pb_grpc
from p2p.proto.values import HostInfo, Registration, TaskSpec
from p2p.types import HostID, PeerID, SourceStat, TaskID
from tests.integration.manager_link_procs import (
    LINK_INTERVAL_S,
    direct_preheat,
    registered_scheduler,
    scheduler_for,
    wait_until,
)
from tests.integration.manager_proc import Api, database_config, manager_process

ADVERTISED_PORT = 18123  # what daemons would dial (e.g. a NAT port); nothing listens there
_peers = itertools.count()


async def direct_register(address: str) -> tuple[grpc.StatusCode, str]:
    n = next(_peers)  # a new peer each time: registering one peer twice is another matter
    host = HostInfo(id=HostID(f"h{n}"), ip="127.0.0.1", hostname=f"h{n}", download_port=1)
    spec = TaskSpec(url=f"dfs://b/k{n}", stat=SourceStat(size=10, version="v1"), piece_size=4 * 1024 * 1024)
    reg = Registration(task_id=TaskID(f"t{n}"), peer_id=PeerID(f"p{n}"), host=host, spec=spec)
    async with aio.insecure_channel(address) as channel:
        try:
            await pb_grpc.SchedulerStub(channel).RegisterPeer(convert.registration_to_pb(reg), timeout=10)
        except aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
    return grpc.StatusCode.OK, ""


async def test_scheduler_enforces_its_features_and_keeps_them_without_the_manager(tmp_path: Path) -> None:
    home = tmp_path / "manager"
    home.mkdir()
    sched = None
    try:
        with database_config("sqlite", home) as db, manager_process(home, db) as mgr:
            async with aiohttp.ClientSession() as session:
                api = Api(mgr.url, session)
                await api.sign_in()
                sched = await asyncio.to_thread(scheduler_for, tmp_path, mgr.grpc, name="sched-a",
                                                advertise_port=ADVERTISED_PORT)
                address = f"127.0.0.1:{sched.ready['port']}"
                record = await registered_scheduler(api, "sched-a")
                # Registered with the advertised address, not the listen one.
                assert (record["ip"], record["port"]) == ("127.0.0.1", ADVERTISED_PORT) != sched.ready["port"]
                assert sorted(record["features"]) == ["preheat", "schedule"]
                # Preheat is allowed: it fails only for want of a seed peer.
                code, details = await direct_preheat(address, "dfs://b/k")
                assert code == grpc.StatusCode.FAILED_PRECONDITION and "no seed peer" in details

                status, _, _ = await api.call("PATCH", f"/api/v1/schedulers/{record['id']}", {"features": ["schedule"]})
                assert status == 200

                async def preheat_refused() -> bool:
                    return "preheat feature disabled" in (await direct_preheat(address, "dfs://b/k"))[1]

                await wait_until(preheat_refused, 10, "the scheduler refuses preheat")
                assert await direct_preheat(address, "s3://b/k") == (
                    grpc.StatusCode.FAILED_PRECONDITION, "scheduler has the preheat feature disabled")
                assert await direct_register(address) == (grpc.StatusCode.OK, "")
                # The manager routes no job to it either.
                status, body, _ = await api.call("POST", "/api/v1/jobs", {"type": "preheat",
                                                                           "args": {"url": "dfs://b/k"}})
                assert status == 422, body

                status, _, _ = await api.call("PATCH", f"/api/v1/schedulers/{record['id']}", {"features": ["preheat"]})
                assert status == 200

                async def registration_refused() -> bool:
                    return (await direct_register(address))[0] == grpc.StatusCode.FAILED_PRECONDITION

                await wait_until(registration_refused, 10, "the scheduler refuses RegisterPeer")
                assert await direct_register(address) == (
                    grpc.StatusCode.FAILED_PRECONDITION, "scheduler has the schedule feature disabled")
                async with ManagerClient(mgr.grpc) as mc:
                    assert await mc.list_schedulers() == []  # not handed to daemons
                code, details = await direct_preheat(address, "dfs://b/k")
                assert "no seed peer" in details  # preheat is back
        # The manager is gone: several keepalives fail, and the last features stay in force.
        await asyncio.sleep(6 * LINK_INTERVAL_S)
        assert sched.proc.poll() is None
        assert await direct_register(address) == (
            grpc.StatusCode.FAILED_PRECONDITION, "scheduler has the schedule feature disabled")
        assert "no seed peer" in (await direct_preheat(address, "dfs://b/k"))[1]
    finally:
        if sched is not None:
            await asyncio.to_thread(sched.stop)
