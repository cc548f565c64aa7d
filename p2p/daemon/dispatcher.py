"""Which piece to fetch next, and from where: the daemon-side piece dispatcher of one download.

It knows the task's missing pieces, the pieces each parent has (learned from the parents' piece
lists while they are still downloading), the pieces in flight and a per-parent score (mean cost,
lower is better; a failure counts as a slow piece). Workers call `next()` and get either a piece from
a parent or, once the download switched to the origin, a piece to read from the origin.

Parents are tried least busy first (fewest of our fetches in flight there, then the best score), so
the workers spread over the parents instead of all queueing at the one with the best score: a parent
that every child likes (the most advanced one) would otherwise carry every child's fetches on its one
upload link while the others idle.
"""

from __future__ import annotations

import asyncio
import enum
import itertools
import random
import time
from dataclasses import dataclass, field

from p2p.proto.values import ParentInfo
from p2p.types import PeerID, PieceInfo

FAILURE_COST_MS = 60_000.0
RANDOM_RATIO = 0.1  # sometimes ignore scores so a slow-looking parent gets another chance
# From a seed, a random one of its first few pieces that no other parent has: when many children share
# the seed they fetch different pieces and trade them, instead of all pulling the same one from it.
SEED_WINDOW = 8


class Mode(enum.Enum):
    WAITING = "waiting"  # registered, no parents yet
    PEERS = "peers"
    SOURCE = "source"


@dataclass
class ParentState:
    info: ParentInfo
    pieces: dict[int, PieceInfo] = field(default_factory=dict)
    score_ms: float = 0.0
    done: bool = False
    in_flight: int = 0  # our fetches from this parent now

    @property
    def peer_id(self) -> PeerID:
        return self.info.peer_id


@dataclass(frozen=True)
class Job:
    number: int
    parent: ParentState | None  # None: read from the origin
    count: int = 1  # origin jobs: a run of consecutive pieces from `number`, read in one request

    @property
    def numbers(self) -> range:
        return range(self.number, self.number + self.count)


