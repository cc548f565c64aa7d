"""Network topology probing: every `probe.interval_s` ask the scheduler which hosts to probe, measure
the RTT to each, and report the results (failures too) to the same scheduler.

The RTT is the time a TCP connect to the host's upload port takes (SYN -> SYN-ACK: one round trip,
plus this loop's scheduling delay), with a 1 s timeout. Dragonfly sends one ICMP echo instead; that
needs a raw socket or `net.ipv4.ping_group_range`, which a daemon often lacks, while the upload port
is open by definition on every host that can serve pieces, so the probe also proves the path
peers will use. No request is sent: the connection is closed as soon as it is up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from p2p.clients.scheduler import SchedulerClient
from p2p.daemon.config import ProbeSection
from p2p.proto.values import HostInfo, ProbeResult

log = logging.getLogger(__name__)


async def tcp_rtt_ns(ip: str, port: int, timeout_s: float) -> int:
    """The duration of one TCP connect; raises OSError or TimeoutError."""
    start = time.perf_counter_ns()
    _reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), timeout_s)
    rtt = time.perf_counter_ns() - start
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return max(rtt, 1)


class Prober:
    def __init__(self, client: SchedulerClient, host: HostInfo, config: ProbeSection) -> None:
        self._client = client
        self._host = host
        self._config = config

    async def probe(self, target: HostInfo) -> ProbeResult:
        try:
            rtt = await tcp_rtt_ns(target.ip, target.download_port, self._config.timeout_s)
        except (OSError, TimeoutError) as exc:
            reason = "timeout" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            return ProbeResult(
                host_id=target.id,
                rtt_ns=0,
                created_at_ns=time.time_ns(),
                success=False,
                description=f"connect {target.ip}:{target.download_port}: {reason}",
            )
        return ProbeResult(host_id=target.id, rtt_ns=rtt, created_at_ns=time.time_ns())

    async def probe_once(self) -> list[ProbeResult]:
        """One round: sync, probe every host at once, report. Raises P2PError when the scheduler fails."""
        address, targets = await self._client.sync_probes(self._host)
        if not targets:
            return []
        results = list(await asyncio.gather(*(self.probe(t) for t in targets)))
        await self._client.report_probes(address, self._host.id, results)
        ok = sum(r.success for r in results)
        log.debug("probed %d hosts (%d failed) via %s", len(results), len(results) - ok, address)
        return results

    async def run(self) -> None:
        """Runs until cancelled; a failed round is logged and the next one comes on time."""
        while True:
            await asyncio.sleep(self._config.interval_s)
            try:
                await self.probe_once()
            except Exception as exc:  # no scheduler, or its topology is off: try again next round
                log.warning("network topology probe round failed: %s", exc)
