"""Cached reads through the ObjectService: one worker-thread hop per GET (the origin HEAD, with the
cache's file check riding along), descriptors kept open in a bounded LRU, and still never stale."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, BinaryIO

import pytest

from dfstore.core.fetch import ObjectReader
from dfstore.core.fs import FilesystemBackend
from dfstore.core.service import ObjectService
from dfstore.core.source import BackendSource, object_url
from dfstore.core.writeback import WriteBackQueue
from dfstore.errors import NoSuchKey
from dfstore.models import PutMode, PutOptions
from p2p.common.httprange import RangeSpec
from p2p.common.ids import task_id
from p2p.daemon.openfiles import SMALL_BYTES
from p2p.daemon.store import PieceStore
from p2p.daemon.tasks import TaskManager
from p2p.source import SourceRouter

B = "bkt"
MiB = 1024 * 1024


class Node:
    def __init__(self, home: Path, open_files: int) -> None:
        self.home = home
        self.backend = FilesystemBackend(home / "origin")
        self.writeback = WriteBackQueue(home / "journal", self.backend)
        self.store = PieceStore(home / "cache", gc_interval_s=0, open_files=open_files)
        self.tasks = TaskManager(self.store, SourceRouter({"dfs": BackendSource(self.backend, self.writeback)}))
        self.service = ObjectService(self.backend, self.tasks, spool_dir=home / "spool", writeback=self.writeback)

    async def start(self) -> None:
        await self.store.start()
        await self.writeback.start()
        await self.service.create_bucket(B)

    async def close(self) -> None:
        await self.service.close()
        await self.writeback.close()
        await self.tasks.close()
        await self.store.close()


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = Node(tmp_path, open_files=2)
    await n.start()
    yield n
    await n.close()


async def body_of(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def put(n: Node, key: str, data: bytes) -> str:
    meta = await n.service.put_object(B, key, body_of(data), mode=PutMode.WRITE_BACK, options=PutOptions())
    return meta.etag


async def sent(reader: ObjectReader) -> bytes:
    """The bytes send_regions would send: a region's data, else its open file, else its path."""
    out = bytearray()
    async with reader:
        async for region in reader.regions():
            if region.data is not None:
                assert len(region.data) == region.length
                out += region.data
            elif region.file is not None:
                out += os.pread(region.file.fileno(), region.length, region.offset)
            else:
                with open(region.path, "rb") as f:
                    out += os.pread(f.fileno(), region.length, region.offset)
    return bytes(out)


async def get(n: Node, key: str, rng: RangeSpec | None = None) -> bytes:
    return await sent(await n.service.get_object(B, key, byte_range=rng))


