"""Preheat end to end, as real processes: manager, scheduler, seed peer, peer, and an S3 origin whose
bytes are counted on the wire. A preheat job created with a personal access token reaches the
scheduler through its keepalive, a seed peer fetches the object, and the peer's first read of it
then comes from the seed, not from the origin. Tokens without the `job` scope, expired or revoked
get 403 on the same call."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from tests.fixtures.rclone import RcloneS3, rclone_s3  # noqa: F401  (fixture)
from tests.integration.manager_link_procs import (
    daemon_for,
    registered_scheduler,
    scheduler_for,
    wait_for_log,
    wait_until,
)
from tests.integration.manager_proc import Api, ManagerProc, database_config, manager_process
from tests.integration.test_dfstore_coalescing import write_object
from tests.integration.test_p2p_cluster import CountingRelay, get_all, records

MiB = 1024 * 1024
SIZE = 8 * MiB
HEAD_SLACK = 256 * 1024  # a read still HEADs the origin for the current version: headers only

pytestmark = [pytest.mark.cluster]


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[ManagerProc]:
    home = tmp_path / "manager"
    home.mkdir()
    with database_config("sqlite", home) as db, manager_process(home, db) as proc:
        yield proc


@pytest.fixture
async def api(manager: ManagerProc) -> AsyncIterator[Api]:
    async with aiohttp.ClientSession() as session:
        client = Api(manager.url, session)
        await client.sign_in()
        yield client


async def make_token(api: Api, name: str, scopes: list[str]) -> dict[str, Any]:
    status, tok, _ = await api.call("POST", "/api/v1/personal-access-tokens", {
        "name": name, "scopes": scopes, "expired_at": (datetime.now(UTC) + timedelta(hours=1)).isoformat()})
    assert status == 201, tok
    return tok


async def job_state(api: Api, job_id: int) -> dict[str, Any]:
    status, job, _ = await api.call("GET", f"/api/v1/jobs/{job_id}")
    assert status == 200, job
    return job


async def run_preheat(api: Api, token: str, url: str) -> dict[str, Any]:
    status, job, _ = await api.call(
        "POST", "/oapi/v1/jobs", {"type": "preheat", "args": {"type": "file", "url": url}}, token=token
    )
    assert status == 201, job
    done: dict[str, Any] = {}

    async def finished() -> bool:
        done.update(await job_state(api, job["id"]))
        return done["state"] in ("SUCCESS", "FAILURE")

    await wait_until(finished, 60, f"preheat job {job['id']} of {url} finished")
    return done


@pytest.mark.slow
async def test_preheat_job_then_first_peer_read_comes_from_the_seed(
    tmp_path: Path, manager: ManagerProc, api: Api, rclone_s3: RcloneS3  # noqa: F811
) -> None:
    # Objects first: the S3 origin caches its bucket list once read.
    bucket = "models"
    keys = ["obj.bin", "dir/b c.bin"]
    digests = [await asyncio.to_thread(write_object, rclone_s3.root / bucket / key, SIZE) for key in keys]
    procs = []
    async with CountingRelay(rclone_s3.port) as relay:
        origin = {"kind": "s3", "endpoint": f"http://127.0.0.1:{relay.port}",
                  "access_key": rclone_s3.access_key, "secret_key": rclone_s3.secret_key}
        try:
            sched = await asyncio.to_thread(scheduler_for, tmp_path, manager.grpc)
            procs.append(sched)
            await registered_scheduler(api, "scheduler")
            seed = await asyncio.to_thread(daemon_for, tmp_path, origin, manager.grpc, "seed", seed=True)
            procs.append(seed)
            peer = await asyncio.to_thread(daemon_for, tmp_path, origin, manager.grpc, "peer")
            procs.append(peer)
            # Both daemons found the scheduler through the manager alone.
            for daemon in (seed, peer):
                await wait_for_log(daemon, f"healthy schedulers: ['{sched.ready['address']}']")

            # The seed peer registered itself, with the ports the daemon really serves on.
            status, seeds, _ = await api.call("GET", "/api/v1/seed-peers")
            assert status == 200
            [sp] = [s for s in seeds if s["host_name"] == "seed"]
            assert sp["state"] == "active" and sp["download_port"] == int(seed.ready["upload"].rsplit(":", 1)[1])

            # Tokens that may not create jobs: no `job` scope, expired, revoked. Each gets 403, no job is made.
            job = {"type": "preheat", "args": {"type": "file", "url": f"s3://{bucket}/{keys[0]}"}}
            no_scope, expired, revoked = [await make_token(api, name, scopes)
                                          for name, scopes in (("c", ["cluster"]), ("e", ["job"]), ("r", ["job"]))]
            past = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
            assert (await api.call("PATCH", f"/api/v1/personal-access-tokens/{expired['id']}",
                                   {"expired_at": past}))[0] == 200
            assert (await api.call("PATCH", f"/api/v1/personal-access-tokens/{revoked['id']}",
                                   {"state": "inactive"}))[0] == 200
            for bad, why in ((no_scope, "job"), (expired, "expired"), (revoked, "inactive")):
                status, body, _ = await api.call("POST", "/oapi/v1/jobs", job, token=bad["token"])
                assert status == 403 and why in body["message"], body
            status, jobs, _ = await api.call("GET", "/api/v1/jobs")
            assert status == 200 and jobs == []

            tok = await make_token(api, "ci-preheat", ["job"])

            # One object named as S3 does, one as dfstore does (the key percent-encoded).
            urls = [f"s3://{bucket}/{keys[0]}", f"dfs://{bucket}/{quote(keys[1])}"]
            messages = []
            for key, url, digest in zip(keys, urls, digests, strict=True):
                before = relay.bytes_from_target
                job = await run_preheat(api, tok["token"], url)
                [run] = job["result"]["scheduler_clusters"]
                assert job["state"] == "SUCCESS" and run["state"] == "SUCCESS", job
                messages.append(run["message"])
                assert relay.bytes_from_target - before >= SIZE  # the seed read it from the origin

                before = relay.bytes_from_target
                read = f"{peer.ready['dfstore']}/buckets/{bucket}/objects/{quote(key)}"
                assert await get_all([read]) == [(200, SIZE, digest)]
                origin_bytes = relay.bytes_from_target - before
                assert origin_bytes < HEAD_SLACK, f"the peer's first read took {origin_bytes} bytes from the origin"
                print(f"{url}: first peer read of {SIZE // MiB} MiB took {origin_bytes} bytes from the origin")

            # The scheduler's records: the seed read each object from the origin; the peer read the
            # same task ids (as the job reported them) with no origin bytes at all.
            await wait_until(lambda: asyncio.to_thread(lambda: len(records(tmp_path)) >= 4), 10, "4 records")
            done = records(tmp_path)
            seed_rows = [r for r in done if r["peer_id"].endswith("_Seed")]
            peer_rows = [r for r in done if not r["peer_id"].endswith("_Seed")]
            assert [r["source_bytes"] for r in seed_rows] == [SIZE, SIZE]
            assert [r["source_bytes"] for r in peer_rows] == [0, 0] and all(r["success"] for r in peer_rows)
            assert [r["task_id"] for r in peer_rows] == [r["task_id"] for r in seed_rows]
            assert all(f"task {r['task_id']} " in m for r, m in zip(seed_rows, messages, strict=True))

            # The seed peer keeps alive: still active past the manager's keepalive timeout (3 s here).
            await asyncio.sleep(3.5)
            status, again, _ = await api.call("GET", f"/api/v1/seed-peers/{sp['id']}")
            assert status == 200 and again["state"] == "active"
            assert again["last_keepalive_at"] > sp["last_keepalive_at"]
        finally:
            for child in reversed(procs):
                await asyncio.to_thread(child.stop)
