"""The daemon's piece dispatcher (which piece from which parent, origin runs, modes, blocking and completion)
and the origin read that cuts a run into pieces."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator

import pytest

from p2p.daemon.dispatcher import Dispatcher, Mode
from p2p.errors import SourceError
from p2p.proto.values import ParentInfo
from p2p.source import SourceRouter
from p2p.types import HostID, PeerID, PieceInfo, SourceStat


def parent(name: str) -> ParentInfo:
    return ParentInfo(peer_id=PeerID(name), host_id=HostID(name), ip="127.0.0.1", download_port=1)


def pieces(*numbers: int) -> list[PieceInfo]:
    return [PieceInfo(number=n, offset=n * 4, size=4, digest=f"d{n}") for n in numbers]


async def test_waits_for_parents_then_fetches_only_what_they_have() -> None:
    d = Dispatcher(4, present={0}, workers=1, rng=random.Random(0))
    assert d.mode is Mode.WAITING
    (a,), _ = d.set_parents((parent("a"),))
    assert d.mode is Mode.PEERS
    waiter = asyncio.ensure_future(d.next())
    await asyncio.sleep(0)
    assert not waiter.done()  # a has nothing yet
    d.update_pieces(a, pieces(0, 2), done=False)
    job = await asyncio.wait_for(waiter, 1)
    assert job is not None and job.number == 2 and job.parent is a  # 0 is already here
    d.finished(job, cost_ms=10)
    assert a.score_ms == 5


async def test_blocked_parent_is_never_used_again() -> None:
    d = Dispatcher(2, present=set(), workers=1, rng=random.Random(0))
    (a, b), _ = d.set_parents((parent("a"), parent("b")))
    d.update_pieces(a, pieces(0, 1), done=True)
    d.block(a.peer_id)
    d.set_parents((parent("a"), parent("b")))  # the scheduler offering it again changes nothing
    assert list(d.parents) == [b.peer_id]
    d.update_pieces(b, pieces(1), done=False)
    job = await d.next()
    assert job is not None and job.parent is b and job.number == 1


async def test_source_mode_and_completion() -> None:
    d = Dispatcher(3, present={1}, workers=2, rng=random.Random(0))
    d.to_source()
    first, second = await d.next(), await d.next()
    assert first is not None and second is not None
    assert (first.number, second.number) == (0, 2) and first.parent is None
    waiter = asyncio.ensure_future(d.next())  # nothing left to start, but not complete either
    await asyncio.sleep(0)
    assert not waiter.done()
    d.failed(first)  # a failed piece is handed out again
    again = await asyncio.wait_for(waiter, 1)
    assert again is not None and again.number == 0
    d.finished(again, 1)
    d.finished(second, 1)
    assert d.complete and await d.next() is None


async def test_failures_make_a_parent_less_preferred() -> None:
    d = Dispatcher(40, present=set(), workers=1, rng=random.Random(0))
    (a, b), _ = d.set_parents((parent("a"), parent("b")))
    d.update_pieces(a, pieces(*range(40)), done=True)
    d.update_pieces(b, pieces(*range(40)), done=True)
    job = await d.next()
    assert job is not None
    d.failed(job)
    failed = job.parent
    picks = []
    for _ in range(20):
        job = await d.next()
        assert job is not None
        picks.append(job.parent)
        d.finished(job, 1)
    assert picks.count(failed) <= 4  # only the random 10 % pick it


async def test_fetches_spread_over_parents_and_respect_the_per_parent_cap() -> None:
    d = Dispatcher(8, present=set(), workers=4, rng=random.Random(0), per_parent=1)
    (a, b), _ = d.set_parents((parent("a"), parent("b")))
    d.update_pieces(a, pieces(*range(8)), done=True)
    d.update_pieces(b, pieces(*range(8)), done=True)
    first, second = await d.next(), await d.next()
    assert first is not None and second is not None
    assert first.parent is not None and second.parent is not None
    assert {first.parent.peer_id, second.parent.peer_id} == {a.peer_id, b.peer_id}  # least busy first
    waiter = asyncio.ensure_future(d.next())  # both parents are at their cap
    await asyncio.sleep(0)
    assert not waiter.done()
    d.failed(first, busy=True)  # a busy parent frees its slot and keeps its score
    third = await asyncio.wait_for(waiter, 1)
    assert third is not None and third.parent is first.parent and first.parent.score_ms == 0


async def test_source_reads_in_flight_are_capped() -> None:
    d = Dispatcher(8, present=set(), workers=4, rng=random.Random(0), source_workers=2)
    d.to_source()
    jobs = [await d.next(), await d.next()]
    waiter = asyncio.ensure_future(d.next())
    await asyncio.sleep(0)
    assert not waiter.done()
    assert jobs[0] is not None
    d.finished(jobs[0], 1)
    job = await asyncio.wait_for(waiter, 1)
    assert job is not None and job.number == 2


async def test_a_seed_gives_only_what_no_other_parent_has_and_peers_go_lowest_first() -> None:
    d = Dispatcher(6, present=set(), workers=4, rng=random.Random(0), per_parent=1)
    seed = ParentInfo(peer_id=PeerID("s"), host_id=HostID("s"), ip="127.0.0.1", download_port=1, seed=True)
    (s, a), _ = d.set_parents((seed, parent("a")))
    d.update_pieces(s, pieces(*range(6)), done=True)
    d.update_pieces(a, pieces(3, 1), done=False)
    jobs = [await d.next(), await d.next()]
    numbers: dict[str, int] = {j.parent.peer_id: j.number for j in jobs if j is not None and j.parent is not None}
    assert numbers["a"] == 1  # the lowest piece the peer has
    assert numbers["s"] not in (1, 3)  # the peer has those: the seed's link is spared


async def test_origin_runs_cover_consecutive_missing_pieces_up_to_the_cap() -> None:
    d = Dispatcher(10, present={3}, workers=3, rng=random.Random(0), source_workers=3, source_run=4)
    d.to_source()
    runs = [await d.next() for _ in range(3)]
    assert [(j.number, j.count) for j in runs if j is not None] == [(0, 3), (4, 4), (8, 2)]  # 3 is present
    first = runs[0]
    assert first is not None
    d.landed(0)  # a run lands piece by piece, then breaks: its other pieces are free again
    d.failed(first)
    again = await asyncio.wait_for(d.next(), 1)
    assert again is not None and (again.number, again.count) == (1, 2)


async def test_a_read_of_pieces_cuts_chunks_that_straddle_pieces() -> None:
    """`SourceRouter.read_pieces` over an origin that sends chunks of odd sizes."""
    body = bytes(range(256)) * 4  # 1024 bytes: pieces of 400, 400 and 224

    class Chunky:
        def __init__(self, extra: bytes = b"") -> None:
            self.extra = extra

        async def stat(self, url: str) -> SourceStat:
            raise NotImplementedError

        async def read(self, url: str, offset: int, length: int) -> AsyncIterator[bytes]:
            data = body[offset : offset + length] + self.extra
            for pos in range(0, len(data), 333):
                yield data[pos : pos + 333]

    async def cut(source: Chunky, offset: int, lengths: list[int]) -> list[tuple[int, bytes]]:
        into = memoryview(bytearray(max(lengths)))
        got = []
        async with contextlib.aclosing(SourceRouter({"x": source}).read_pieces("x://o", offset, lengths, into)) as it:
            async for i in it:
                got.append((i, bytes(into[: lengths[i]])))
        return got

    assert await cut(Chunky(), 0, [400, 400, 224]) == [(0, body[:400]), (1, body[400:800]), (2, body[800:])]
    with pytest.raises(SourceError, match="short read"):
        await cut(Chunky(), 1000, [100])
    with pytest.raises(SourceError, match="more than"):
        await cut(Chunky(extra=b"!"), 0, [10])
