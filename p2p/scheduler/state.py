"""Scheduler state: hosts, tasks and peers with their state machines and the per-task parent DAG.

Single writer: only the scheduler's event loop touches these objects, so there are no locks. Time comes
from an injected clock so GC is testable.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from p2p.proto.values import TINY_FILE_SIZE, HostInfo, PeerPacket, SizeScope, TaskSpec
from p2p.scheduler.fsm import (
    PEER_TRANSITIONS,
    TASK_TRANSITIONS,
    PeerEvent,
    PeerState,
    StateMachine,
    TaskEvent,
    TaskState,
)
from p2p.types import HostID, PeerID, PieceInfo, TaskID

Clock = Callable[[], float]


@dataclass(eq=False)
class Host:
    info: HostInfo
    upload_limit: int
    updated_at: float
    upload_count: int = 0  # children ever assigned
    upload_failed_count: int = 0  # piece failures reported against this host
    concurrent_upload_count: int = 0  # children currently assigned (scheduler-side slots)
    peers: dict[PeerID, Peer] = field(default_factory=dict)

    @property
    def id(self) -> HostID:
        return self.info.id

    @property
    def is_seed(self) -> bool:
        return self.info.is_seed

    def free_upload_count(self) -> int:
        return self.upload_limit - self.concurrent_upload_count


class Peer:
    def __init__(self, peer_id: PeerID, task: Task, host: Host, now: float) -> None:
        self.id = peer_id
        self.task = task
        self.host = host
        self.fsm: StateMachine[PeerState, PeerEvent] = StateMachine(
            f"peer {peer_id}", PeerState.PENDING, PEER_TRANSITIONS, self._entered
        )
        self.finished_pieces: set[int] = set()
        self.piece_costs_ms: list[float] = []
        self.pieces_from: dict[str, int] = {}  # parent peer id ("" = the origin) -> pieces, for records
        self.block_parents: set[PeerID] = set()
        self.need_back_to_source = False
        self.size_scope = SizeScope.NORMAL  # how it registered (TINY/SMALL skip scheduling)
        self.parents: set[Peer] = set()
        self.children: set[Peer] = set()
        self.created_at = now
        self.updated_at = now
        self.piece_updated_at = now
        # Set while the peer's report stream is open; the service pushes packets through it.
        self.send: Callable[[PeerPacket], None] | None = None

    def __repr__(self) -> str:
        return f"Peer({self.id}, {self.fsm.current})"

    @property
    def state(self) -> PeerState:
        return self.fsm.current

    def _entered(self, src: PeerState, dst: PeerState) -> None:
        task = self.task
        if dst is PeerState.BACK_TO_SOURCE:
            task.back_to_source_peers.add(self.id)
            task.delete_in_edges(self)
        elif dst is PeerState.SUCCEEDED:
            task.back_to_source_peers.discard(self.id)
            task.delete_in_edges(self)
            task.peer_failed_count = 0
        elif dst is PeerState.FAILED:
            if src is PeerState.BACK_TO_SOURCE:
                task.peer_failed_count += 1
            task.back_to_source_peers.discard(self.id)
            task.delete_in_edges(self)
        elif dst is PeerState.LEAVE:
            task.back_to_source_peers.discard(self.id)
            task.delete_in_edges(self)

    def add_piece(self, number: int, cost_ms: float, now: float, parent_id: str = "") -> None:
        if number not in self.finished_pieces:
            self.finished_pieces.add(number)
            self.piece_costs_ms.append(cost_ms)
            self.pieces_from[parent_id] = self.pieces_from.get(parent_id, 0) + 1
        self.piece_updated_at = now
        self.updated_at = now


class Task:
    def __init__(self, task_id: TaskID, spec: TaskSpec, back_to_source_limit: int, now: float) -> None:
        self.id = task_id
        self.spec = spec
        self.fsm: StateMachine[TaskState, TaskEvent] = StateMachine(
            f"task {task_id}", TaskState.PENDING, TASK_TRANSITIONS
        )
        self.back_to_source_limit = back_to_source_limit
        self.back_to_source_peers: set[PeerID] = set()
        self.peer_failed_count = 0
        self.peers: dict[PeerID, Peer] = {}
        self.content_length = spec.content_length
        self.total_piece_count = -(-spec.content_length // spec.piece_size) if spec.piece_size > 0 else 0
        self.updated_at = now
        self.seed_triggered_at: float | None = None
        self.seed_failed_at: float | None = None
        # Pieces as a peer reading the origin stored them (the digests a SMALL child checks against),
        # and a TINY task's whole content once a peer succeeded with it.
        self.source_pieces: dict[int, PieceInfo] = {}
        self.direct_piece: bytes | None = None

    @property
    def state(self) -> TaskState:
        return self.fsm.current

    def size_scope(self) -> SizeScope:
        if self.content_length == 0:
            return SizeScope.EMPTY
        if self.content_length <= TINY_FILE_SIZE:
            return SizeScope.TINY
        if self.total_piece_count == 1:
            return SizeScope.SMALL
        return SizeScope.NORMAL

    def can_back_to_source(self) -> bool:
        # Strict `<`: Dragonfly's `<=` let limit + 1 peers hit the origin.
        return len(self.back_to_source_peers) < self.back_to_source_limit

    # The DAG: parent -> child edges; each edge holds one upload slot on the parent's host.
    def can_add_edge(self, parent: Peer, child: Peer) -> bool:
        if parent is child or parent in child.parents:
            return False
        # A cycle would appear if the parent is already downstream of the child.
        stack, seen = [child], set()
        while stack:
            node = stack.pop()
            if node is parent:
                return False
            if node in seen:
                continue
            seen.add(node)
            stack.extend(node.children)
        return True

    def add_edge(self, parent: Peer, child: Peer) -> None:
        parent.children.add(child)
        child.parents.add(parent)
        parent.host.concurrent_upload_count += 1
        parent.host.upload_count += 1

    def delete_in_edges(self, child: Peer) -> None:
        for parent in child.parents:
            parent.children.discard(child)
            parent.host.concurrent_upload_count -= 1
        child.parents.clear()

    def delete_out_edges(self, parent: Peer) -> None:
        for child in parent.children:
            child.parents.discard(parent)
            parent.host.concurrent_upload_count -= 1
        parent.children.clear()

    def has_source_copy(self, exclude: Peer) -> bool:
        """Another peer has the whole task or is reading it from the origin."""
        copies = (PeerState.SUCCEEDED, PeerState.BACK_TO_SOURCE)
        return any(p is not exclude and p.state in copies for p in self.peers.values())

    def has_available_peer(self, exclude: Peer) -> bool:
        usable = {PeerState.PENDING, PeerState.RUNNING, PeerState.SUCCEEDED, PeerState.BACK_TO_SOURCE}
        usable |= {PeerState.RECEIVED_NORMAL, PeerState.RECEIVED_SMALL}
        return any(p is not exclude and p.state in usable for p in self.peers.values())


class Resources:
    """Every host, task and peer this scheduler knows; the only place they are created or deleted."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.hosts: dict[HostID, Host] = {}
        self.tasks: dict[TaskID, Task] = {}
        self.peers: dict[PeerID, Peer] = {}

    def upsert_host(self, info: HostInfo, upload_limit: int) -> Host:
        now = self.clock()
        host = self.hosts.get(info.id)
        if host is None:
            host = self.hosts[info.id] = Host(info=info, upload_limit=upload_limit, updated_at=now)
        else:
            host.info, host.upload_limit, host.updated_at = info, upload_limit, now
        return host

    def get_or_create_task(self, task_id: TaskID, spec: TaskSpec, back_to_source_limit: int) -> Task:
        task = self.tasks.get(task_id)
        if task is None:
            task = self.tasks[task_id] = Task(task_id, spec, back_to_source_limit, self.clock())
        return task

    def get_or_create_peer(self, peer_id: PeerID, task: Task, host: Host) -> Peer:
        peer = self.peers.get(peer_id)
        if peer is None:
            peer = Peer(peer_id, task, host, self.clock())
            self.peers[peer_id] = task.peers[peer_id] = host.peers[peer_id] = peer
        return peer

    def delete_peer(self, peer: Peer) -> None:
        peer.task.delete_in_edges(peer)
        peer.task.delete_out_edges(peer)
        peer.task.back_to_source_peers.discard(peer.id)
        self.peers.pop(peer.id, None)
        peer.task.peers.pop(peer.id, None)
        peer.host.peers.pop(peer.id, None)

    def iter_peers(self) -> Iterator[Peer]:
        return iter(list(self.peers.values()))