class Dispatcher:
    def __init__(
        self,
        piece_count: int,
        present: set[int],
        *,
        workers: int,
        rng: random.Random | None = None,
        per_parent: int = 0,
        source_workers: int = 0,
        source_run: int = 1,
    ):
        """`per_parent` > 0 caps our fetches in flight from one parent; `source_workers` > 0 caps the
        origin reads in flight once the download went to the origin; `source_run` is the most pieces
        one origin read covers."""
        self.piece_count = piece_count
        self.per_parent = per_parent
        self.source_workers = source_workers
        self.source_run = max(1, source_run)
        self._source_reads = 0
        self.present = set(present)
        self.in_flight: set[int] = set()
        self.parents: dict[PeerID, ParentState] = {}
        self.blocked: set[PeerID] = set()
        self.mode = Mode.WAITING
        self._rng = rng or random.Random()
        self._changed = asyncio.Event()
        self.last_progress = time.monotonic()

    # ---- updates -----------------------------------------------------------------------------

    def _notify(self) -> None:
        self._changed.set()

    def set_parents(self, parents: tuple[ParentInfo, ...]) -> tuple[list[ParentState], list[ParentState]]:
        """Replace the parent set; returns (added, removed). Blocked parents are never re-added."""
        wanted = {p.peer_id: p for p in parents if p.peer_id not in self.blocked}
        removed = [s for pid, s in self.parents.items() if pid not in wanted]
        added = []
        for pid, info in wanted.items():
            if pid not in self.parents:
                self.parents[pid] = ParentState(info=info)
                added.append(self.parents[pid])
        for state in removed:
            del self.parents[state.peer_id]
        if self.mode is Mode.WAITING and self.parents:
            self.mode = Mode.PEERS
            self.last_progress = time.monotonic()
        self._notify()
        return added, removed

    def update_pieces(self, parent: ParentState, pieces: list[PieceInfo], done: bool) -> None:
        for piece in pieces:
            parent.pieces[piece.number] = piece
        parent.done = done
        self._notify()

    def block(self, peer_id: PeerID) -> ParentState | None:
        """Never use this parent again in this download (it failed or lied)."""
        self.blocked.add(peer_id)
        state = self.parents.pop(peer_id, None)
        self._notify()
        return state

    def to_source(self) -> None:
        self.mode = Mode.SOURCE
        self._notify()

    def landed(self, number: int) -> None:
        """One piece of a job is stored (an origin run lands piece by piece)."""
        self.last_progress = time.monotonic()
        self.in_flight.discard(number)
        self.present.add(number)
        self._notify()

    def finished(self, job: Job, cost_ms: float = 0.0) -> None:
        """The job is over and every piece of it landed."""
        for number in job.numbers:
            self.landed(number)
        self._release(job)
        if job.parent is not None:
            job.parent.score_ms = (job.parent.score_ms + cost_ms) / 2

    def failed(self, job: Job, *, busy: bool = False) -> None:
        """The job is over without delivering the pieces that have not landed; `busy`: the parent had no
        free upload slot, which is no fault."""
        self.in_flight.difference_update(job.numbers)
        self._release(job)
        if job.parent is not None and not busy:
            job.parent.score_ms = (job.parent.score_ms + FAILURE_COST_MS) / 2
        self._notify()

    def _release(self, job: Job) -> None:
        if job.parent is not None:
            job.parent.in_flight -= 1
        else:
            self._source_reads -= 1

    # ---- choosing ----------------------------------------------------------------------------

    @property
    def complete(self) -> bool:
        return len(self.present) >= self.piece_count

    def _missing(self) -> list[int]:
        return [n for n in range(self.piece_count) if n not in self.present and n not in self.in_flight]

    def _pick(self) -> Job | None:
        missing = self._missing()
        if not missing:
            return None
        if self.mode is Mode.SOURCE:
            if self.source_workers and self._source_reads >= self.source_workers:
                return None
            return Job(number=missing[0], parent=None, count=self._run_length(missing))
        parents = list(self.parents.values())
        if self._rng.random() < RANDOM_RATIO:
            self._rng.shuffle(parents)
        else:
            parents.sort(key=lambda s: (s.in_flight, s.score_ms))
        for state in parents:
            if self.per_parent and state.in_flight >= self.per_parent:
                continue
            offered = (n for n in missing if n in state.pieces and not self._spare_seed(state, n, parents))
            if not state.info.seed:
                # The lowest piece: a random pick among the first few left some pieces behind for
                # seconds, fetched only after the seed was done, which lengthened the tail at every hop.
                number = next(offered, None)
                if number is not None:
                    return Job(number=number, parent=state)
                continue
            window = list(itertools.islice(offered, SEED_WINDOW))
            if window:
                return Job(number=self._rng.choice(window), parent=state)
        return None

    def _run_length(self, missing: list[int]) -> int:
        """Consecutive missing pieces from the lowest one, up to `source_run`: one origin read streams
        them in order, so each lands as soon as its bytes are in and no request gap idles the link."""
        count = 1
        while count < min(self.source_run, len(missing)) and missing[count] == missing[0] + count:
            count += 1
        return count

    @staticmethod
    def _spare_seed(state: ParentState, number: int, parents: list[ParentState]) -> bool:
        """A seed's upload is the scarce link (every child may have it as a parent): take from it
        only the pieces no other parent has yet."""
        return state.info.seed and any(number in s.pieces for s in parents if not s.info.seed)

    async def next(self) -> Job | None:
        """The next job, waiting until one is possible; None once every piece is present."""
        while not self.complete:
            job = self._pick()
            if job is not None:
                self.in_flight.update(job.numbers)
                if job.parent is not None:
                    job.parent.in_flight += 1
                else:
                    self._source_reads += 1
                return job
            self._changed.clear()
            await self._changed.wait()
        return None
