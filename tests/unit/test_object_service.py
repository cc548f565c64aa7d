"""ObjectService over the real directory origin, PieceStore, TaskManager and write-back journal."""

from __future__ import annotations

import base64
import hashlib
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from dfstore.core.fetch import ObjectReader
from dfstore.core.fs import FilesystemBackend
from dfstore.core.service import ObjectService
from dfstore.core.source import BackendSource, object_url, parse_object_url
from dfstore.core.writeback import WriteBackQueue
from dfstore.errors import BadDigest, InvalidArgument, InvalidRange, KeyTooLongError, NoSuchBucket, NoSuchKey
from dfstore.models import PutMode, PutOptions
from p2p.common.httprange import RangeSpec
from p2p.common.ids import task_id
from p2p.daemon.store import PieceStore
from p2p.daemon.tasks import TaskManager
from p2p.errors import SourceError, SourceNotFound
from p2p.source import SourceRouter

B = "bkt"
MiB = 1024 * 1024


@dataclass
class Node:
    service: ObjectService
    backend: FilesystemBackend
    store: PieceStore
    tasks: TaskManager
    writeback: WriteBackQueue
    source: BackendSource
    home: Path


async def build(home: Path, *, start_writeback: bool = True) -> Node:
    backend = FilesystemBackend(home / "origin")
    writeback = WriteBackQueue(home / "journal", backend, retry_initial_s=0.05, retry_max_s=0.2)
    source = BackendSource(backend, writeback)
    store = PieceStore(home / "cache", gc_interval_s=0)
    await store.start()
    tasks = TaskManager(store, SourceRouter({"dfs": source}))
    if start_writeback:
        await writeback.start()
    service = ObjectService(backend, tasks, spool_dir=home / "spool", writeback=writeback)
    return Node(service, backend, store, tasks, writeback, source, home)


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    n = await build(tmp_path)
    await n.service.create_bucket(B)
    yield n
    await n.service.close()
    await n.writeback.close()
    await n.tasks.close()
    await n.store.close()


async def body_of(data: bytes, chunk: int = 300_000) -> AsyncIterator[bytes]:
    for i in range(0, len(data), chunk):
        yield data[i:i + chunk]


async def put(n: Node, key: str, data: bytes, mode: PutMode = PutMode.WRITE_BACK, **kw: object) -> str:
    meta = await n.service.put_object(B, key, body_of(data), mode=mode, options=PutOptions(), **kw)  # type: ignore[arg-type]
    return meta.etag


async def read_all(reader: ObjectReader) -> bytes:
    out = bytearray()
    async with reader:
        async for region in reader.regions():
            with open(region.path, "rb") as f:
                f.seek(region.offset)
                out += f.read(region.length)
    assert len(out) == reader.content_length
    return bytes(out)


async def get(n: Node, key: str, rng: RangeSpec | None = None) -> bytes:
    return await read_all(await n.service.get_object(B, key, byte_range=rng))


def cached(n: Node, key: str, version: str) -> bool:
    task = n.store.get(task_id(object_url(B, key), version))
    return task is not None and task.done


def test_object_url_roundtrip() -> None:
    for key in ["a/b/c", "c/", "sp ace+plus%25?#", "测试\x1f{\"x\"}", "/lead", "a//b"]:
        url = object_url(B, key)
        assert url.startswith("dfs://bkt/")
        assert "?" not in url and "#" not in url and " " not in url
        assert parse_object_url(url) == (B, key)
    for bad in ["http://b/k", "dfs://b", "dfs://b/", "dfs:///k"]:
        with pytest.raises(ValueError):
            parse_object_url(bad)


async def test_write_back_put_lands_at_origin_and_in_cache(node: Node) -> None:
    data = random.Random(1).randbytes(5 * MiB + 3)
    meta = await node.service.put_object(
        B, "m/obj", body_of(data), mode=PutMode.WRITE_BACK,
        options=PutOptions(content_type="text/x", user_meta={"a": "1"}),
        content_md5=base64.b64encode(hashlib.md5(data).digest()).decode(),
    )
    md5 = hashlib.md5(data).hexdigest()
    assert (meta.etag, meta.size, meta.digest) == (md5, len(data), f"md5:{md5}")
    origin = await node.backend.head_object(B, "m/obj")
    assert (origin.etag, origin.content_type, origin.user_meta) == (md5, "text/x", {"a": "1", "digest": f"md5:{md5}"})
    assert cached(node, "m/obj", md5)  # the next GET is a cache hit
    assert await get(node, "m/obj") == data
    assert await get(node, "m/obj", RangeSpec(MiB - 1, 2 * MiB)) == data[MiB - 1:2 * MiB + 1]
    assert await get(node, "m/obj", RangeSpec(None, 10)) == data[-10:]
    assert list(node.service.spool_dir.iterdir()) == []


