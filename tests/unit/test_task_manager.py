"""TaskManager against a real HTTP origin (aiohttp on 127.0.0.1) through HTTPSource, with a real PieceStore."""

from __future__ import annotations

import asyncio
import os
import random
import tracemalloc
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from p2p.common.digest import DEFAULT_PIECE_SIZE as PS
from p2p.common.ids import task_id
from p2p.common.sendfile import send_regions
from p2p.daemon.httpsource import HTTPSource
from p2p.daemon.store import PieceStore
from p2p.daemon.tasks import SOURCE_RUN_BYTES, TaskManager, TaskReader
from p2p.errors import P2PError, SourceError, SourceNotFound, TaskNotFound
from p2p.source import SourceRouter
from p2p.types import ByteRange, MiB, TaskID
from tests.httporigin import Origin, Served, serve_origin


@dataclass
class Env:
    origin: Origin
    store: PieceStore
    tasks: TaskManager
    sources: SourceRouter
    root: Path


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[Env]:
    async with serve_origin() as origin:
        http = HTTPSource()
        sources = SourceRouter({"http": http})
        store = PieceStore(tmp_path / "store", gc_interval_s=0)
        await store.start()
        tasks = TaskManager(store, sources, source_concurrency=4)
        try:
            yield Env(origin, store, tasks, sources, tmp_path)
        finally:
            await tasks.close()
            await store.close()
            await http.close()


def blob(n: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(n)


async def read_all(reader: TaskReader) -> bytes:
    out = bytearray()
    async with reader:
        async for region in reader.regions():
            with open(region.path, "rb") as f:
                out += os.pread(f.fileno(), region.length, region.offset)
    return bytes(out)


async def wait_done(store: PieceStore, tid: TaskID) -> None:
    """Readers may finish before the task's metadata is saved; wait for that (bounded)."""
    for _ in range(500):
        task = store.get(tid)
        if task is not None and task.done:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"task {tid} never completed")


def corrupt(path: Path, offset: int) -> None:
    with open(path, "r+b") as f:
        byte = os.pread(f.fileno(), 1, offset)
        os.pwrite(f.fileno(), bytes([byte[0] ^ 0xFF]), offset)
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))


@pytest.mark.parametrize("size", [0, 1, PS - 1, PS, PS + 1, 3 * PS + 7])
async def test_read_sizes_each_origin_byte_read_once(env: Env, size: int) -> None:
    data = blob(size)
    url = env.origin.put("obj", data)
    reader = await env.tasks.open(url)
    assert reader.content_length == size and reader.content_type == "application/x-test"
    assert await read_all(reader) == data
    # Runs of consecutive pieces, one ranged read each: a small object is one read, no byte twice.
    assert [(g.start, g.length) for g in env.origin.gets] == ([(0, size)] if size else [])
    assert env.origin.bytes_sent == size
    await wait_done(env.store, reader.task_id)


async def test_a_read_broken_mid_run_resumes_at_the_first_piece_not_written(env: Env) -> None:
    data = blob(3 * PS + 7)
    url = env.origin.put("cut", data)
    env.origin.drop_after = PS + 10  # piece 0 lands, piece 1 is cut short
    assert await read_all(await env.tasks.open(url)) == data
    assert [(g.start, g.length) for g in env.origin.gets] == [(0, len(data)), (PS, len(data) - PS)]


async def test_runs_are_capped_and_read_in_parallel(tmp_path: Path) -> None:
    """An object of several runs: `source_concurrency` ranged reads, each over at most one run."""
    async with serve_origin() as origin:
        http = HTTPSource()
        store = PieceStore(tmp_path / "store", gc_interval_s=0)
        await store.start()
        tasks = TaskManager(store, SourceRouter({"http": http}), source_concurrency=2)
        try:
            size = 2 * SOURCE_RUN_BYTES + PS + 1
            data = blob(size)
            reader = await tasks.open(origin.put("runs", data))
            assert await read_all(reader) == data
            spans = sorted((g.start, g.length) for g in origin.gets)
            run = SOURCE_RUN_BYTES
            assert spans == [(0, run), (run, run), (2 * run, size - 2 * run)]
        finally:
            await tasks.close()
            await store.close()
            await http.close()


async def test_concurrent_readers_share_one_download(env: Env) -> None:
    data = blob(3 * PS + 7)
    url = env.origin.put("shared", data)
    readers = await asyncio.gather(*(env.tasks.open(url) for _ in range(8)))
    assert len({r.task_id for r in readers}) == 1
    bodies = await asyncio.gather(*(read_all(r) for r in readers))
    assert all(b == data for b in bodies)
    assert env.origin.bytes_sent == len(data)  # the origin was read once
    assert len(env.origin.gets) == 1  # one run of consecutive pieces, cut as it streams


