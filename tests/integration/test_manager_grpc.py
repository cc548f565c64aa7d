"""The manager's gRPC component API, called with the generated stub against a real manager process:
advertised address, component auth, ListSchedulers ranking and filtering, KeepAlive and its timeout."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import grpc
import pytest
from grpc import aio

from p2p.clients.manager import ManagerClient
from p2p.proto import manager_pb2 as mpb
from p2p.proto import manager_pb2_grpc as mpb_grpc
from tests.integration.manager_proc import Api, ManagerProc, database_config, manager_process

TOKEN = "component-Token-5521"
AUTH = (("authorization", f"Bearer {TOKEN}"),)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def test_advertised_address_differs_from_the_listen_port(tmp_path: Path) -> None:
    """Components are told the advertised address (e.g. a NAT port); the listen port is what serves."""
    with database_config("sqlite", tmp_path) as db, manager_process(
        tmp_path, db,
        server={"work_home": str(tmp_path / "home"), "rest": {"port": 0},
                "grpc": {"port": 0, "advertise_ip": "10.9.8.7", "advertise_port": 16003}},
    ) as mgr:
        assert mgr.grpc == "10.9.8.7:16003" and mgr.ready["grpc_port"] not in (0, 16003)
        async with ManagerClient(f"127.0.0.1:{mgr.ready['grpc_port']}") as mc:
            # A scheduler listening on one port and advertising another: the row keeps the advertised one.
            s = await mc.register_scheduler(host_name="nat-s", ip="10.1.2.3", port=18002)
            assert (s.ip, s.port) == ("10.1.2.3", 18002)
        async with aiohttp.ClientSession() as session:
            api = Api(mgr.url, session)
            await api.sign_in()
            row = (await api.call("GET", f"/api/v1/schedulers/{s.id}"))[1]
            assert (row["ip"], row["port"], row["state"]) == ("10.1.2.3", 18002, "active")


@pytest.fixture(scope="module")
def mgr(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagerProc]:
    tmp = tmp_path_factory.mktemp("manager-grpc")
    with database_config("sqlite", tmp) as db, manager_process(
        tmp, db, auth={"root_password": "root-Pa55word", "component_token": TOKEN}
    ) as proc:
        yield proc


@pytest.fixture
async def stub(mgr: ManagerProc) -> AsyncIterator[mpb_grpc.ManagerStub]:
    async with aio.insecure_channel(mgr.grpc) as channel:
        yield mpb_grpc.ManagerStub(channel)


@pytest.fixture
async def api(mgr: ManagerProc) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        client = Api(mgr.url, session)
        await client.sign_in()
        yield client


async def test_unauthenticated_calls_are_refused(stub: mpb_grpc.ManagerStub) -> None:
    request = mpb.UpdateSchedulerRequest(hostname=uid("s"), ip="127.0.0.1", port=8002)
    for metadata in ((), (("authorization", "Bearer wrong"),), (("authorization", TOKEN),),
                     (("authorization", f"Basic {TOKEN}"),)):
        with pytest.raises(aio.AioRpcError) as err:
            await stub.UpdateScheduler(request, metadata=metadata, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert TOKEN not in (err.value.details() or "")
        with pytest.raises(aio.AioRpcError) as err:
            await stub.ListSchedulers(mpb.ListSchedulersRequest(), metadata=metadata, timeout=10)
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
        call = stub.KeepAlive(metadata=metadata, timeout=10)
        with pytest.raises(aio.AioRpcError) as err:
            await call.write(mpb.KeepAliveRequest(id=1))
            await call.read()
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    created = await stub.UpdateScheduler(request, metadata=AUTH, timeout=10)
    assert created.state == "active" and created.hostname == request.hostname
    # A body that breaks a rule is INVALID_ARGUMENT, from the same schema the REST layer used.
    with pytest.raises(aio.AioRpcError) as err:
        await stub.UpdateScheduler(mpb.UpdateSchedulerRequest(hostname="x", ip="not-an-ip", port=8002),
                                   metadata=AUTH, timeout=10)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT and "ip" in (err.value.details() or "")


async def test_list_schedulers_ranks_clusters_and_filters_schedule(stub: mpb_grpc.ManagerStub, api: Api) -> None:
    clusters = {}
    for name, scopes in (("plain", {}), ("cidr", {"cidrs": ["10.20.0.0/16"]}), ("idc", {"idc": "x|idc-7"}),
                         ("loc", {"location": "cn|sh|a"})):
        status, c, _ = await api.call("POST", "/api/v1/clusters", {"name": uid(name), "scopes": scopes})
        assert status == 201, c
        clusters[name] = c["id"]

    async def register(name: str, cluster: str, features: list[str] | None = None) -> mpb.Scheduler:
        request = mpb.UpdateSchedulerRequest(hostname=uid(name), ip="127.0.0.1", port=8002,
                                             scheduler_cluster_id=clusters[cluster])
        if features is not None:
            request.features.names.extend(features)
        return await stub.UpdateScheduler(request, metadata=AUTH, timeout=10)

    plain, cidr, idc, loc = [await register(n, n) for n in clusters]
    no_schedule = await register("preheat-only", "idc", ["preheat"])
    try:
        answer = await stub.ListSchedulers(
            mpb.ListSchedulersRequest(source_type=mpb.PEER_SOURCE, hostname="peer", ip="10.20.3.4",
                                      host_info={"idc": "idc-7", "location": "cn|sh|b"}),
            metadata=AUTH, timeout=10,
        )
        ours = [s for s in answer.schedulers if s.id in (plain.id, cidr.id, idc.id, loc.id, no_schedule.id)]
        # 0.40 CIDR > 0.35 IDC > 0.24 x 2/5 location prefix > nothing; no `schedule`: never listed.
        assert [s.id for s in ours] == [cidr.id, idc.id, loc.id, plain.id]
        assert [round(s.cluster_score, 3) for s in ours] == [0.4, 0.35, 0.096, 0.0]
        assert all("schedule" in s.features for s in ours) and ours[0].port == 8002
        bare = await stub.ListSchedulers(mpb.ListSchedulersRequest(), metadata=AUTH, timeout=10)
        assert no_schedule.id not in [s.id for s in bare.schedulers]
    finally:
        for s in (plain, cidr, idc, loc, no_schedule):
            assert (await api.call("DELETE", f"/api/v1/schedulers/{s.id}"))[0] == 204
        for cid in clusters.values():
            assert (await api.call("DELETE", f"/api/v1/clusters/{cid}"))[0] == 204


async def test_keepalive_stream_keeps_active_and_its_end_makes_inactive_after_the_timeout(
    stub: mpb_grpc.ManagerStub, api: Api
) -> None:
    """keepalive.timeout_s is 3 s here: a scheduler whose stream goes on stays active past it, one whose
    stream stopped turns inactive; the stream's answers carry state, features and preheat runs."""
    kept = await stub.UpdateScheduler(mpb.UpdateSchedulerRequest(hostname=uid("kept"), ip="127.0.0.1", port=8002),
                                      metadata=AUTH, timeout=10)
    gone = await stub.UpdateScheduler(mpb.UpdateSchedulerRequest(hostname=uid("gone"), ip="127.0.0.2", port=8002),
                                      metadata=AUTH, timeout=10)
    kept_call = stub.KeepAlive(metadata=AUTH)
    gone_call = stub.KeepAlive(metadata=AUTH)
    try:
        for call, s in ((kept_call, kept), (gone_call, gone)):
            await call.write(mpb.KeepAliveRequest(source_type=mpb.SCHEDULER_SOURCE, hostname=s.hostname, id=s.id))
            answer = await asyncio.wait_for(call.read(), 10)
            assert answer.scheduler.id == s.id and answer.scheduler.state == "active"
            assert sorted(answer.scheduler.features) == ["preheat", "schedule"] and not answer.jobs
        gone_beat = time.monotonic()  # after the manager stamped gone's last keepalive
        await gone_call.done_writing()  # the "gone" scheduler stops its stream
        assert await asyncio.wait_for(gone_call.read(), 10) is aio.EOF
        assert await gone_call.code() == grpc.StatusCode.OK

        state = "active"
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            await kept_call.write(mpb.KeepAliveRequest(source_type=mpb.SCHEDULER_SOURCE, id=kept.id))
            assert (await asyncio.wait_for(kept_call.read(), 10)).scheduler.state == "active"
            state = (await api.call("GET", f"/api/v1/schedulers/{gone.id}"))[1]["state"]
            if state == "inactive":
                break
            await asyncio.sleep(0.3)
        assert state == "inactive" and time.monotonic() - gone_beat >= 2.0  # not before the 3 s timeout
        await asyncio.sleep(1.5)  # one more sweep: the live stream still holds its scheduler active
        await kept_call.write(mpb.KeepAliveRequest(source_type=mpb.SCHEDULER_SOURCE, id=kept.id))
        await asyncio.wait_for(kept_call.read(), 10)
        assert (await api.call("GET", f"/api/v1/schedulers/{kept.id}"))[1]["state"] == "active"

        # A preheat run reaches the scheduler on its stream, once.
        status, job, _ = await api.call("POST", "/api/v1/jobs", {"type": "preheat", "args": {
            "url": "dfs://models/x.bin", "headers": {"X-A": "1"}}, "scheduler_cluster_ids": [1]})
        assert status == 201, job
        await kept_call.write(mpb.KeepAliveRequest(source_type=mpb.SCHEDULER_SOURCE, id=kept.id))
        answer = await asyncio.wait_for(kept_call.read(), 10)
        assert [(j.id, j.type, j.url, dict(j.headers)) for j in answer.jobs] == [
            (job["id"], "preheat", "dfs://models/x.bin", {"X-A": "1"})]
        await kept_call.write(mpb.KeepAliveRequest(source_type=mpb.SCHEDULER_SOURCE, id=kept.id))
        assert not (await asyncio.wait_for(kept_call.read(), 10)).jobs
        done = await stub.ReportJobResult(mpb.ReportJobResultRequest(
            job_id=job["id"], scheduler_id=kept.id, state="SUCCESS", message="ok"), metadata=AUTH, timeout=10)
        assert done.state == "SUCCESS"

        # An unknown id ends the stream with NOT_FOUND.
        await kept_call.write(mpb.KeepAliveRequest(source_type=mpb.SCHEDULER_SOURCE, id=999999))
        with pytest.raises(aio.AioRpcError) as err:
            await asyncio.wait_for(kept_call.read(), 10)
        assert err.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        kept_call.cancel()
        gone_call.cancel()
        for s in (kept, gone):
            await api.call("DELETE", f"/api/v1/schedulers/{s.id}")
