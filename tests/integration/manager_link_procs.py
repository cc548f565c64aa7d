"""Processes wired to a manager for the manager-link and preheat tests: a scheduler that registers
with the manager, daemons that discover schedulers from it, and small waits on their state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
from grpc import aio

from dfly.procs import Child
from p2p.proto import scheduler_pb2 as pb
from p2p.proto import scheduler_pb2_grpc as pb_grpc
from tests.cluster import start_daemon
from tests.integration.manager_proc import Api
from tests.integration.test_p2p_cluster import start_scheduler

LINK_INTERVAL_S = 0.3  # keepalive and discovery refresh in these tests (5 s and 30 s by default)


def scheduler_for(workdir: Path, manager_address: str, *, name: str = "scheduler", **server: Any) -> Child:
    """A scheduler process registered with the manager as `name` (its host_name there)."""
    return start_scheduler(
        workdir,
        {
            "server": {"listen": "127.0.0.1", "port": 0, **server},
            "manager": {"address": manager_address, "host_name": name, "keepalive_interval_s": LINK_INTERVAL_S},
        },
        name=name,
    )


def daemon_for(workdir: Path, origin: dict[str, Any], manager_address: str, name: str, *, seed: bool = False) -> Child:
    """A daemon that learns its schedulers from the manager only (no static addresses)."""
    extra = {
        "daemon": {
            "seed": seed,
            "host": {"hostname": name},
            "scheduler": {
                "manager": manager_address,
                "manager_refresh_interval_s": LINK_INTERVAL_S,
                "manager_keepalive_interval_s": LINK_INTERVAL_S,
                "health_interval_s": 0.3,
                "schedule_timeout_s": 10,
            },
        }
    }
    return start_daemon(workdir, origin, name=name, extra=extra)


def log_has(child: Child, text: str) -> bool:
    return text in child.log_path.read_text(errors="replace")


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout_s: float = 20.0, what: str = "") -> None:
    deadline = time.monotonic() + timeout_s
    while not await predicate():
        assert time.monotonic() < deadline, f"not reached in {timeout_s:.0f}s: {what}"
        await asyncio.sleep(0.1)


async def wait_for_log(child: Child, text: str, timeout_s: float = 20.0) -> None:
    async def found() -> bool:
        return await asyncio.to_thread(log_has, child, text)

    await wait_until(found, timeout_s, f"{child.name} logs {text!r}:\n{child.log_tail()}")


async def scheduler_record(api: Api, host_name: str) -> dict[str, Any] | None:
    status, rows, _ = await api.call("GET", "/api/v1/schedulers?per_page=1000")
    assert status == 200, rows
    return next((r for r in rows if r["host_name"] == host_name), None)


async def registered_scheduler(api: Api, host_name: str, timeout_s: float = 20.0) -> dict[str, Any]:
    found: dict[str, Any] = {}

    async def active() -> bool:
        record = await scheduler_record(api, host_name)
        if record is not None and record["state"] == "active":
            found.update(record)
            return True
        return False

    await wait_until(active, timeout_s, f"scheduler {host_name} active in the manager")
    return found


async def direct_preheat(address: str, url: str) -> tuple[grpc.StatusCode, str]:
    """Call the scheduler's Preheat RPC directly: (status code, details or task id)."""
    async with aio.insecure_channel(address) as channel:
        try:
            reply = await pb_grpc.SchedulerStub(channel).Preheat(pb.PreheatRequest(url=url), timeout=30)
        except aio.AioRpcError as exc:
            return exc.code(), exc.details() or ""
        return grpc.StatusCode.OK, reply.task_id