async def test_reader_leaving_does_not_cancel_the_download(env: Env) -> None:
    data = blob(3 * PS + 7)
    url = env.origin.put("leave", data)
    env.origin.hold_from = PS  # piece 0 flows, the rest waits
    quitter = await env.tasks.open(url)
    got_first = asyncio.Event()

    async def consume_then_hang() -> None:
        async with quitter:
            async for _ in quitter.regions():
                got_first.set()

    quitting = asyncio.create_task(consume_then_hang())
    stayer = await env.tasks.open(url)
    staying = asyncio.create_task(read_all(stayer))
    await asyncio.wait_for(got_first.wait(), 10)
    quitting.cancel()  # the client went away mid-download
    with pytest.raises(asyncio.CancelledError):
        await quitting
    env.origin.release.set()
    assert await asyncio.wait_for(staying, 20) == data
    assert env.origin.bytes_sent == len(data)


async def test_http_client_hanging_up_does_not_cancel_the_download(env: Env) -> None:
    """The same, through a real HTTP front: one client drops its connection mid-body."""
    data = blob(3 * PS + 7)
    url = env.origin.put("hangup", data)

    async def get(request: web.Request) -> web.StreamResponse:
        async with await env.tasks.open(url) as reader:
            response = web.StreamResponse()
            response.content_length = reader.content_length
            await response.prepare(request)
            await send_regions(request, response, reader.regions())
            await response.write_eof()
            return response

    app = web.Application()
    app.router.add_get("/obj", get)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    front = f"http://127.0.0.1:{runner.addresses[0][1]}/obj"
    env.origin.hold_from = PS
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(front) as resp:
                assert len(await resp.content.readexactly(1000)) == 1000  # piece 0 is flowing
                resp.close()  # hang up while pieces 1.. are still held at the origin
            await asyncio.sleep(0.05)
            env.origin.release.set()
            async with http.get(front) as resp:
                assert await resp.read() == data
        assert env.origin.bytes_sent == len(data)
    finally:
        await runner.cleanup()


async def test_readers_stream_before_the_last_piece_lands(env: Env) -> None:
    data = blob(3 * PS + 7)
    url = env.origin.put("stream", data)
    env.origin.hold_from = 3 * PS
    reader = await env.tasks.open(url)
    task = env.store.get(reader.task_id)
    assert task is not None
    regions = reader.regions()
    first = await asyncio.wait_for(regions.__anext__(), 10)
    assert first.offset == 0 and first.length >= PS
    assert not task.has_piece(3) and not task.done  # the object is not complete yet
    env.origin.release.set()
    rest = [r async for r in regions]
    assert first.length + sum(r.length for r in rest) == len(data)
    await reader.aclose()


async def test_restart_reuses_completed_task(env: Env) -> None:
    data = blob(2 * PS + 1)
    url = env.origin.put("keep", data)
    first = await env.tasks.open(url)
    assert await read_all(first) == data
    await wait_done(env.store, first.task_id)
    await env.tasks.close()
    await env.store.close()
    store = PieceStore(env.root / "store", gc_interval_s=0)
    await store.start()
    tasks = TaskManager(store, env.sources)
    try:
        assert await read_all(await tasks.open(url)) == data  # verified from disk, not refetched
        assert env.origin.bytes_sent == len(data)
    finally:
        await tasks.close()
        await store.close()


async def test_corrupt_piece_is_dropped_and_refetched_never_served(env: Env) -> None:
    data = blob(3 * PS + 7)
    url = env.origin.put("rot", data)
    first = await env.tasks.open(url)
    assert await read_all(first) == data
    await wait_done(env.store, first.task_id)
    task = env.store.get(first.task_id)
    assert task is not None
    corrupt(task.data_path, PS + 100)
    assert await read_all(await env.tasks.open(url)) == data
    assert env.origin.gets[-1] == Served("rot", PS, PS)  # only piece 1 fetched again
    assert len(env.origin.gets) == 2
    await wait_done(env.store, first.task_id)


async def test_corrupt_piece_after_restart(env: Env) -> None:
    data = blob(2 * PS)
    url = env.origin.put("rot2", data)
    reader = await env.tasks.open(url)
    assert await read_all(reader) == data
    await wait_done(env.store, reader.task_id)
    await env.tasks.close()
    await env.store.close()
    with open(env.root / "store" / reader.task_id[:3] / reader.task_id / "data", "r+b") as f:
        os.pwrite(f.fileno(), b"garbage", PS + 1)  # mtime may even stay: reloaded pieces are verified anyway
    store = PieceStore(env.root / "store", gc_interval_s=0)
    await store.start()
    tasks = TaskManager(store, env.sources)
    try:
        assert await read_all(await tasks.open(url)) == data
        assert env.origin.gets[-1] == Served("rot2", PS, PS)
    finally:
        await tasks.close()
        await store.close()


