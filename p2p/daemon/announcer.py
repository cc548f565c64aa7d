"""Announces this host to every healthy scheduler: at start, whenever the healthy set changes, and
every `announce_interval_s` (schedulers forget hosts after their host TTL)."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from p2p.clients.scheduler import SchedulerClient
from p2p.proto.values import HostInfo

log = logging.getLogger(__name__)


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
