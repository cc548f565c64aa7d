"""Preheat: have a seed peer of this scheduler fetch an object now, so later reads find it there.

Both entry points end here: the gRPC `Preheat` call and the manager's preheat jobs (manager_link).
The scheduler itself enforces its `preheat` feature, whoever asks.

The seed peer computes the task id (it stats the origin, as a reading daemon's dfstore does), and
registers the task with the scheduler that owns it while downloading, so a later reader is given
the seed as its parent instead of going to the origin.
"""

from __future__ import annotations

import logging
from typing import Protocol

from p2p.clients.hashring import HashRing
from p2p.errors import FeatureDisabled, NoCandidateParent, P2PError, SchedulerUnavailable
from p2p.proto.values import HostInfo, PreheatResult, PreheatSpec
from p2p.scheduler.service import SchedulerService
from p2p.types import HostID

log = logging.getLogger(__name__)


class SeedPreheat(Protocol):
    async def preheat_at(self, address: str, spec: PreheatSpec, timeout_s: float) -> PreheatResult: ...


class Preheater:
    def __init__(self, service: SchedulerService, seeds: SeedPreheat, *, timeout_s: float) -> None:
        self._service = service
        self._seeds = seeds
        self._timeout_s = timeout_s

    def _seed_order(self, url: str) -> list[HostInfo]:
        """Seed peers with a gRPC port, the one the URL hashes to first (a repeat preheat finds its copy)."""
        seeds = {h.id: h.info for h in self._service.res.hosts.values() if h.is_seed and h.info.rpc_port > 0}
        first = HashRing(seeds).pick(url)
        ordered = sorted(seeds.values(), key=lambda info: info.id)
        if first is not None:
            ordered.sort(key=lambda info: info.id != HostID(first))
        return ordered

    async def preheat(self, spec: PreheatSpec) -> PreheatResult:
        if not self._service.allows("preheat"):
            raise FeatureDisabled("scheduler has the preheat feature disabled")
        seeds = self._seed_order(spec.url)
        if not seeds:
            raise NoCandidateParent("no seed peer has announced itself to this scheduler")
        last: P2PError | None = None
        for seed in seeds:
            try:
                result = await self._seeds.preheat_at(f"{seed.ip}:{seed.rpc_port}", spec, self._timeout_s)
            except SchedulerUnavailable as exc:  # that seed is unreachable (the client maps UNAVAILABLE so)
                log.warning("preheat of %s: seed %s unreachable: %s", spec.url, seed.id, exc.message)
                last = exc
                continue
            log.info("preheated %s on seed %s: task_id=%s", spec.url, seed.id, result.task_id)
            return PreheatResult(
                task_id=result.task_id,
                content_length=result.content_length,
                version=result.version,
                seed_host_id=seed.id,
            )
        assert last is not None
        raise SchedulerUnavailable(f"no seed peer reachable for the preheat: {last.message}")
