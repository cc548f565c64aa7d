"""The scheduler's rules: registration, triggering seed peers, scheduling parents, reacting to results, GC.

The gRPC servicer (server.py) only converts messages and calls these methods. Every scheduling job and
seed trigger runs in a task this service owns and cancels on `aclose()`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, Protocol

from p2p.clients.hashring import HashRing
from p2p.common.digest import piece_digest
from p2p.errors import FeatureDisabled, P2PError, StorageError, TaskNotFound
from p2p.proto.values import (
    Code,
    HostInfo,
    ParentInfo,
    PeerPacket,
    PeerResult,
    PieceReport,
    ProbeResult,
    RegisterResult,
    Registration,
    ReportKind,
    SizeScope,
    TaskSpec,
    TaskStat,
    TopologyEdge,
)
from p2p.scheduler import evaluator
from p2p.scheduler.config import SchedulerConfig
from p2p.scheduler.fsm import PeerEvent, PeerState, TaskEvent, TaskState
from p2p.scheduler.records import RecordWriter
from p2p.scheduler.state import Host, Peer, Resources, Task
from p2p.scheduler.topology import NetworkTopology
from p2p.types import HostID, PeerID, PieceInfo, TaskID

log = logging.getLogger(__name__)

SEED_FAILED_TIMEOUT_S = 30 * 60
TOP_UP_INTERVAL_S = 0.5
PARENT_GONE_CODES = frozenset(
    {Code.CONNECTION_ERROR, Code.PIECE_NOT_FOUND}
)  # how often a peer with fewer parents than the limit is offered more


@contextlib.contextmanager
def _topology_store() -> Iterator[None]:
    """A store outage (Redis down) is one warning line and StorageError for the caller, not a traceback
    per probe round of every daemon. (Not UNAVAILABLE: daemons would take the scheduler off their ring.)"""
    try:
        yield
    except P2PError:
        raise
    except Exception as exc:
        log.warning("network topology store failed: %s", exc)
        raise StorageError(f"network topology store failed: {exc}") from exc


class SeedTrigger(Protocol):
    async def trigger(self, host: HostInfo, task_id: TaskID, spec: TaskSpec) -> None: ...


class SchedulerService:
    def __init__(
        self,
        config: SchedulerConfig,
        *,
        clock: Callable[[], float] = time.monotonic,
        seeds: SeedTrigger | None = None,
        records: RecordWriter | None = None,
        rng: random.Random | None = None,
        topology: NetworkTopology | None = None,
    ) -> None:
        self.config = config
        self.sched = config.scheduling
        self.res = Resources(clock)
        self.clock = clock
        self._seeds = seeds
        self._records = records
        self._rng = rng or random.Random()
        # None: network topology is off (SyncProbes answers UNIMPLEMENTED, scores have no probe term).
        self.topology = topology
        self._rtt = topology.rtt_ns if topology is not None else None
        self._jobs: set[asyncio.Task[None]] = set()
        self._scheduling: dict[PeerID, asyncio.Task[None]] = {}
        self._last_scheduled: dict[PeerID, float] = {}
        # Which manager features (`schedule`, `preheat`) this scheduler has; the manager link replaces it.
        self.allows: Callable[[str], bool] = lambda _feature: True

    # ---- lifecycle -------------------------------------------------------------------------------

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        job = asyncio.get_running_loop().create_task(coro)
        self._jobs.add(job)
        job.add_done_callback(self._jobs.discard)
        return job

    async def aclose(self) -> None:
        jobs = list(self._jobs)
        for job in jobs:
            job.cancel()
        await asyncio.gather(*jobs, return_exceptions=True)
        if self._records is not None:
            await self._records.aclose()

    # ---- hosts ---------------------------------------------------------------------------------

    def _upload_limit(self, info: HostInfo) -> int:
        if info.upload_limit > 0:
            return info.upload_limit
        return self.sched.seed_upload_limit if info.is_seed else self.sched.normal_upload_limit

    def announce_host(self, info: HostInfo) -> Host:
        return self.res.upsert_host(info, self._upload_limit(info))

    def leave_host(self, host_id: HostID) -> None:
        host = self.res.hosts.get(host_id)
        if host is None:
            return
        for peer in list(host.peers.values()):
            self._leave(peer)
        self.res.hosts.pop(host_id, None)
        self._forget_host(host_id)

    def _forget_host(self, host_id: HostID) -> None:
        if self.topology is not None:
            self._spawn(self._delete_topology(host_id))

    async def _delete_topology(self, host_id: HostID) -> None:
        assert self.topology is not None
        try:
            await self.topology.delete_host(host_id)
        except Exception as exc:  # the store is down: its edges stay until the host is seen again
            log.warning("dropping the network topology of host %s failed: %s", host_id, exc)

    # ---- network topology --------------------------------------------------------------------------

    async def sync_probes(self, info: HostInfo) -> list[HostInfo]:
        """The hosts `info` should probe now (the prober is a live host: it is announced, too)."""
        assert self.topology is not None
        self.announce_host(info)
        hosts = [h.info for h in self.res.hosts.values()]
        with _topology_store():
            return await self.topology.find_probed_hosts(info.id, hosts)

    async def report_probes(self, src: HostID, probes: list[ProbeResult]) -> None:
        """Store the probes of known hosts (an unknown or departed one would leave edges nobody drops)."""
        assert self.topology is not None
        if src not in self.res.hosts:
            log.info("probes from unknown host %s ignored", src)
            return
        known = [p for p in probes if p.host_id in self.res.hosts and p.host_id != src]
        with _topology_store():
            await self.topology.enqueue(src, known)

    async def topology_edges(self, host_id: HostID | None = None) -> list[TopologyEdge]:
        assert self.topology is not None
        with _topology_store():
            return await self.topology.edges(host_id)

    # ---- registration ------------------------------------------------------------------------------

    def register_peer(self, reg: Registration) -> RegisterResult:
        if not self.allows("schedule"):
            raise FeatureDisabled("scheduler has the schedule feature disabled")
        host = self.res.hosts.get(reg.host.id) or self.announce_host(reg.host)
        task = self.res.get_or_create_task(reg.task_id, reg.spec, self.sched.back_to_source_count)
        known = self.res.peers.get(reg.peer_id)
        if known is not None and known.task is task and known.state is not PeerState.PENDING:
            # A retried registration: the peer is already on its way (a small task's shortcut is not
            # repeated; the peer takes the normal way).
            empty = known.state is PeerState.RECEIVED_EMPTY
            return RegisterResult(SizeScope.EMPTY if empty else SizeScope.NORMAL)
        peer = self.res.get_or_create_peer(reg.peer_id, task, host)
        task.updated_at = self.clock()
        if reg.complete:
            return self._register_complete(task, peer, reg.pieces)
        self._trigger_task(task, peer)
        if task.content_length == 0:
            peer.fsm.fire(PeerEvent.REGISTER_EMPTY)
            result = RegisterResult(SizeScope.EMPTY)
        elif task.state is TaskState.SUCCEEDED and (shortcut := self._register_small(task, peer)) is not None:
            result = shortcut
        else:
            peer.fsm.fire(PeerEvent.REGISTER_NORMAL)
            result = RegisterResult(SizeScope.NORMAL)
        peer.size_scope = result.scope
        return result

    def _register_complete(self, task: Task, peer: Peer, pieces: tuple[PieceInfo, ...]) -> RegisterResult:
        """A peer that holds the whole task already (an object written through it, a seed that has it
        on disk) is a succeeded parent at once: no seed trigger, no scheduling, no origin read. Its
        pieces stand for the origin's (they are the bytes the origin has under this version)."""
        empty = task.content_length == 0
        peer.fsm.fire(PeerEvent.REGISTER_EMPTY if empty else PeerEvent.REGISTER_NORMAL)
        peer.fsm.fire(PeerEvent.DOWNLOAD_SUCCEEDED)
        peer.finished_pieces = set(range(task.total_piece_count))
        if task.state is not TaskState.SUCCEEDED:
            if task.state is not TaskState.RUNNING:
                task.fsm.fire(TaskEvent.DOWNLOAD)
            task.fsm.fire(TaskEvent.DOWNLOAD_SUCCEEDED)
        for piece in pieces:
            task.source_pieces.setdefault(piece.number, piece)
        return RegisterResult(SizeScope.EMPTY if empty else SizeScope.NORMAL)

    def _register_small(self, task: Task, peer: Peer) -> RegisterResult | None:
        """A succeeded TINY task is answered with its content, a SMALL one with a finished parent:
        no scheduling round for objects of one piece (a JuiceFS block, say). None: the normal way."""
        piece = task.source_pieces.get(0)
        scope = task.size_scope()
        if scope is SizeScope.TINY and task.direct_piece is not None:
            peer.fsm.fire(PeerEvent.REGISTER_TINY)
            return RegisterResult(SizeScope.TINY, content=task.direct_piece, piece=piece)
        if scope not in (SizeScope.TINY, SizeScope.SMALL) or piece is None:
            return None
        finished = [p for p in self._find(peer, set()) if p.state is PeerState.SUCCEEDED]
        if not finished:
            return None
        parent = finished[0]
        task.add_edge(parent, peer)
        peer.fsm.fire(PeerEvent.REGISTER_SMALL)
        return RegisterResult(SizeScope.SMALL, parent=self._parent_info(parent), piece=piece)

    def _trigger_task(self, task: Task, peer: Peer) -> None:
        """Make sure someone fetches the task from the origin: a seed peer, or this peer itself."""
        if peer.host.is_seed and not task.has_source_copy(peer):
            # A seed is there to read the origin for the others: peers that merely registered have
            # nothing to give it yet, and searching them would only delay the first origin byte.
            if task.fsm.can(TaskEvent.DOWNLOAD):
                task.fsm.fire(TaskEvent.DOWNLOAD)
            peer.need_back_to_source = True
            return
        if task.state in (TaskState.RUNNING, TaskState.SUCCEEDED) and task.has_available_peer(peer):
            return
        if task.fsm.can(TaskEvent.DOWNLOAD):
            task.fsm.fire(TaskEvent.DOWNLOAD)
        seed = self._pick_seed(task)
        if seed is not None and self._seeds is not None:
            task.seed_triggered_at = self.clock()
            self._spawn(self._run_seed_trigger(seed, task))
            return
        peer.need_back_to_source = True

    def _pick_seed(self, task: Task) -> HostInfo | None:
        if not self.config.seed_peer_enable:
            return None
        if task.seed_failed_at is not None and self.clock() - task.seed_failed_at < SEED_FAILED_TIMEOUT_S:
            return None
        seeds = {h.id: h for h in self.res.hosts.values() if h.is_seed and h.info.rpc_port > 0}
        chosen = HashRing(seeds).pick(task.id)
        return seeds[HostID(chosen)].info if chosen is not None else None

    async def _run_seed_trigger(self, seed: HostInfo, task: Task) -> None:
        assert self._seeds is not None
        try:
            await self._seeds.trigger(seed, task.id, task.spec)
        except Exception as exc:  # a failing seed must not stop peers: they fall back to the origin
            log.warning("seed trigger failed task_id=%s seed=%s: %s", task.id, seed.id, exc)
            task.seed_failed_at = self.clock()
            task.seed_triggered_at = None

    def _seed_pending(self, task: Task) -> bool:
        started = task.seed_triggered_at
        if started is None or self.clock() - started > self.sched.seed_trigger_wait_s:
            return False
        # Pending until a seed peer of this task is in the DAG.
        return not any(p.host.is_seed for p in task.peers.values())

    # ---- the report stream -------------------------------------------------------------------------

    def attach(self, peer_id: PeerID, send: Callable[[PeerPacket], None]) -> Peer | None:
        peer = self.res.peers.get(peer_id)
        if peer is not None:
            peer.send = send
        return peer

    def detach(self, peer: Peer, send: Callable[[PeerPacket], None]) -> None:
        if peer.send is send:
            peer.send = None

    def handle_report(self, report: PieceReport) -> Code:
        """Apply one report; returns REREGISTER when the peer is unknown (e.g. this scheduler restarted)."""
        peer = self.res.peers.get(report.peer_id)
        if peer is None:
            return Code.REREGISTER
        now = self.clock()
        peer.updated_at = now
        if report.kind is ReportKind.BEGIN:
            if peer.state in (PeerState.RECEIVED_NORMAL, PeerState.RECEIVED_SMALL, PeerState.RECEIVED_TINY):
                normal = peer.state is PeerState.RECEIVED_NORMAL
                peer.fsm.fire(PeerEvent.DOWNLOAD)
                if normal:
                    self.schedule(peer, set())
        elif report.kind is ReportKind.PIECE:
            if report.success:
                self._piece_succeeded(peer, report, now)
            else:
                self._piece_failed(peer, report)
        return Code.OK

    def _piece_succeeded(self, peer: Peer, report: PieceReport, now: float) -> None:
        if report.piece is not None:
            peer.add_piece(report.piece.number, float(report.cost_ms), now, report.parent_id or "")
            if report.parent_id is None:  # read from the origin: the digest later children check against
                peer.task.source_pieces.setdefault(report.piece.number, report.piece)
        parent = self.res.peers.get(report.parent_id) if report.parent_id else None
        if parent is not None:
            parent.updated_at = now
        # Offer more parents to a peer that has fewer than the limit (new peers may have pieces by now).
        if (
            peer.state is PeerState.RUNNING
            and len(peer.parents) < self.sched.candidate_parent_limit
            and peer.id not in self._scheduling
            and now - self._last_scheduled.get(peer.id, 0.0) >= TOP_UP_INTERVAL_S
        ):
            self._top_up(peer)

    def _piece_failed(self, peer: Peer, report: PieceReport) -> None:
        if peer.state is PeerState.BACK_TO_SOURCE or report.parent_id is None:
            return
        parent = self.res.peers.get(report.parent_id)
        if parent is not None:
            parent.host.upload_failed_count += 1
            if report.code in PARENT_GONE_CODES and parent.fsm.can(PeerEvent.DOWNLOAD_FAILED):
                # Unreachable, or no longer has the task: nobody should use it, and its origin budget
                # (if it had one) is free again.
                log.info("parent %s of task %s is gone (%s)", parent.id, parent.task.id, report.code.name)
                parent.fsm.fire(PeerEvent.DOWNLOAD_FAILED)
                self._reschedule_children(parent)
        peer.block_parents.add(report.parent_id)
        if peer.state is PeerState.RUNNING:
            self.schedule(peer, set(peer.block_parents))
        else:
            self._send(peer, PeerPacket(task_id=peer.task.id, peer_id=peer.id, code=Code.SCHED_ERROR))

    # ---- scheduling ----------------------------------------------------------------------------------

    def schedule(self, peer: Peer, blocklist: set[PeerID]) -> None:
        """(Re)schedule `peer` in a background job; a newer request replaces a running one."""
        running = self._scheduling.pop(peer.id, None)
        if running is not None:
            running.cancel()
        job = self._spawn(self._schedule(peer, blocklist))
        self._scheduling[peer.id] = job
        job.add_done_callback(lambda j: self._forget_job(peer.id, j))

    def _forget_job(self, peer_id: PeerID, job: asyncio.Task[None]) -> None:
        if self._scheduling.get(peer_id) is job:
            del self._scheduling[peer_id]

    async def _schedule(self, peer: Peer, blocklist: set[PeerID]) -> None:
        task, n = peer.task, 0
        while peer.state is PeerState.RUNNING:
            if task.can_back_to_source() and (peer.need_back_to_source or n >= self.sched.retry_back_to_source_limit):
                peer.fsm.fire(PeerEvent.DOWNLOAD_BACK_TO_SOURCE)
                if task.fsm.is_(TaskState.FAILED):
                    task.fsm.fire(TaskEvent.DOWNLOAD)
                self._send(peer, PeerPacket(task_id=task.id, peer_id=peer.id, code=Code.NEED_BACK_TO_SOURCE))
                return
            if n >= self.sched.retry_limit:
                self._send(
                    peer,
                    PeerPacket(task_id=task.id, peer_id=peer.id, code=Code.TASK_STATUS_ERROR, description="no parent"),
                )
                return
            task.delete_in_edges(peer)
            parents = self._find(peer, blocklist)
            if parents:
                for parent in parents:
                    task.add_edge(parent, peer)
                self._send_parents(peer)
                return
            if not self._seed_pending(task):
                n += 1
            await asyncio.sleep(self.sched.retry_interval_s)

    def _find(self, peer: Peer, blocklist: set[PeerID], limit: int | None = None) -> list[Peer]:
        return evaluator.find_candidate_parents(
            peer,
            blocklist | peer.block_parents,
            limit=self.sched.candidate_parent_limit if limit is None else limit,
            sample_size=self.sched.filter_parent_limit,
            rng=self._rng,
            rtt=self._rtt,
            seed_task_children=self.sched.seed_task_children,
        )

    def _top_up(self, peer: Peer) -> None:
        room = self.sched.candidate_parent_limit - len(peer.parents)
        extra = [p for p in self._find(peer, set(p.id for p in peer.parents)) if p not in peer.parents][:room]
        self._last_scheduled[peer.id] = self.clock()
        if extra:
            for parent in extra:
                peer.task.add_edge(parent, peer)
            self._send_parents(peer)

    def _send_parents(self, peer: Peer) -> None:
        self._last_scheduled[peer.id] = self.clock()
        ranked = sorted(
            peer.parents,
            key=lambda p: evaluator.evaluate(p, peer, peer.task.total_piece_count, self._rtt),
            reverse=True,
        )
        parents = tuple(self._parent_info(p) for p in ranked)
        self._send(
            peer,
            PeerPacket(
                task_id=peer.task.id,
                peer_id=peer.id,
                parents=parents,
                parallel_count=self.sched.parallel_count,
            ),
        )

    @staticmethod
    def _parent_info(p: Peer) -> ParentInfo:
        return ParentInfo(
            peer_id=p.id,
            host_id=p.host.id,
            ip=p.host.info.ip,
            download_port=p.host.info.download_port,
            finished=p.state is PeerState.SUCCEEDED,
            seed=p.host.is_seed,
        )

    def _send(self, peer: Peer, packet: PeerPacket) -> None:
        if peer.send is not None:
            peer.send(packet)

    def _reschedule_children(self, peer: Peer) -> None:
        for child in list(peer.children):
            child.block_parents.add(peer.id)
            peer.task.delete_in_edges(child)
            if child.state is PeerState.RUNNING:
                self.schedule(child, set(child.block_parents))

    # ---- results and leaving ------------------------------------------------------------------------

    async def report_peer_result(self, result: PeerResult) -> None:
        peer = self.res.peers.get(result.peer_id)
        if peer is None:
            return
        task = peer.task
        was_source = peer.state is PeerState.BACK_TO_SOURCE
        if result.success:
            if peer.fsm.can(PeerEvent.DOWNLOAD_SUCCEEDED):
                peer.fsm.fire(PeerEvent.DOWNLOAD_SUCCEEDED)
            peer.finished_pieces = set(range(task.total_piece_count))
            if task.fsm.can(TaskEvent.DOWNLOAD_SUCCEEDED):
                task.fsm.fire(TaskEvent.DOWNLOAD_SUCCEEDED)
            self._keep_direct_piece(task, result.direct_piece)
        else:
            if peer.fsm.can(PeerEvent.DOWNLOAD_FAILED):
                peer.fsm.fire(PeerEvent.DOWNLOAD_FAILED)
            if was_source and task.fsm.can(TaskEvent.DOWNLOAD_FAILED) and not task.back_to_source_peers:
                task.fsm.fire(TaskEvent.DOWNLOAD_FAILED)
            self._reschedule_children(peer)
        if self._records is not None:
            await self._records.write(
                {
                    "task_id": task.id,
                    "peer_id": peer.id,
                    "host_id": peer.host.id,
                    "url": task.spec.url,
                    "success": result.success,
                    "back_to_source": was_source,
                    "size_scope": peer.size_scope.name,
                    "content_length": result.content_length,
                    "cost_ms": result.cost_ms,
                    "source_bytes": result.source_bytes,
                    "code": int(result.code),
                    "blocked_parents": sorted(peer.block_parents),
                    "pieces_from": dict(peer.pieces_from),
                    "finished_at": time.time(),
                }
            )

    @staticmethod
    def _keep_direct_piece(task: Task, content: bytes) -> None:
        """Keep a TINY task's content for later registrations, only when it matches the digest of the
        piece a peer read from the origin."""
        if task.direct_piece is not None or task.size_scope() is not SizeScope.TINY:
            return
        piece = task.source_pieces.get(0)
        if len(content) == task.content_length and piece is not None and piece_digest(content) == piece.digest:
            task.direct_piece = content

    def leave_peer(self, task_id: TaskID, peer_id: PeerID) -> None:
        peer = self.res.peers.get(peer_id)
        if peer is not None and peer.task.id == task_id:
            self._leave(peer)

    def _leave(self, peer: Peer) -> None:
        if peer.fsm.can(PeerEvent.LEAVE):
            peer.fsm.fire(PeerEvent.LEAVE)
        self._reschedule_children(peer)
        job = self._scheduling.pop(peer.id, None)
        if job is not None:
            job.cancel()
        self._last_scheduled.pop(peer.id, None)
        self.res.delete_peer(peer)

    def source_digests(self, task_id: TaskID) -> list[PieceInfo]:
        """The pieces of a task as its origin reader (or a complete peer) reported them."""
        task = self.res.tasks.get(task_id)
        if task is None:
            raise TaskNotFound(f"task {task_id} is unknown to this scheduler")
        return [task.source_pieces[n] for n in sorted(task.source_pieces)]

    def stat_task(self, task_id: TaskID) -> TaskStat:
        task = self.res.tasks.get(task_id)
        if task is None:
            raise TaskNotFound(f"task {task_id} is unknown to this scheduler")
        return TaskStat(
            task_id=task.id,
            state=str(task.state),
            content_length=task.content_length,
            total_piece_count=task.total_piece_count,
            peer_count=len(task.peers),
            back_to_source_peer_count=len(task.back_to_source_peers),
        )

    # ---- GC ---------------------------------------------------------------------------------------

    def gc_peers(self) -> int:
        gc, now, removed = self.config.gc, self.clock(), 0
        for peer in self.res.iter_peers():
            stalled = (
                peer.state in (PeerState.RUNNING, PeerState.BACK_TO_SOURCE)
                and now - peer.piece_updated_at > gc.piece_download_timeout_s
            )
            expired = now - peer.updated_at > gc.peer_ttl_s or now - peer.host.updated_at > gc.host_ttl_s
            if peer.state in (PeerState.LEAVE, PeerState.FAILED) or stalled or expired:
                self._leave(peer)
                removed += 1
        return removed

    def gc_tasks(self) -> int:
        empty = [t for t in self.res.tasks.values() if not t.peers]
        for task in empty:
            self.res.tasks.pop(task.id, None)
        return len(empty)

    def gc_hosts(self) -> int:
        now, ttl = self.clock(), self.config.gc.host_ttl_s
        idle = [
            h
            for h in self.res.hosts.values()
            if not h.peers and h.concurrent_upload_count == 0 and (not h.is_seed or now - h.updated_at > ttl)
        ]
        for host in idle:
            self.res.hosts.pop(host.id, None)
            self._forget_host(host.id)
        return len(idle)

    async def run_gc(self) -> None:
        """Runs until cancelled; each kind of GC on its own interval."""
        gc = self.config.gc
        due = {"peers": gc.peer_gc_interval_s, "tasks": gc.task_gc_interval_s, "hosts": gc.host_gc_interval_s}
        last = dict.fromkeys(due, self.clock())
        while True:
            await asyncio.sleep(min(due.values()))
            now = self.clock()
            for kind, interval in due.items():
                if now - last[kind] >= interval:
                    last[kind] = now
                    getattr(self, f"gc_{kind}")()
