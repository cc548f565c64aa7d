"""The virtual network topology: RTTs that daemons measure to each other, kept per edge (src -> dest host).

Daemons ask which hosts to probe (`find_probed_hosts`: the least-probed ones), measure, and report
(`enqueue`). Each edge keeps its last `probe.queue_length` probes and a moving average over them
(Dragonfly's `probes.go Enqueue`): walking oldest -> newest, `avg = avg * 0.1 + rtt * 0.9`, so recent
probes dominate. Storage sits behind `TopologyStore`: `MemoryTopologyStore` (one scheduler) or
`RedisTopologyStore` (p2p/scheduler/topology_redis.py, shared by several schedulers).

The evaluator scores synchronously, so `NetworkTopology` keeps a copy of the edges in memory: updated
by every probe this scheduler stores, and reloaded from the store every `collect_interval_s` (probes
that reached other schedulers through a shared Redis). The manager keepalive snapshot reads it too.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from p2p.proto.values import HostInfo, ProbeResult, TopologyEdge
from p2p.scheduler.config import NetworkTopologySection
from p2p.types import HostID

log = logging.getLogger(__name__)

MOVING_AVERAGE_WEIGHT = 0.1  # the weight of history; the newest probe gets the rest
CANDIDATE_HOSTS = 50  # hosts looked at per probe round before the least-probed are picked


def moving_average(rtts_ns: Sequence[int]) -> int:
    """Oldest first. One probe: its RTT."""
    avg = float(rtts_ns[0])
    for rtt in rtts_ns[1:]:
        avg = avg * MOVING_AVERAGE_WEIGHT + rtt * (1 - MOVING_AVERAGE_WEIGHT)
    return int(avg)


class TopologyStore(Protocol):
    """Where edges, their probe queues and the probed counts live. Only successful probes come here."""

    async def enqueue(self, src: HostID, probe: ProbeResult) -> TopologyEdge:
        """Append a probe of src -> probe.host_id, drop the oldest beyond the queue length, update the
        average, and count one more probe of the destination host."""
        ...

    async def probed_counts(self, hosts: Sequence[HostID]) -> list[int]:
        """How often each host was probed (0 for unknown ones), in the order asked."""
        ...

    async def edges(self, host: HostID | None = None) -> list[TopologyEdge]:
        """Every edge, or those from or to `host`."""
        ...

    async def probes(self, src: HostID, dest: HostID) -> list[ProbeResult]:
        """The kept probes of one edge, oldest first."""
        ...

    async def delete_host(self, host: HostID) -> None:
        """Forget every edge from or to `host` and its probed count."""
        ...

    async def aclose(self) -> None: ...


@dataclass
class _Edge:
    probes: deque[ProbeResult]
    average_rtt_ns: int
    created_at_ns: int
    updated_at_ns: int


class MemoryTopologyStore:
    """In-process store; no awaits inside a method, so each call is atomic on the scheduler's loop."""

    def __init__(self, queue_length: int) -> None:
        self._queue_length = queue_length
        self._edges: dict[tuple[HostID, HostID], _Edge] = {}
        self._probed: dict[HostID, int] = {}

    @staticmethod
    def _view(src: HostID, dest: HostID, edge: _Edge) -> TopologyEdge:
        return TopologyEdge(
            src_host_id=src,
            dest_host_id=dest,
            average_rtt_ns=edge.average_rtt_ns,
            probe_count=len(edge.probes),
            created_at_ns=edge.created_at_ns,
            updated_at_ns=edge.updated_at_ns,
        )

    async def enqueue(self, src: HostID, probe: ProbeResult) -> TopologyEdge:
        key = (src, probe.host_id)
        edge = self._edges.get(key)
        if edge is None:
            edge = self._edges[key] = _Edge(deque(maxlen=self._queue_length), 0, probe.created_at_ns, 0)
        edge.probes.append(probe)
        edge.average_rtt_ns = moving_average([p.rtt_ns for p in edge.probes])
        edge.updated_at_ns = probe.created_at_ns
        self._probed[probe.host_id] = self._probed.get(probe.host_id, 0) + 1
        return self._view(src, probe.host_id, edge)

    async def probed_counts(self, hosts: Sequence[HostID]) -> list[int]:
        return [self._probed.get(h, 0) for h in hosts]

    async def edges(self, host: HostID | None = None) -> list[TopologyEdge]:
        return [
            self._view(src, dest, edge)
            for (src, dest), edge in self._edges.items()
            if host is None or host in (src, dest)
        ]

    async def probes(self, src: HostID, dest: HostID) -> list[ProbeResult]:
        edge = self._edges.get((src, dest))
        return list(edge.probes) if edge is not None else []

    async def delete_host(self, host: HostID) -> None:
        for key in [k for k in self._edges if host in k]:
            del self._edges[key]
        self._probed.pop(host, None)

    async def aclose(self) -> None:
        return None


