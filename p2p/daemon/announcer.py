"""What this daemon tells its schedulers without being asked.

`Announcer`: this host, to every healthy scheduler, at start, whenever the healthy set changes, and
every `announce_interval_s` (schedulers forget hosts after their host TTL).
`StoredTasks`: the complete tasks found on disk at start, to the scheduler that owns each.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterable

from p2p.clients.scheduler import SchedulerClient
from p2p.daemon.taskstore import TaskStore
from p2p.proto.values import HostInfo
from p2p.types import TaskID

log = logging.getLogger(__name__)

STORED_LIMIT = 1000  # most recently used stored tasks offered after a restart
STORED_TIMEOUT_S = 5.0


class Announcer:
    def __init__(self, client: SchedulerClient, host: HostInfo, interval_s: float) -> None:
        self._client = client
        self._host = host
        self._interval_s = interval_s

    async def run(self) -> None:
        """Runs until cancelled."""
        while True:
            await self._client.announce_host(self._host)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._client.wait_changed(), self._interval_s)

    async def leave(self) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._client.leave_host(self._host.id), 2.0)


class StoredTasks:
    """Offers the complete tasks this daemon reloaded from disk at start (the `STORED_LIMIT` most
    recently used whose origin version is recorded) to the scheduler that owns each task id, and
    again whenever that owner changes (a scheduler came up, left or came back), so a restarted daemon
    is a parent for what it holds instead of every peer going to the origin. Tasks downloaded or
    written during this run are known to their scheduler already."""

    def __init__(
        self,
        client: SchedulerClient,
        tasks: Iterable[TaskStore],
        announce: Callable[[TaskStore], Awaitable[None]],
        interval_s: float,
    ) -> None:
        self._client = client
        held = [t for t in tasks if t.done and t.spec() is not None]
        self._tasks = sorted(held, key=lambda t: t.last_access, reverse=True)[:STORED_LIMIT]
        self._announce = announce
        self._interval_s = interval_s
        self._told: dict[TaskID, str] = {}  # task id -> the scheduler it was offered to

    async def run(self) -> None:
        """Runs until cancelled; does nothing once there was nothing to offer."""
        while self._tasks:
            await self.offer_round()
            await asyncio.sleep(self._interval_s)

    async def offer_round(self) -> int:
        """Offer each task whose owning scheduler is not the one it was offered to; returns how many."""
        offered = 0
        for task in self._tasks:
            owner = self._client.pick(task.task_id)
            if owner is None:
                self._told.pop(task.task_id, None)
                continue
            if self._told.get(task.task_id) == owner:
                continue
            try:
                await asyncio.wait_for(self._announce(task), STORED_TIMEOUT_S)
            except Exception as exc:  # a scheduler that fails now is asked again next round
                log.debug("task_id=%s stored task not offered: %r", task.task_id, exc)
                continue
            self._told[task.task_id] = owner
            offered += 1
        if offered:
            log.info("offered %d stored tasks to the schedulers", offered)
        return offered
