"""The scheduler/seed-peer/daemon side of the manager contract (p2p.clients.manager) against a real manager."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from p2p.clients.manager import ManagerClient, PreheatRun, SchedulerAgent, SchedulerDirectory, SeedPeerAgent
from tests.integration.manager_proc import Api, database_config, manager_process


async def wait_for(predicate, timeout_s: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def test_scheduler_agent_runs_preheats_and_follows_features(tmp_path: Path) -> None:
    seen: list[str] = []

    async def preheat(run: PreheatRun) -> str:
        if run.url.endswith("/broken"):
            raise RuntimeError("origin answered 500")
        seen.append(run.url)
        return "seeded"

    with database_config("sqlite", tmp_path) as db, manager_process(tmp_path, db) as mgr:
        async with aiohttp.ClientSession() as session, ManagerClient(mgr.grpc) as mc:
            api = Api(mgr.url, session)
            await api.sign_in()
            agent = SchedulerAgent(mc, host_name="sched-1", ip="127.0.0.1", port=18002, interval_s=0.2,
                                   on_preheat=preheat)
            seed = SeedPeerAgent(mc, host_name="seed-1", ip="127.0.0.1", port=65000, download_port=65002,
                                 interval_s=0.2)
            tasks = [asyncio.create_task(agent.run()), asyncio.create_task(seed.run())]
            try:
                await asyncio.wait_for(agent.registered.wait(), 10)
                await asyncio.wait_for(seed.registered.wait(), 10)
                assert agent.allows("preheat") and agent.allows("schedule")
                status, tok, _ = await api.call("POST", "/api/v1/personal-access-tokens", {
                    "name": "preheat", "scopes": ["job"],
                    "expired_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})
                assert status == 201

                status, job, _ = await api.call("POST", "/oapi/v1/jobs", {
                    "type": "preheat", "args": {"url": "dfs://models/a.bin"}}, token=tok["token"])
                assert status == 201

                async def done(ident: int = job["id"]) -> bool:
                    return (await api.call("GET", f"/api/v1/jobs/{ident}"))[1]["state"] in ("SUCCESS", "FAILURE")

                await wait_for(done)
                final = (await api.call("GET", f"/api/v1/jobs/{job['id']}"))[1]
                assert final["state"] == "SUCCESS" and final["result"]["scheduler_clusters"][0]["message"] == "seeded"
                assert seen == ["dfs://models/a.bin"]

                status, bad, _ = await api.call("POST", "/api/v1/jobs", {
                    "type": "preheat", "args": {"url": "dfs://models/broken"}})
                await wait_for(lambda: done(bad["id"]))
                run = (await api.call("GET", f"/api/v1/jobs/{bad['id']}"))[1]["result"]["scheduler_clusters"][0]
                assert run["state"] == "FAILURE" and "origin answered 500" in run["message"]

                # The manager withdraws `preheat`: the agent learns it with the next keepalive.
                await api.call("PATCH", f"/api/v1/schedulers/{agent.scheduler_id}", {"features": ["schedule"]})

                async def withdrawn() -> bool:
                    return not agent.allows("preheat")

                await wait_for(withdrawn)
                assert agent.allows("schedule")
                status, _, _ = await api.call("POST", "/api/v1/jobs", {
                    "type": "preheat", "args": {"url": "dfs://models/b.bin"}})
                assert status == 422

                # Daemons discover the scheduler by its advertised address, and keep it when the manager is gone.
                directory = SchedulerDirectory(mc, fallback=[])
                assert await directory.refresh() == ["127.0.0.1:18002"]
                status, sp, _ = await api.call("GET", f"/api/v1/seed-peers/{seed.seed_peer_id}")
                assert sp["state"] == "active"
            finally:
                for t in tasks:
                    t.cancel()
                for t in tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await t
    # The manager process is stopped now.
    assert await directory.refresh() == ["127.0.0.1:18002"]
    assert directory.last_error is not None
    assert agent.allows("schedule") and not agent.allows("preheat")  # last known features are kept
    assert await agent.beat() is None
    await mc.aclose()  # the refreshes above reopened the client's session


async def test_unreported_preheat_run_times_out(tmp_path: Path) -> None:
    with database_config("sqlite", tmp_path) as db, manager_process(
        tmp_path, db, job={"timeout_s": 1}, keepalive={"timeout_s": 30, "sweep_interval_s": 0.3}
    ) as mgr:
        async with aiohttp.ClientSession() as session, ManagerClient(mgr.grpc) as mc:
            api = Api(mgr.url, session)
            await api.sign_in()
            sched = await mc.register_scheduler(host_name="slow", ip="127.0.0.1", port=8002)
            status, job, _ = await api.call("POST", "/api/v1/jobs", {"type": "preheat",
                                                                      "args": {"url": "s3://bucket/key"}})
            assert status == 201
            assert [r.job_id for r in (await mc.keepalive_scheduler(sched.id)).jobs] == [job["id"]]

            async def failed() -> bool:
                return (await api.call("GET", f"/api/v1/jobs/{job['id']}"))[1]["state"] == "FAILURE"

            await wait_for(failed, 10)
            run = (await api.call("GET", f"/api/v1/jobs/{job['id']}"))[1]["result"]["scheduler_clusters"][0]
            assert run["message"] == "timed out"
            # A late success does not resurrect a timed-out run.
            assert await mc.report_job(job["id"], scheduler_id=sched.id, state="SUCCESS") == "FAILURE"