class NetworkTopology:
    """The scheduler's rules around the store, and the in-memory averages the evaluator reads."""

    def __init__(
        self, config: NetworkTopologySection, store: TopologyStore, *, rng: random.Random | None = None
    ) -> None:
        self.config = config
        self.store = store
        self._rng = rng or random.Random()
        self._edges: dict[tuple[HostID, HostID], TopologyEdge] = {}

    def rtt_ns(self, a: HostID, b: HostID) -> int | None:
        """The average RTT between two hosts (measured from either side), None without probes."""
        edge = self._edges.get((a, b)) or self._edges.get((b, a))
        return edge.average_rtt_ns if edge is not None else None

    def cached_edges(self) -> list[TopologyEdge]:
        """The in-memory copy (as of the last probe or refresh), without a store round trip."""
        return list(self._edges.values())

    async def find_probed_hosts(self, src: HostID, hosts: Sequence[HostInfo]) -> list[HostInfo]:
        """Up to `probe.count` hosts for `src` to probe, the least probed first; never `src` itself."""
        others = [h for h in hosts if h.id != src]
        candidates = self._rng.sample(others, min(CANDIDATE_HOSTS, len(others)))
        count = self.config.probe.count
        if len(candidates) <= count:
            return candidates
        probed = await self.store.probed_counts([h.id for h in candidates])
        ranked = sorted(zip(probed, range(len(candidates)), candidates, strict=True), key=lambda t: t[:2])
        return [host for _, _, host in ranked[:count]]

    async def enqueue(self, src: HostID, probes: Sequence[ProbeResult]) -> list[TopologyEdge]:
        stored = []
        for probe in probes:
            if not probe.success:
                # Like Dragonfly: a failed probe is only logged; the edge keeps its last good RTTs.
                log.info("probe failed src=%s dest=%s: %s", src, probe.host_id, probe.description)
                continue
            edge = await self.store.enqueue(src, probe)
            self._edges[(src, probe.host_id)] = edge
            stored.append(edge)
        return stored

    async def delete_host(self, host: HostID) -> None:
        for key in [k for k in self._edges if host in k]:
            del self._edges[key]
        await self.store.delete_host(host)

    async def edges(self, host: HostID | None = None) -> list[TopologyEdge]:
        return await self.store.edges(host)

    async def refresh(self) -> None:
        """Reload every edge from the store (probes other schedulers stored)."""
        edges = await self.store.edges()
        self._edges = {(e.src_host_id, e.dest_host_id): e for e in edges}

    async def run(self) -> None:
        """Runs until cancelled: refresh every `collect_interval_s`; a store outage is logged and retried."""
        while True:
            await asyncio.sleep(self.config.collect_interval_s)
            try:
                await self.refresh()
            except Exception as exc:  # Redis down: keep scoring with what we have
                log.warning("network topology refresh failed: %s", exc)

    async def aclose(self) -> None:
        await self.store.aclose()
