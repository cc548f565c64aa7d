"""PieceStore / TaskStore on real files: piece writes, digests, waiting, reload, verification, GC, import."""

from __future__ import annotations

import asyncio
import json
import os
import random
from pathlib import Path

import pytest

from p2p.common.digest import piece_digest, task_digest
from p2p.common.ids import task_id
from p2p.daemon.store import PieceStore, TaskStore
from p2p.errors import PieceDigestMismatch, PieceNotFound, SourceError, TaskNotFound
from p2p.proto.values import TaskSpec
from p2p.types import ByteRange, SourceStat, TaskID

PS = 64 * 1024  # small pieces keep these tests fast; the store takes any piece size


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def blob(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def tid(name: str) -> TaskID:
    return task_id(f"http://origin/{name}", "v1")


async def new_store(root: Path, **kw: object) -> PieceStore:
    store = PieceStore(root, gc_interval_s=0, **kw)  # type: ignore[arg-type]
    await store.start()
    return store


async def fill(task: TaskStore, data: bytes, order: list[int] | None = None) -> None:
    for n in order if order is not None else range(task.piece_count):
        await task.write_piece(n, data[n * task.piece_size : n * task.piece_size + task.piece_length(n)])


def bump_mtime(path: Path) -> None:
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


def corrupt(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    bump_mtime(path)  # what a later write does; same-tick writes would hide it


@pytest.mark.parametrize("size", [0, 1, PS - 1, PS, PS + 1, 3 * PS + 7])
async def test_write_pieces_any_order(tmp_path: Path, size: int) -> None:
    store = await new_store(tmp_path)
    data = blob(size)
    task = await store.create(tid(f"s{size}"), url="u", content_length=size, piece_size=PS, content_type="a/b")
    assert task.piece_count == -(-size // PS)
    assert task.done is (size == 0)
    await fill(task, data, list(reversed(range(task.piece_count))))
    assert task.done
    assert task.data_path.read_bytes() == data
    digests = [piece_digest(data[n * PS : (n + 1) * PS]) for n in range(task.piece_count)]
    assert [p.digest for p in task.pieces()] == digests
    assert task.task_digest == task_digest(digests)
    meta = json.loads(task.meta_path.read_text())
    assert meta["done"] and meta["task_digest"] == task.task_digest
    await store.close()


async def test_create_returns_existing_and_rejects_bad_ids(tmp_path: Path) -> None:
    store = await new_store(tmp_path)
    a = await store.create(tid("x"), url="u", content_length=10, piece_size=PS, content_type="t")
    b = await store.create(tid("x"), url="u", content_length=10, piece_size=PS, content_type="t")
    assert a is b
    with pytest.raises(ValueError):
        await store.create("../../etc", url="u", content_length=1, piece_size=PS, content_type="t")  # type: ignore[arg-type]
    assert store.get("../../etc") is None  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == [tid("x")[:3]]
    await store.close()


async def test_expected_digest_mismatch_stores_nothing(tmp_path: Path) -> None:
    store = await new_store(tmp_path)
    task = await store.create(tid("m"), url="u", content_length=2 * PS, piece_size=PS, content_type="t")
    good = blob(PS)
    with pytest.raises(PieceDigestMismatch):
        await task.write_piece(0, good, expected_digest=piece_digest(b"other"))
    assert not task.has_piece(0)
    assert task.data_path.read_bytes()[:PS] == bytes(PS)  # still the sparse zeros
    info = await task.write_piece(0, good, expected_digest=piece_digest(good))
    assert info.digest == piece_digest(good) and task.has_piece(0)
    with pytest.raises(ValueError):
        await task.write_piece(1, b"short")
    await store.close()


async def test_waiters_wake_on_piece_and_on_failure(tmp_path: Path) -> None:
    store = await new_store(tmp_path)
    task = await store.create(tid("w"), url="u", content_length=2 * PS, piece_size=PS, content_type="t")
    waiter = asyncio.create_task(task.wait_piece(1))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    await task.write_piece(1, blob(PS))
    assert (await asyncio.wait_for(waiter, 5)).number == 1

    failing = asyncio.create_task(task.wait_piece(0))
    await asyncio.sleep(0.01)
    task.fail(SourceError("origin down"))
    with pytest.raises(SourceError):
        await asyncio.wait_for(failing, 5)
    task.clear_failure()
    again = asyncio.create_task(task.wait_piece(0))
    await asyncio.sleep(0.01)
    assert not again.done()  # waits again after the failure is cleared
    await store.delete(task.task_id)
    with pytest.raises(TaskNotFound):
        await asyncio.wait_for(again, 5)
    assert not task.directory.exists()
    await store.close()


async def test_restart_reloads_done_tasks_and_drops_broken(tmp_path: Path) -> None:
    clock = Clock()
    store = await new_store(tmp_path, clock=clock)
    data = blob(3 * PS + 7)
    done = await store.create(tid("done"), url="u1", content_length=len(data), piece_size=PS, content_type="x/y")
    await fill(done, data)
    partial = await store.create(tid("part"), url="u2", content_length=len(data), piece_size=PS, content_type="t")
    await partial.write_piece(0, data[:PS])
    garbled = await store.create(tid("garbled"), url="u3", content_length=PS, piece_size=PS, content_type="t")
    await fill(garbled, data[:PS])
    short = await store.create(tid("short"), url="u4", content_length=PS, piece_size=PS, content_type="t")
    await fill(short, data[:PS])
    clock.now += 50
    done.touch()
    await store.close()
    garbled.meta_path.write_text("{not json")
    os.truncate(short.data_path, PS - 1)

    store2 = await new_store(tmp_path, clock=clock)
    ids = {t.task_id for t in store2.tasks()}
    assert ids == {done.task_id}
    again = store2.get(done.task_id)
    assert again is not None and again.done and again.url == "u1" and again.content_type == "x/y"
    assert again.task_digest == done.task_digest
    assert again.last_access == clock.now  # saved at close
    assert not partial.directory.exists() and not garbled.directory.exists() and not short.directory.exists()
    region = await again.verified_region(3)
    assert (region.offset, region.length) == (3 * PS, 7)
    await store2.close()


async def test_the_origin_version_is_kept_so_a_reloaded_task_can_be_offered(tmp_path: Path) -> None:
    store = await new_store(tmp_path)
    data = blob(2 * PS)
    source = SourceStat(size=10 * PS, version='"etag-1"', content_type="x/y")
    ranged = await store.create(
        tid("r"),
        url="u",
        content_length=len(data),
        piece_size=PS,
        content_type="x/y",
        byte_range=ByteRange(PS, len(data)),
        source=source,
    )
    await fill(ranged, data)
    unknown = await store.create(tid("n"), url="u", content_length=PS, piece_size=PS, content_type="t")
    await fill(unknown, data[:PS])
    await store.close()
    store2 = await new_store(tmp_path)
    again = store2.get(ranged.task_id)
    assert again is not None
    assert again.spec() == TaskSpec(url="u", stat=source, piece_size=PS, byte_range=ByteRange(PS, len(data)))
    reloaded = store2.get(unknown.task_id)
    assert reloaded is not None and reloaded.spec() is None  # no version: nothing to offer
    await store2.close()


async def test_reloaded_pieces_are_verified_on_first_serve(tmp_path: Path) -> None:
    store = await new_store(tmp_path)
    data = blob(3 * PS)
    task = await store.create(tid("r"), url="u", content_length=len(data), piece_size=PS, content_type="t")
    await fill(task, data)
    await store.close()
    with open(task.data_path, "r+b") as f:  # corrupt while stopped, mtime left as it was
        f.seek(PS + 5)
        f.write(b"\x00\x01\x02")
    store2 = await new_store(tmp_path)
    again = store2.get(task.task_id)
    assert again is not None
    assert (await again.verified_region(0)).length == PS
    with pytest.raises(PieceDigestMismatch):
        await again.verified_region(1)
    assert not again.has_piece(1) and not again.done
    with pytest.raises(PieceNotFound):
        await again.verified_region(1)
    await again.write_piece(1, data[PS : 2 * PS])  # fetched again
    assert again.done and again.data_path.read_bytes() == data
    await store2.close()


async def test_changed_data_file_triggers_reverification(tmp_path: Path) -> None:
    store = await new_store(tmp_path)
    data = blob(3 * PS)
    task = await store.create(tid("c"), url="u", content_length=len(data), piece_size=PS, content_type="t")
    await fill(task, data)
    for n in range(3):  # trusted: written by this process
        await task.verified_region(n)
    corrupt(task.data_path, 2 * PS + 1)
    assert (await task.verified_region(0)).offset == 0
    with pytest.raises(PieceDigestMismatch):
        await task.verified_region(2)
    assert [p.number for p in task.pieces()] == [0, 1]
    await store.close()


async def test_gc_by_ttl_with_injected_clock(tmp_path: Path) -> None:
    clock = Clock()
    store = await new_store(tmp_path, clock=clock, ttl_s=100)
    old = await store.create(tid("old"), url="u", content_length=1, piece_size=PS, content_type="t")
    await old.write_piece(0, b"a")
    kept = await store.create(tid("kept"), url="u", content_length=1, piece_size=PS, content_type="t")
    await kept.write_piece(0, b"b")
    pinned = await store.create(tid("pinned"), url="u", content_length=1, piece_size=PS, content_type="t")
    pinned.pin()
    clock.now += 60
    kept.touch()
    assert await store.gc() == []
    clock.now += 60  # old and pinned idle 120 s, kept 60 s
    assert await store.gc() == [old.task_id]
    assert store.get(old.task_id) is None and not old.directory.exists()
    assert store.get(kept.task_id) is kept and store.get(pinned.task_id) is pinned
    pinned.unpin()
    clock.now += 101
    assert set(await store.gc()) == {kept.task_id, pinned.task_id}
    assert store.tasks() == []
    await store.close()


async def test_gc_by_quota_least_recently_used_first(tmp_path: Path) -> None:
    clock = Clock()
    store = await new_store(tmp_path, clock=clock, ttl_s=0)
    tasks = []
    for i in range(4):
        t = await store.create(tid(f"q{i}"), url="u", content_length=PS, piece_size=PS, content_type="t")
        await t.write_piece(0, blob(PS, i))
        clock.now += 10
        tasks.append(t)
    tasks[0].touch()  # now the most recent: q1 is the least recently used
    clock.now += 1000
    growing = await store.create(tid("growing"), url="u", content_length=PS, piece_size=PS, content_type="t")
    assert store.used_bytes == 5 * PS
    store.quota_bytes = 3 * PS
    deleted = await store.gc()
    assert deleted == [tasks[1].task_id, tasks[2].task_id]  # LRU order; the fresh partial task is skipped
    assert store.used_bytes == 3 * PS
    assert {t.task_id for t in store.tasks()} == {tasks[0].task_id, tasks[3].task_id, growing.task_id}
    await store.close()


async def test_adopt_links_digests_and_serves(tmp_path: Path) -> None:
    store = await new_store(tmp_path / "store")
    data = blob(2 * PS + 3)
    src = tmp_path / "upload.bin"
    src.write_bytes(data)
    task = await store.adopt(tid("imp"), url="u", content_length=len(data), piece_size=PS, content_type="t", path=src)
    assert task.done and task.data_path.read_bytes() == data
    assert os.stat(task.data_path).st_ino == os.stat(src).st_ino  # hard-linked, not copied
    assert [p.digest for p in task.pieces()] == [piece_digest(data[n * PS : (n + 1) * PS]) for n in range(3)]
    assert (await task.verified_region(2)).length == 3
    assert (
        await store.adopt(tid("imp"), url="u", content_length=len(data), piece_size=PS, content_type="t", path=src)
        is task
    )
    with pytest.raises(ValueError):
        await store.adopt(tid("bad"), url="u", content_length=5, piece_size=PS, content_type="t", path=src)
    assert [p.name for p in (tmp_path / "store").iterdir() if p.name.startswith(".import")] == []
    await store.close()
    store2 = await new_store(tmp_path / "store")
    assert store2.get(task.task_id) is not None
    await store2.close()


async def test_refetched_piece_never_writes_into_a_linked_file(tmp_path: Path) -> None:
    """An adopted PUT shares its inode with the origin's object: repairing a piece copies the data file
    first, so the origin's file is never written by the cache."""
    store = await new_store(tmp_path / "store")
    data = blob(3 * PS)
    origin_file = tmp_path / "origin-object"
    origin_file.write_bytes(data)
    task = await store.adopt(
        tid("lnk"), url="u", content_length=len(data), piece_size=PS, content_type="t", path=origin_file
    )
    assert os.stat(origin_file).st_nlink == 2
    with open(origin_file, "r+b") as f:  # the shared bytes go bad in place
        f.seek(PS)
        f.write(b"\0" * 16)
    damaged = origin_file.read_bytes()
    with pytest.raises(PieceDigestMismatch):
        await task.verified_region(1)
    assert not task.has_piece(1)
    await task.write_piece(1, data[PS : 2 * PS])
    assert origin_file.read_bytes() == damaged  # untouched by the repair
    assert os.stat(task.data_path).st_nlink == 1
    assert task.data_path.read_bytes() == data
    assert (await task.verified_region(0)).length == PS
    await store.close()


async def test_adopt_fills_a_task_being_downloaded(tmp_path: Path) -> None:
    store = await new_store(tmp_path / "store")
    data = blob(3 * PS)
    task = await store.create(tid("mix"), url="u", content_length=len(data), piece_size=PS, content_type="t")
    await task.write_piece(1, data[PS : 2 * PS])
    waiter = asyncio.create_task(task.wait_piece(2))
    src = tmp_path / "f.bin"
    src.write_bytes(data)
    got = await store.adopt(task.task_id, url="u", content_length=len(data), piece_size=PS, content_type="t", path=src)
    assert got is task and task.done and task.data_path.read_bytes() == data
    assert (await asyncio.wait_for(waiter, 5)).number == 2
    await store.close()


async def test_concurrent_creates_make_one_task(tmp_path: Path) -> None:
    store = await new_store(tmp_path)
    made = await asyncio.gather(
        *(store.create(tid("same"), url="u", content_length=PS, piece_size=PS, content_type="t") for _ in range(8))
    )
    assert all(t is made[0] for t in made) and len(store.tasks()) == 1
    await store.close()


async def test_gc_loop_runs_in_the_background(tmp_path: Path) -> None:
    clock = Clock()
    store = PieceStore(tmp_path, ttl_s=10, gc_interval_s=0.02, clock=clock)
    await store.start()
    task = await store.create(tid("bg"), url="u", content_length=1, piece_size=PS, content_type="t")
    await task.write_piece(0, b"z")
    clock.now += 11
    for _ in range(250):  # bounded: 5 s at most
        if store.get(task.task_id) is None and not task.directory.exists():
            break
        await asyncio.sleep(0.02)
    assert store.get(task.task_id) is None and not task.directory.exists()
    await store.close()


async def test_a_new_task_over_quota_makes_room_at_once(tmp_path: Path) -> None:
    clock = Clock()
    store = await new_store(tmp_path, clock=clock, quota_bytes=2 * PS, ttl_s=0)
    old = await store.create(tid("a"), url="u", content_length=PS, piece_size=PS, content_type="t")
    await old.write_piece(0, blob(PS))
    clock.now += 1
    mid = await store.create(tid("b"), url="u", content_length=PS, piece_size=PS, content_type="t")
    await mid.write_piece(0, blob(PS))
    clock.now += 1
    await store.create(tid("c"), url="u", content_length=PS, piece_size=PS, content_type="t")
    assert store.get(old.task_id) is None and store.get(mid.task_id) is mid
    assert store.used_bytes == 2 * PS
    await store.close()