async def test_ranged_read_without_whole_task_is_its_own_task(env: Env) -> None:
    data = blob(3 * PS + 7)
    url = env.origin.put("rng", data)
    reader = await env.tasks.open(url, byte_range=ByteRange(PS - 3, 10))
    stat = await env.sources.stat(url)
    assert reader.task_id == task_id(url, stat.version, ByteRange(PS - 3, 10))
    assert reader.content_length == 10
    assert await read_all(reader) == data[PS - 3 : PS + 7]
    assert env.origin.gets == [Served("rng", PS - 3, 10)]


async def test_ranged_read_served_from_whole_task(env: Env) -> None:
    data = blob(3 * PS + 7)
    url = env.origin.put("rng2", data)
    whole = await env.tasks.open(url)
    assert await read_all(whole) == data
    sent = env.origin.bytes_sent
    for start, length in [(0, 1), (PS - 1, 2), (5, 2 * PS), (3 * PS, 7)]:
        reader = await env.tasks.open(url, byte_range=ByteRange(start, length))
        assert reader.task_id == whole.task_id
        assert await read_all(reader) == data[start : start + length]
    assert env.origin.bytes_sent == sent


async def test_ranges_of_a_small_object_come_from_its_whole_task(tmp_path: Path) -> None:
    """Up to `whole_object_range_bytes` (a JuiceFS block), a ranged read fetches the whole object once;
    every later range of it is served from that task. A larger object's range is a task of its own."""
    async with serve_origin() as origin:
        http = HTTPSource()
        store = PieceStore(tmp_path / "store", gc_interval_s=0)
        await store.start()
        sources = SourceRouter({"http": http})
        tasks = TaskManager(store, sources, whole_object_range_bytes=PS)
        try:
            block, big = blob(PS, seed=1), blob(PS + 1, seed=2)
            url, big_url = origin.put("block", block), origin.put("big", big)
            version = (await sources.stat(url)).version
            for start, length in [(100, 64 * 1024), (PS - 10, 10), (0, 1)]:
                reader = await tasks.open(url, byte_range=ByteRange(start, length))
                assert reader.task_id == task_id(url, version)
                assert await read_all(reader) == block[start : start + length]
            assert [(g.start, g.length) for g in origin.gets] == [(0, PS)]
            reader = await tasks.open(big_url, byte_range=ByteRange(5, 10))
            assert reader.task_id == task_id(big_url, version, ByteRange(5, 10))
            assert await read_all(reader) == big[5:15]
            assert origin.gets[-1] == Served("big", 5, 10)
        finally:
            await tasks.close()
            await store.close()
            await http.close()


async def test_ranged_read_follows_a_whole_task_in_progress(env: Env) -> None:
    data = blob(3 * PS + 7)
    url = env.origin.put("rng3", data)
    env.origin.hold_from = PS
    whole = await env.tasks.open(url)
    await asyncio.sleep(0)
    part = await env.tasks.open(url, byte_range=ByteRange(10, 100))
    assert part.task_id == whole.task_id
    assert await asyncio.wait_for(read_all(part), 10) == data[10:110]  # while pieces 1.. are held
    env.origin.release.set()
    assert await read_all(whole) == data
    assert env.origin.bytes_sent == len(data)


