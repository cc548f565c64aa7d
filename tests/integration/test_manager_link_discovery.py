"""Daemons find their schedulers through the manager, follow changes to the list, and keep the last
list while the manager is down; a daemon with static `scheduler.addresses` joins the same P2P
network without a manager."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import pytest

from dfly.procs import Child
from tests.cluster import fs_origin, start_daemon
from tests.integration.manager_link_procs import (
    LINK_INTERVAL_S,
    daemon_for,
    registered_scheduler,
    scheduler_for,
    wait_for_log,
    wait_until,
)
from tests.integration.manager_proc import Api, database_config, manager_process
from tests.integration.test_dfstore_coalescing import write_object
from tests.integration.test_p2p_cluster import get_all, records

MiB = 1024 * 1024
SIZE = 8 * MiB

pytestmark = [pytest.mark.cluster]


def url_of(daemon: Child, bucket: str, key: str) -> str:
    return f"{daemon.ready['dfstore']}/buckets/{bucket}/objects/{key}"


@pytest.mark.slow
async def test_daemon_follows_the_manager_list_and_keeps_it_when_the_manager_is_down(tmp_path: Path) -> None:
    origin = fs_origin(tmp_path)
    digest = await asyncio.to_thread(write_object, Path(origin["path"]) / "bkt" / "k0", SIZE)
    home = tmp_path / "manager"
    home.mkdir()
    procs: list[Child] = []
    try:
        with database_config("sqlite", home) as db, manager_process(home, db) as mgr:
            async with aiohttp.ClientSession() as session:
                api = Api(mgr.url, session)
                await api.sign_in()
                # The daemon starts before any scheduler: it serves (from the origin) with an empty list.
                peer = await asyncio.to_thread(daemon_for, tmp_path, origin, mgr.grpc, "peer-m")
                procs.append(peer)
                sched = await asyncio.to_thread(scheduler_for, tmp_path, mgr.grpc, name="sched-1")
                procs.append(sched)
                await registered_scheduler(api, "sched-1")
                # The next refresh hands it over, and it passes its health check.
                await wait_for_log(peer, f"healthy schedulers: ['{sched.ready['address']}']")
        # The manager is gone; the daemon keeps refreshing in vain and keeps its list.
        await asyncio.sleep(5 * LINK_INTERVAL_S)
        assert "scheduler list: empty" not in peer.log_path.read_text()
        static = await asyncio.to_thread(
            start_daemon, tmp_path, origin, name="peer-s",
            extra={"daemon": {"scheduler": {"addresses": [sched.ready["address"]], "health_interval_s": 0.3}}},
        )
        procs.append(static)
        await wait_for_log(static, f"healthy schedulers: ['{sched.ready['address']}']")
        await asyncio.sleep(0.5)  # its host announcement reaches the scheduler

        assert await get_all([url_of(peer, "bkt", "k0")]) == [(200, SIZE, digest)]
        assert await get_all([url_of(static, "bkt", "k0")]) == [(200, SIZE, digest)]
        await wait_until(lambda: asyncio.to_thread(lambda: len(records(tmp_path, "sched-1")) >= 2), 10, "records")
        first, second = records(tmp_path, "sched-1")[:2]
        # Both went through the scheduler: the manager-discovered daemon fetched the origin once,
        # and the statically configured one got every piece from it.
        assert first["success"] and first["source_bytes"] == SIZE
        assert second["success"] and second["source_bytes"] == 0 and second["task_id"] == first["task_id"]
    finally:
        for child in reversed(procs):
            await asyncio.to_thread(child.stop)


@pytest.mark.slow
async def test_daemon_follows_a_scheduler_replaced_in_the_manager(tmp_path: Path) -> None:
    origin = fs_origin(tmp_path)
    home = tmp_path / "manager"
    home.mkdir()
    procs: list[Child] = []
    try:
        with database_config("sqlite", home) as db, manager_process(home, db) as mgr:
            async with aiohttp.ClientSession() as session:
                api = Api(mgr.url, session)
                await api.sign_in()
                old = await asyncio.to_thread(scheduler_for, tmp_path, mgr.grpc, name="sched-old")
                procs.append(old)
                await registered_scheduler(api, "sched-old")
                peer = await asyncio.to_thread(daemon_for, tmp_path, origin, mgr.grpc, "peer-f")
                procs.append(peer)
                await wait_for_log(peer, f"healthy schedulers: ['{old.ready['address']}']")

                new = await asyncio.to_thread(scheduler_for, tmp_path, mgr.grpc, name="sched-new")
                procs.append(new)
                await registered_scheduler(api, "sched-new")
                await wait_for_log(peer, f"scheduler list: ['{old.ready['address']}', '{new.ready['address']}']")
                # The old one goes away: its keepalives stop, the manager marks it inactive (3 s here)
                # and leaves it out of discovery, and the daemon drops it.
                await asyncio.to_thread(old.stop)
                await wait_for_log(peer, f"scheduler list: ['{new.ready['address']}']", timeout_s=30)
                await wait_for_log(peer, f"healthy schedulers: ['{new.ready['address']}']")
                record = await registered_scheduler(api, "sched-new")
                assert record["state"] == "active"
    finally:
        for child in reversed(procs):
            await asyncio.to_thread(child.stop)
