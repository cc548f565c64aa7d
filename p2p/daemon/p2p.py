"""The daemon's P2P side: scheduler client, health watching, host announcements, the seed trigger
server and the downloader factory that plugs the conductor into the TaskManager.

Composition (in the daemon process):

    node = P2PNode(config.daemon, sources)                 # no I/O yet
    tasks = TaskManager(store, sources, downloader_factory=node.downloader_factory, ...)
    ... start the upload server, learn its port ...
    await node.start(tasks, upload_port=port)             # health checks, announcer, seed gRPC
    ...
    await node.aclose()

Before `start` (or with no scheduler configured) every download goes to the origin.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

import aiohttp
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from p2p.clients.interceptor import ExceptionToStatusInterceptor
from p2p.clients.scheduler import SchedulerClient
from p2p.common.digest import piece_size_for
from p2p.common.ids import host_id, local_hostname, peer_id
from p2p.common.ids import task_id as make_task_id
from p2p.daemon.announcer import Announcer, StoredTasks
from p2p.daemon.conductor import Conductor
from p2p.daemon.config import DaemonConfig
from p2p.daemon.discovery import ManagerLink
from p2p.daemon.parents import ParentClient
from p2p.daemon.preheat import preheat
from p2p.daemon.prober import Prober
from p2p.daemon.ratelimit import RateLimiter
from p2p.daemon.tasks import TaskManager
from p2p.daemon.taskstore import TaskStore
from p2p.proto import convert
from p2p.proto import scheduler_pb2 as pb
from p2p.proto import scheduler_pb2_grpc as pb_grpc
from p2p.proto.values import HostInfo, HostType, PeerResult, Registration, TaskSpec
from p2p.source import SourceRouter
from p2p.types import HostID, PeerID, SourceStat, TaskID

log = logging.getLogger(__name__)

DAEMON_SERVICE = "dfly.p2p.v1.Daemon"
OFFER_TIMEOUT_S = 10.0  # one offer (register + result) gives up after this long
MAX_OFFERS = 64  # offers in flight; more are dropped (the task is still served, just not announced)


class _DaemonServicer(pb_grpc.DaemonServicer):
    def __init__(self, tasks: TaskManager, node: P2PNode) -> None:
        self._tasks = tasks
        self._node = node

    async def TriggerTask(  # noqa: N802 (name fixed by the generated base class)
        self, request: pb.TriggerTaskRequest, context: aio.ServicerContext
    ) -> pb.TriggerTaskResponse:
        # Starting the download is enough: it belongs to the TaskManager, and the conductor registers
        # this seed with the scheduler, which sends it to the origin.
        _task_id, spec = convert.trigger_from_pb(request)
        if spec.byte_range is not None and self._tasks.store.get(make_task_id(spec.url, spec.stat.version)) is not None:
            # This seed holds the object whole: the peers' ranged task is cut from it, not read again.
            self._node.cut_and_offer(_task_id, spec)
            return pb.TriggerTaskResponse()
        # Same url, version and range as the peers' task, so the seed's task has the same id.
        reader = await self._tasks.open(spec.url, stat=spec.stat, byte_range=spec.byte_range)
        async with reader:
            done = reader.task.done and reader.task.task_id == _task_id
        if done:
            # Already here (an earlier download, a replica push): no download run will register it,
            # so tell the scheduler this seed has the whole task.
            peer = await self._node.announce_complete(_task_id, spec, reader.task)
            return pb.TriggerTaskResponse(peer_id=peer)
        return pb.TriggerTaskResponse()

    async def PreheatTask(  # noqa: N802 (name fixed by the generated base class)
        self, request: pb.PreheatRequest, context: aio.ServicerContext
    ) -> pb.PreheatResponse:
        return convert.preheat_result_to_pb(await preheat(self._tasks, convert.preheat_from_pb(request)))


class P2PNode:
    def __init__(self, config: DaemonConfig, sources: SourceRouter) -> None:
        self.config = config
        self.sources = sources
        self.scheduler: SchedulerClient | None = None
        self.download_limit = RateLimiter(config.download.rate_limit_bps)
        self.host_info = self._host(download_port=config.upload.port, rpc_port=0)
        self._session: aiohttp.ClientSession | None = None
        self._parents: ParentClient | None = None
        self._jobs: list[asyncio.Task[None]] = []
        self._server: aio.Server | None = None
        self._health: Any = None
        self._announcer: Announcer | None = None
        self._offers: set[asyncio.Task[None]] = set()
        self._tasks: TaskManager | None = None
        self.rpc_port = 0
        self.manager = ManagerLink.from_config(config)  # None without scheduler.manager

    def _host(self, *, download_port: int, rpc_port: int) -> HostInfo:
        cfg = self.config
        hostname = cfg.host.hostname or local_hostname()
        # The upload port is part of the id so that several daemons on one machine are distinct hosts.
        return HostInfo(
            id=HostID(host_id(cfg.host.ip, f"{hostname}-{download_port}")),
            ip=cfg.host.ip,
            hostname=hostname,
            download_port=download_port,
            rpc_port=rpc_port,
            type=HostType.SUPER_SEED if cfg.seed else HostType.NORMAL,
            idc=cfg.host.idc,
            location=cfg.host.location,
            upload_limit=0,  # the scheduler's default for the host type
        )

    @property
    def parents(self) -> ParentClient:
        if self._parents is None:
            self._session = aiohttp.ClientSession()
            self._parents = ParentClient(self._session, piece_timeout_s=self.config.download.piece_timeout_s)
        return self._parents

    def new_peer_id(self) -> PeerID:
        return peer_id(self.config.host.ip, seed=self.config.seed)

    async def announce_complete(self, task_id: TaskID, spec: TaskSpec, task: TaskStore | None = None) -> PeerID:
        """Register a task this daemon holds in full with its scheduler, as a succeeded peer (no seed is
        triggered for it). With the `task` at hand its piece digests (and a TINY task's content) go
        along, so later peers of a one-piece task take the registration shortcut."""
        peer = self.new_peer_id()
        if self.scheduler is None:
            return peer
        held = task if task is not None and task.done and task.task_id == task_id else None
        pieces = tuple(held.pieces()) if held is not None else ()
        reg = Registration(task_id=task_id, peer_id=peer, host=self.host_info, spec=spec, complete=True, pieces=pieces)
        address, _registered = await self.scheduler.register(reg)
        count = -(-spec.content_length // spec.piece_size) if spec.piece_size > 0 else 0
        result = PeerResult(
            task_id=task_id,
            peer_id=peer,
            success=True,
            content_length=spec.content_length,
            total_piece_count=count,
            direct_piece=held.tiny_content() if held is not None else b"",
        )
        await self.scheduler.report_result(address, result)
        log.debug("task_id=%s held in full: announced to the scheduler as peer %s", task_id, peer)
        return peer

    def offer(self, task_id: TaskID, url: str, stat: SourceStat) -> None:
        """Announce, in the background, that this daemon holds the whole-object task `task_id` of
        `url` at `stat.version` (an object just written through it), so the scheduler hands this
        daemon to other peers as a finished parent. Never raises and never waits: with no scheduler
        reachable, an empty object or too many offers in flight it does nothing; a failed or slow
        announcement (OFFER_TIMEOUT_S) is logged at debug level and dropped."""
        if stat.size == 0:
            return  # nothing to hand out: readers of an empty object need no parent
        if self.scheduler is None or self.scheduler.pick(task_id) is None:
            log.debug("task_id=%s not offered: no scheduler reachable", task_id)
            return
        if len(self._offers) >= MAX_OFFERS:
            log.debug("task_id=%s not offered: %d offers in flight", task_id, len(self._offers))
            return
        spec = TaskSpec(url=url, stat=stat, piece_size=piece_size_for(stat.size))
        self._background(self._offer(task_id, spec), f"offer-{task_id[:12]}")

    def cut_and_offer(self, task_id: TaskID, spec: TaskSpec) -> None:
        """In the background: cut the ranged task `task_id` from the whole-object task this daemon
        holds (TaskManager.cut_range: the range's pieces are awaited if that task is still downloading)
        and announce it complete, so the scheduler hands this daemon out as its parent. A failure is
        logged; the waiting peers then fall back as for any seed that did not come."""
        self._background(self._cut_and_offer(task_id, spec), f"cut-{task_id[:12]}")

    async def _cut_and_offer(self, task_id: TaskID, spec: TaskSpec) -> None:
        assert spec.byte_range is not None and self._tasks is not None
        try:
            task = await self._tasks.cut_range(spec.url, spec.stat, spec.byte_range)
            if task is None:
                log.info("task_id=%s not cut: the whole-object task is gone", task_id)
                return
            async with asyncio.timeout(OFFER_TIMEOUT_S):
                await self.announce_complete(task_id, spec, task)
        except Exception as exc:
            log.warning("task_id=%s cutting the range from the whole task failed: %r", task_id, exc)

    def _background(self, job: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(job, name=name)
        self._offers.add(task)
        task.add_done_callback(self._offers.discard)

    async def _offer(self, task_id: TaskID, spec: TaskSpec) -> None:
        try:
            async with asyncio.timeout(OFFER_TIMEOUT_S):
                held = self._tasks.store.get(task_id) if self._tasks is not None else None
                await self.announce_complete(task_id, spec, held)
        except Exception as exc:  # best effort: readers then fetch it as if it had not been offered
            log.debug("task_id=%s offer to the scheduler failed: %r", task_id, exc)

    async def _announce_stored(self, task: TaskStore) -> None:
        spec = task.spec()
        tasks = self._tasks
        # Skip a task GC removed (or a re-download replaced) since the daemon started.
        if spec is not None and tasks is not None and tasks.store.get(task.task_id) is task and task.done:
            await self.announce_complete(task.task_id, spec, task)

    def downloader_factory(self, task: TaskStore, url: str, stat: SourceStat) -> Conductor:
        return Conductor(self, task, url, stat)

    async def start(self, tasks: TaskManager, *, upload_port: int) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = tasks
        if self.config.seed:
            await self._start_rpc(tasks)
        self.host_info = self._host(download_port=upload_port, rpc_port=self.rpc_port)
        addresses = self.config.scheduler.addresses
        if self.manager is not None:
            addresses = await self.manager.first_addresses(self.host_info)
        elif not addresses:
            log.info("no scheduler configured: every download goes to the origin")
            return
        self.scheduler = SchedulerClient(addresses, health_interval_s=self.config.scheduler.health_interval_s)
        with contextlib.suppress(Exception):
            await self.scheduler.check_health()  # a first answer before serving; none is fine too
        self._announcer = Announcer(self.scheduler, self.host_info, self.config.scheduler.announce_interval_s)
        self._jobs.append(loop.create_task(self.scheduler.watch_health(), name="scheduler-health"))
        self._jobs.append(loop.create_task(self._announcer.run(), name="announcer"))
        stored = StoredTasks(
            self.scheduler, tasks.store.tasks(), self._announce_stored, self.config.scheduler.health_interval_s
        )
        self._jobs.append(loop.create_task(stored.run(), name="stored-tasks"))
        if self.config.network_topology.enable:
            prober = Prober(self.scheduler, self.host_info, self.config.network_topology.probe)
            self._jobs.append(loop.create_task(prober.run(), name="prober"))
        if self.manager is not None:
            self._jobs.append(loop.create_task(self.manager.run(self.scheduler, self.host_info), name="manager"))

    async def _start_rpc(self, tasks: TaskManager) -> None:
        server = aio.server(interceptors=[ExceptionToStatusInterceptor()])
        pb_grpc.add_DaemonServicer_to_server(_DaemonServicer(tasks, self), server)
        self._health = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(self._health, server)
        rpc = self.config.rpc
        port = server.add_insecure_port(f"{rpc.listen}:{rpc.port}")
        if port == 0:
            raise OSError(f"cannot bind the daemon gRPC server to {rpc.listen}:{rpc.port}")
        await server.start()
        for name in ("", DAEMON_SERVICE):
            await self._health.set(name, health_pb2.HealthCheckResponse.SERVING)
        self._server, self.rpc_port = server, port

    async def aclose(self) -> None:
        jobs, self._jobs = self._jobs + list(self._offers), []
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        if self._announcer is not None:
            await self._announcer.leave()
        if self._server is not None:
            await self._health.enter_graceful_shutdown()
            await self._server.stop(1.0)
        if self.scheduler is not None:
            await self.scheduler.aclose()
        if self.manager is not None:
            await self.manager.aclose()
        if self._session is not None:
            await self._session.close()