async def test_a_ranged_task_is_cut_from_the_whole_task_without_the_origin(env: Env, tmp_path: Path) -> None:
    """A seed holding an object whole makes the peers' ranged task from it: the range's bytes, its own
    piece boundaries and digests, recorded as that range, kept over a restart; the origin sends nothing."""
    data = blob(3 * PS + 7, seed=21)
    url = env.origin.put("cut", data)
    stat = await env.sources.stat(url)
    span = ByteRange(PS // 2, 2 * PS + 5)
    assert await env.tasks.cut_range(url, stat, span) is None  # no whole-object task here yet
    assert await read_all(await env.tasks.open(url)) == data
    sent = env.origin.bytes_sent

    cut = await env.tasks.cut_range(url, stat, span)
    assert cut is not None and cut.done and cut.task_id == task_id(url, stat.version, span)
    assert cut.byte_range == span and cut.content_length == span.length
    assert env.origin.bytes_sent == sent
    got = bytearray()
    for piece in cut.pieces():
        region = await cut.verified_region(piece.number)  # checks the piece against its digest
        with open(region.path, "rb") as f:
            got += os.pread(f.fileno(), region.length, region.offset)
    assert bytes(got) == data[span.start : span.start + span.length]
    assert await env.tasks.cut_range(url, stat, span) is cut  # already here: the same task

    await env.store.close()
    again = PieceStore(env.store.root, gc_interval_s=0)
    await again.start()
    try:
        reloaded = again.get(cut.task_id)
        assert reloaded is not None and reloaded.done and reloaded.byte_range == span
    finally:
        await again.close()


async def test_cutting_a_range_waits_for_a_whole_task_in_progress(env: Env) -> None:
    data = blob(3 * PS + 7, seed=22)
    url = env.origin.put("cut-later", data)
    stat = await env.sources.stat(url)
    env.origin.hold_from = 2 * PS
    whole = await env.tasks.open(url)
    await asyncio.sleep(0)
    span = ByteRange(PS, 2 * PS)  # its second half is held at the origin
    cutting = asyncio.ensure_future(env.tasks.cut_range(url, stat, span))
    await asyncio.sleep(0.3)
    assert not cutting.done()
    env.origin.release.set()
    cut = await asyncio.wait_for(cutting, 10)
    assert cut is not None and cut.done and cut.content_length == span.length
    assert await read_all(whole) == data
    assert env.origin.bytes_sent == len(data)  # the whole object once, nothing for the range


async def test_origin_failure_fails_readers_and_next_open_retries(env: Env) -> None:
    data = blob(PS + 1)
    url = env.origin.put("flaky", data)
    env.origin.fail_gets = 1000
    with pytest.raises(SourceError):
        await read_all(await env.tasks.open(url))
    env.origin.fail_gets = 0
    assert await read_all(await env.tasks.open(url)) == data


async def test_one_failed_read_is_retried(env: Env) -> None:
    data = blob(PS + 1)
    url = env.origin.put("blip", data)
    env.origin.fail_gets = 1
    assert await read_all(await env.tasks.open(url)) == data


async def test_missing_object(env: Env) -> None:
    with pytest.raises(SourceNotFound):
        await env.tasks.open(env.origin.url("nope"))


async def test_close_cancels_downloads_and_wakes_readers(env: Env) -> None:
    url = env.origin.put("stuck", blob(PS))
    env.origin.hold_from = 0
    reader = await env.tasks.open(url)
    reading = asyncio.create_task(read_all(reader))
    await asyncio.sleep(0.05)
    await env.tasks.close()
    with pytest.raises(P2PError):
        await asyncio.wait_for(reading, 5)
    with pytest.raises(P2PError):
        await env.tasks.open(url)


async def test_task_deleted_mid_download_starts_over(env: Env) -> None:
    data = blob(2 * PS)
    url = env.origin.put("gone", data)
    env.origin.hold_from = PS
    first = await env.tasks.open(url)
    reading = asyncio.create_task(read_all(first))
    await asyncio.sleep(0.05)
    await env.store.delete(first.task_id)
    with pytest.raises(TaskNotFound):
        await asyncio.wait_for(reading, 5)
    second = await env.tasks.open(url)  # a new task of the same id while the old job may still run
    env.origin.release.set()
    assert await asyncio.wait_for(read_all(second), 10) == data


async def test_import_file_seeds_the_cache(env: Env) -> None:
    data = blob(2 * PS + 5)
    url = env.origin.put("imported", data)
    stat = await env.sources.stat(url)
    src = env.root / "put.bin"
    src.write_bytes(data)
    tid = await env.tasks.import_file(url, stat, src)
    assert tid == task_id(url, stat.version)
    reader = await env.tasks.open(url, stat=stat)
    assert reader.task_id == tid
    assert await read_all(reader) == data
    assert env.origin.gets == []


@pytest.mark.slow
async def test_memory_stays_flat_for_a_large_object(env: Env) -> None:
    size = 160 * MiB + 3
    path = env.root / "big.bin"
    with open(path, "wb") as f:
        for _ in range(160):
            f.write(os.urandom(MiB))
        f.write(b"end")
    url = env.origin.put_file("big", path)
    tracemalloc.start()
    try:
        reader = await env.tasks.open(url)
        total = 0
        async with reader:
            async for region in reader.regions():
                total += region.length
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert total == size
    await wait_done(env.store, reader.task_id)
    # 4 pieces of 4 MiB in flight (16 MiB) plus the client's buffers; the object is 160 MiB
    assert peak < 28 * MiB, f"peak traced memory {peak / MiB:.1f} MiB"