async def test_get_goes_back_to_source_and_follows_overwrites(node: Node, tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.write_bytes(b"version one")
    await node.backend.put_object(B, "k", src, PutOptions())  # written behind the service's back
    assert await get(node, "k") == b"version one"
    assert await get(node, "k", RangeSpec(8, None)) == b"one"
    await put(node, "k", b"version two!")
    assert await get(node, "k") == b"version two!"
    src.write_bytes(b"three")
    await node.backend.put_object(B, "k", src, PutOptions())
    assert await get(node, "k") == b"three"  # a new version is a new task, never stale


async def test_deleted_object_is_404_even_when_cached(node: Node) -> None:
    etag = await put(node, "gone", b"bytes")
    assert cached(node, "gone", etag)
    await node.service.delete_object(B, "gone")
    await node.service.delete_object(B, "gone")
    with pytest.raises(NoSuchKey):
        await node.service.head_object(B, "gone")
    with pytest.raises(NoSuchKey):
        await node.service.get_object(B, "gone")
    with pytest.raises(SourceNotFound):
        await node.source.stat(object_url(B, "gone"))


async def test_ranges(node: Node) -> None:
    await put(node, "r", b"hello")
    assert await get(node, "r", RangeSpec(4, 5)) == b"o"
    assert await get(node, "r", RangeSpec(0, 0)) == b"h"
    with pytest.raises(InvalidRange) as info:
        await node.service.get_object(B, "r", byte_range=RangeSpec(6, 7))
    assert info.value.size == 5
    await put(node, "empty", b"")
    assert await get(node, "empty") == b""
    with pytest.raises(InvalidRange):
        await node.service.get_object(B, "empty", byte_range=RangeSpec(0, None))


async def test_bad_input(node: Node) -> None:
    with pytest.raises(BadDigest):
        await put(node, "x", b"data", content_md5=base64.b64encode(hashlib.md5(b"other").digest()).decode())
    with pytest.raises(InvalidArgument):
        await put(node, "x", b"data", content_md5="not base64!")
    with pytest.raises(NoSuchKey):
        await node.backend.head_object(B, "x")
    for mode in PutMode:
        with pytest.raises(InvalidArgument):
            await put(node, "a/../../x", b"data", mode)
        with pytest.raises(KeyTooLongError):
            await put(node, "k" * 1025, b"data", mode)
    with pytest.raises(NoSuchBucket):
        await node.service.put_object("nobucket", "k", body_of(b"x"), mode=PutMode.WRITE_BACK, options=PutOptions())
    assert len(node.writeback) == 0
    assert list(node.service.spool_dir.iterdir()) == []


async def test_ephemeral_is_cache_only(node: Node) -> None:
    meta = await node.service.put_object(B, "eph", body_of(b"local"), mode=PutMode.EPHEMERAL, options=PutOptions())
    assert cached(node, "eph", meta.etag)
    with pytest.raises(NoSuchKey):
        await node.service.head_object(B, "eph")


async def test_async_write_back_reaches_the_origin(node: Node) -> None:
    data = random.Random(2).randbytes(MiB + 1)
    meta = await node.service.put_object(B, "async/obj", body_of(data), mode=PutMode.ASYNC_WRITE_BACK,
                                         options=PutOptions(content_type="a/b"))
    assert (await node.service.head_object(B, "async/obj")).etag == meta.etag
    assert await node.writeback.drain(10)
    origin = await node.backend.head_object(B, "async/obj")
    assert (origin.etag, origin.content_type) == (hashlib.md5(data).hexdigest(), "a/b")
    assert [p for p in (node.home / "journal").iterdir()] == []


async def test_pending_writes_are_visible_on_this_node(tmp_path: Path) -> None:
    n = await build(tmp_path, start_writeback=False)  # workers off: writes stay pending
    await n.backend.create_bucket(B)
    try:
        for key in ["p/one", "p/two", "q", "zz"]:
            await put(n, key, key.encode() * 3, PutMode.ASYNC_WRITE_BACK)
        src = tmp_path / "src"
        src.write_bytes(b"o")
        await n.backend.put_object(B, "p/origin", src, PutOptions())
        with pytest.raises(NoSuchKey):
            await n.backend.head_object(B, "p/one")
        meta = await n.service.head_object(B, "p/one")
        assert meta.size == len(b"p/one" * 3)
        # evicted from the cache: the read goes back to source, which finds the journal
        await n.store.delete(task_id(object_url(B, "p/one"), meta.version))
        assert await get(n, "p/one") == b"p/one" * 3
        assert await get(n, "p/one", RangeSpec(5, 9)) == b"p/one"
        page = await n.service.list_objects(B)
        assert [o.key for o in page.objects] == ["p/one", "p/origin", "p/two", "q", "zz"]
        page = await n.service.list_objects(B, delimiter="/", max_keys=2)
        assert (page.common_prefixes, [o.key for o in page.objects]) == (["p/"], ["q"])
        assert page.is_truncated and page.next_marker == "q"
        page = await n.service.list_objects(B, marker="p/", delimiter="/", max_keys=5)
        assert [o.key for o in page.objects] == ["q", "zz"] and not page.is_truncated
        # copy from a pending source; delete of a pending key
        await n.service.copy_object(B, "copied", B, "p/two")
        assert (await n.backend.head_object(B, "copied")).size == len(b"p/two" * 3)
        await n.service.delete_object(B, "zz")
        with pytest.raises(NoSuchKey):
            await n.service.head_object(B, "zz")
        await n.writeback.start()
        assert await n.writeback.drain(10)
        assert [o.key for o in (await n.backend.list_objects(B)).objects] == [
            "copied", "p/one", "p/origin", "p/two", "q"
        ]
    finally:
        await n.writeback.close()
        await n.tasks.close()
        await n.store.close()


async def test_newer_writes_win(tmp_path: Path) -> None:
    n = await build(tmp_path, start_writeback=False)
    await n.backend.create_bucket(B)
    try:
        for i in range(5):
            await put(n, "k", f"async {i}".encode(), PutMode.ASYNC_WRITE_BACK)
        assert len(list((tmp_path / "journal").glob("*.data"))) == 1  # older ones dropped
        await put(n, "w", b"async", PutMode.ASYNC_WRITE_BACK)
        await put(n, "w", b"write-back wins", PutMode.WRITE_BACK)
        await n.writeback.start()
        assert await n.writeback.drain(10)
        assert await get(n, "k") == b"async 4"
        assert await get(n, "w") == b"write-back wins"
    finally:
        await n.writeback.close()
        await n.tasks.close()
        await n.store.close()


async def test_put_object_file_and_copy(node: Node, tmp_path: Path) -> None:
    src = tmp_path / "assembled"
    src.write_bytes(b"multipart result")
    meta = await node.service.put_object_file(B, "mp", src, mode=PutMode.ASYNC_WRITE_BACK,
                                              options=PutOptions(), etag="abc-2")
    assert meta.etag == "abc-2" and src.exists()
    assert await node.writeback.drain(10)
    assert await get(node, "mp") == b"multipart result"
    assert (await node.backend.head_object(B, "mp")).etag == "abc-2"  # the directory origin keeps it
    await node.service.copy_object(B, "mp-copy", B, "mp", options=PutOptions(content_type="t/c"))
    copy = await node.service.head_object(B, "mp-copy")
    assert (copy.size, copy.content_type) == (16, "t/c")
    with pytest.raises(NoSuchKey):
        await node.service.copy_object(B, "x", B, "missing")


async def test_backend_source_speaks_p2p_errors(node: Node) -> None:
    etag = await put(node, "s/k", b"0123456789")
    url = object_url(B, "s/k")
    stat = await node.source.stat(url)
    assert (stat.size, stat.version) == (10, etag)
    assert b"".join([c async for c in node.source.read(url, 2, 5)]) == b"23456"
    with pytest.raises(SourceNotFound):
        [c async for c in node.source.read(object_url(B, "s/missing"), 0, 1)]
    with pytest.raises(SourceError):
        [c async for c in node.source.read(url, 8, 5)]  # past the end: a short read
    with pytest.raises(SourceError):
        await node.source.stat("dfs://bkt")


async def test_back_to_source_reads_are_pinned_to_the_version_seen(node: Node, tmp_path: Path) -> None:
    etag = await put(node, "v", b"version one")
    url = object_url(B, "v")
    node.source.pin(url, etag)
    assert b"".join([c async for c in node.source.read(url, 0, 11)]) == b"version one"
    src = tmp_path / "src"
    src.write_bytes(b"version two")
    await node.backend.put_object(B, "v", src, PutOptions())  # overwritten mid-download
    with pytest.raises(SourceError, match="changed"):
        [c async for c in node.source.read(url, 0, 11)]
    assert await get(node, "v") == b"version two"  # a new GET sees (and pins) the new version


async def test_copy_of_a_pending_object_onto_itself(tmp_path: Path) -> None:
    n = await build(tmp_path, start_writeback=False)
    await n.backend.create_bucket(B)
    try:
        await put(n, "self", b"pending bytes", PutMode.ASYNC_WRITE_BACK)
        meta = await n.service.copy_object(B, "self", B, "self", options=PutOptions(content_type="new/type"))
        assert meta.content_type == "new/type"
        assert n.writeback.pending(B, "self") is None  # written to the origin by the copy itself
        assert list((tmp_path / "journal").glob("*.data")) == []
        origin = await n.backend.head_object(B, "self")
        assert (origin.size, origin.content_type) == (13, "new/type")
        await n.writeback.start()
        assert await n.writeback.drain(5)
        assert (await n.backend.head_object(B, "self")).content_type == "new/type"
    finally:
        await n.writeback.close()
        await n.tasks.close()
        await n.store.close()