@pytest.fixture
def hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the functions sent to worker threads, in order."""
    calls: list[str] = []
    real = asyncio.to_thread

    async def counting(func: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        calls.append(getattr(func, "__qualname__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    return calls


def data_of(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


async def test_cached_small_get_is_one_hop(node: Node, hops: list[str]) -> None:
    data = data_of(4096, 1)
    await put(node, "small", data)
    assert await get(node, "small") == data  # a PUT imports into the cache: this is a hit already
    hops.clear()
    for _ in range(3):
        assert await get(node, "small") == data
    assert len(hops) == 3, hops
    assert await get(node, "small", RangeSpec(10, 19)) == data[10:20]


async def test_cached_large_get_sends_from_the_kept_file(node: Node, hops: list[str]) -> None:
    data = data_of(SMALL_BYTES * 3 + 7, 2)
    await put(node, "large", data)
    assert await get(node, "large") == data
    reader = await node.service.get_object(B, "large")
    async with reader:
        regions = [r async for r in reader.regions()]
    assert len(regions) == 1 and regions[0].file is not None and regions[0].data is None
    hops.clear()
    assert await get(node, "large") == data
    assert len(hops) == 1, hops


async def test_overwrite_and_delete_at_the_origin_are_seen_at_once(node: Node) -> None:
    await put(node, "k", b"one" * 100)
    assert await get(node, "k") == b"one" * 100
    await put(node, "k", b"two" * 50)
    assert await get(node, "k") == b"two" * 50
    # behind the service's back, straight in the directory
    (node.home / "origin" / B / "k").write_bytes(b"three" * 7)
    assert await get(node, "k") == b"three" * 7
    (node.home / "origin" / B / "k").unlink()
    with pytest.raises(NoSuchKey):
        await node.service.get_object(B, "k")


async def at_origin(n: Node, key: str, data: bytes) -> str:
    """Write straight into the origin directory; the first GET then fills the cache with its own copy
    (a PUT's import shares the origin file's inode)."""
    (n.home / "origin" / B / key).write_bytes(data)
    return (await n.service.head_object(B, key)).etag


async def test_a_cache_file_changed_in_place_is_verified_again(node: Node) -> None:
    data = data_of(8192, 3)
    etag = await at_origin(node, "c", data)
    assert await get(node, "c") == data
    assert await get(node, "c") == data
    task = node.store.get(task_id(object_url(B, "c"), etag))
    assert task is not None
    before = os.stat(task.data_path)
    with open(task.data_path, "r+b") as f:  # same inode
        f.seek(100)
        f.write(b"\xff" * 10)
    os.utime(task.data_path, ns=(before.st_atime_ns, before.st_mtime_ns + 10**9))  # past the clock's tick
    assert await get(node, "c") == data  # the piece failed its digest and came again from the origin
    assert await get(node, "c") == data


async def test_a_replaced_cache_file_is_not_served_from_the_old_descriptor(node: Node) -> None:
    data = data_of(8192, 4)
    etag = await at_origin(node, "r", data)
    assert await get(node, "r") == data
    assert await get(node, "r") == data
    task = node.store.get(task_id(object_url(B, "r"), etag))
    assert task is not None
    bad = task.data_path.with_name("bad")
    bad.write_bytes(b"\0" * len(data))
    os.replace(bad, task.data_path)  # a new inode under the same name
    assert await get(node, "r") == data
    assert await get(node, "r") == data


async def test_open_descriptors_are_bounded_and_closed(node: Node) -> None:
    kept: list[BinaryIO] = []
    for i in range(5):
        data = data_of(1000 + i, i)
        await put(node, f"o{i}", data)
        assert await get(node, f"o{i}") == data
        assert await get(node, f"o{i}") == data
        assert len(node.store.files) <= 2
        kept.extend(s.file for s in node.store.files._files.values() if s.file not in kept)
    await get(node, "o4")  # a hop that closes what was evicted
    assert len([f for f in kept if f.closed]) >= len(kept) - 2


async def test_gc_of_a_task_closes_its_descriptor(tmp_path: Path) -> None:
    n = Node(tmp_path, open_files=8)
    await n.start()
    try:
        data = data_of(2048, 5)
        etag = await put(n, "g", data)
        assert await get(n, "g") == data
        tid = task_id(object_url(B, "g"), etag)
        shared = n.store.files.get(tid)
        assert shared is not None and not shared.file.closed
        await n.store.delete(tid)
        assert shared.file.closed
        assert await get(n, "g") == data  # back to the origin, cached again
    finally:
        await n.close()


async def test_descriptor_in_use_is_not_closed_by_eviction(node: Node) -> None:
    data = data_of(3000, 6)
    await put(node, "busy", data)
    await get(node, "busy")
    reader = await node.service.get_object(B, "busy")
    async with reader:
        regions = reader.regions()
        first = await anext(regions)
        assert first.file is not None
        for i in range(3):  # evicts "busy" from the LRU of 2
            await put(node, f"x{i}", b"x" * 10)
            await get(node, f"x{i}")
        assert not first.file.closed
        assert os.pread(first.file.fileno(), 10, 0) == data[:10]
        await regions.aclose()  # type: ignore[attr-defined]
    await get(node, "x0")  # the next hop closes it
    assert first.file.closed
