"""A daemon's side of the manager: where its schedulers are, and (seed peers) being one of the cluster.

With `scheduler.manager` set (the manager's gRPC address, host:port), the daemon asks the manager
for its schedulers (ListSchedulers) at start and every
`scheduler.manager_refresh_interval_s`, and hands each new list to its `SchedulerClient`. While the
manager is down, or answers an empty list, the last list stays (the static `scheduler.addresses`
until the manager first answers). A seed peer also registers with the manager as a seed peer and
keeps alive, so the manager shows it and its cluster's schedulers can preheat through it.

    link = ManagerLink.from_config(config)           # None when no manager is configured
    addresses = await link.first_addresses(host)     # one bounded look-up before serving
    task_group.create_task(link.run(scheduler_client, host))
    await link.aclose()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from p2p.clients.manager import ManagerClient, SchedulerDirectory, SeedPeerAgent
from p2p.clients.scheduler import SchedulerClient
from p2p.daemon.config import DaemonConfig
from p2p.proto.values import HostInfo

log = logging.getLogger(__name__)

FIRST_LOOKUP_TIMEOUT_S = 5.0  # a daemon starts serving (back-to-source) even when the manager is down


class ManagerLink:
    def __init__(self, config: DaemonConfig, client: ManagerClient) -> None:
        self._config = config
        self._client = client
        self._directory: SchedulerDirectory | None = None
        self.seed_agent: SeedPeerAgent | None = None

    @classmethod
    def from_config(cls, config: DaemonConfig) -> ManagerLink | None:
        section = config.scheduler
        if not section.manager:
            return None
        token = section.manager_token.get_secret_value() if section.manager_token else None
        client = ManagerClient.connect(
            section.manager, token=token, ca_file=section.manager_ca_file, timeout_s=FIRST_LOOKUP_TIMEOUT_S
        )
        return cls(config, client)

    def _directory_for(self, host: HostInfo) -> SchedulerDirectory:
        if self._directory is None:
            self._directory = SchedulerDirectory(
                self._client,
                host_name=host.hostname,
                ip=host.ip,
                idc=host.idc,
                location=host.location,
                fallback=list(self._config.scheduler.addresses),
            )
        return self._directory

    async def first_addresses(self, host: HostInfo) -> list[str]:
        directory = self._directory_for(host)
        try:
            addresses = await asyncio.wait_for(directory.refresh(), FIRST_LOOKUP_TIMEOUT_S)
        except TimeoutError:
            addresses = directory.addresses
        if directory.last_error is not None:
            log.warning("manager %s unreachable at start (%s); schedulers: %s", self._client.target,
                        directory.last_error, addresses or "none yet")
        else:
            log.info("schedulers from manager %s: %s", self._client.target, addresses or "none yet")
        return addresses

    async def run(self, scheduler: SchedulerClient, host: HostInfo) -> None:
        """Runs until cancelled: refresh the scheduler list; a seed peer also keeps its registration alive."""
        section = self._config.scheduler
        async with asyncio.TaskGroup() as group:
            if self._config.seed:
                self.seed_agent = SeedPeerAgent(
                    self._client,
                    host_name=host.hostname,
                    ip=host.ip,
                    port=host.rpc_port,
                    download_port=host.download_port,
                    seed_peer_cluster_id=section.seed_peer_cluster_id,
                    idc=host.idc,
                    location=host.location,
                    interval_s=section.manager_keepalive_interval_s,
                )
                group.create_task(self._keep_running(self.seed_agent.run), name="seed-peer-keepalive")
            group.create_task(self._follow(scheduler, host), name="scheduler-discovery")

    async def _keep_running(self, run: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await run()
            except Exception:  # an unexpected answer must not end the registration for good
                log.exception("seed peer keepalive failed; starting it again")
            await asyncio.sleep(self._config.scheduler.manager_keepalive_interval_s)

    async def _follow(self, scheduler: SchedulerClient, host: HostInfo) -> None:
        directory = self._directory_for(host)
        while True:
            await asyncio.sleep(self._config.scheduler.manager_refresh_interval_s)
            try:
                addresses = await directory.refresh()
                if addresses != scheduler.addresses:
                    await scheduler.set_addresses(addresses)
                    await scheduler.check_health()  # new schedulers join now, not at the next health round
            except Exception:  # an unexpected answer must not stop the refreshes for good
                log.exception("scheduler list refresh failed")

    async def aclose(self) -> None:
        await self._client.aclose()
