"""The scheduler's side of the manager (docs/manager.md), over its gRPC component API: register
(UpdateScheduler) with the advertised address, keep alive (the KeepAlive stream), follow the
features the manager sets, run the preheat jobs it hands over, and report a snapshot of tasks and
peers for the console.

Features are enforced here, in the scheduler: the link points `SchedulerService.allows` at the
latest keepalive answer, so without `schedule` RegisterPeer is refused and without `preheat` every
preheat (a manager job or a direct gRPC `Preheat`) is refused. While the manager is unreachable
the last known features stay in force. Without `manager.address` there is no link and every
feature is on.

    link = ManagerLink(config.manager, service, preheater, ip=advertise_ip, port=advertise_port)
    task = loop.create_task(link.run())     # the owner cancels it on shutdown, then `await link.aclose()`
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from p2p.clients.manager import SNAPSHOT_LIMIT, ManagerClient, PreheatRun, SchedulerAgent
from p2p.common.ids import local_hostname
from p2p.proto.values import PreheatSpec
from p2p.scheduler.config import ManagerSection
from p2p.scheduler.preheat import Preheater
from p2p.scheduler.service import SchedulerService

log = logging.getLogger(__name__)


class ManagerLink:
    def __init__(
        self, config: ManagerSection, service: SchedulerService, preheater: Preheater, *, ip: str, port: int
    ) -> None:
        token = config.component_token.get_secret_value() if config.component_token else None
        self._client = ManagerClient.connect(config.address, token=token, ca_file=config.ca_file)
        self._service = service
        self._preheater = preheater
        self.host_name = config.host_name or local_hostname()
        self._interval_s = config.keepalive_interval_s
        self.agent = SchedulerAgent(
            self._client,
            host_name=self.host_name,
            ip=ip,
            port=port,
            scheduler_cluster_id=config.scheduler_cluster_id,
            idc=config.idc,
            location=config.location,
            interval_s=config.keepalive_interval_s,
            on_preheat=self._run_job,
            snapshot=self.snapshot,
            topology=self.topology if service.topology is not None else None,
        )
        service.allows = self.agent.allows

    async def run(self) -> None:
        """Register (retried each interval until the manager answers), then keep alive; until cancelled."""
        log.info("registering with manager %s as %s", self._client.target, self.host_name)
        while True:
            try:
                await self.agent.run()
            except Exception:  # an unexpected answer must not end the link for the scheduler's lifetime
                log.exception("manager link failed; starting it again")
            await asyncio.sleep(self._interval_s)

    async def _run_job(self, run: PreheatRun) -> str:
        result = await self._preheater.preheat(PreheatSpec(url=run.url, range=run.range))
        return f"task {result.task_id} ({result.content_length} bytes) on seed peer {result.seed_host_id}"

    def snapshot(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Tasks and peers for the manager's console ("tasks and peers of a cluster")."""
        res = self._service.res
        tasks = [
            {
                "id": t.id,
                "url": t.spec.url[:4096],  # the manager's limits: a refused keepalive loses the features
                "state": str(t.state),
                "content_length": t.content_length,
                "peer_count": len(t.peers),
            }
            for _, t in zip(range(SNAPSHOT_LIMIT), res.tasks.values(), strict=False)
        ]
        peers = [
            {
                "id": p.id,
                "task_id": p.task.id,
                "host_name": p.host.info.hostname[:255],
                "ip": p.host.info.ip,
                "state": str(p.state),
            }
            for _, p in zip(range(SNAPSHOT_LIMIT), res.peers.values(), strict=False)
        ]
        return tasks, peers

    def topology(self) -> list[dict[str, Any]]:
        """Network topology edges for the console, with host names (ids are digests)."""
        if self._service.topology is None:
            return []
        hosts = self._service.res.hosts
        out = []
        for _, e in zip(range(SNAPSHOT_LIMIT), self._service.topology.cached_edges(), strict=False):
            src, dest = hosts.get(e.src_host_id), hosts.get(e.dest_host_id)
            out.append(
                {
                    "src_host_id": e.src_host_id,
                    "src_host_name": src.info.hostname[:255] if src else "",
                    "src_address": f"{src.info.ip}:{src.info.download_port}" if src else "",
                    "dest_host_id": e.dest_host_id,
                    "dest_host_name": dest.info.hostname[:255] if dest else "",
                    "dest_address": f"{dest.info.ip}:{dest.info.download_port}" if dest else "",
                    "average_rtt_ns": e.average_rtt_ns,
                    "probe_count": e.probe_count,
                    "updated_at_ns": e.updated_at_ns,
                }
            )
        return out

    async def aclose(self) -> None:
        await self._client.aclose()
