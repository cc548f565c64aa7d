"""The piece upload server on 127.0.0.1 over a real PieceStore, fetched with a real aiohttp client;
and send_regions on both of its paths (sendfile and the chunked fallback)."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from p2p.common.digest import piece_digest
from p2p.common.ids import task_id
from p2p.common.sendfile import send_regions
from p2p.daemon.store import PieceStore, TaskStore
from p2p.daemon.upload import SLOTS_KEY, upload_app
from p2p.errors import SourceError
from p2p.types import FileRegion

PS = 64 * 1024


@dataclass
class Server:
    store: PieceStore
    base: str
    http: aiohttp.ClientSession
    app: web.Application

    def download_url(self, tid: str) -> str:
        return f"{self.base}/download/{tid[:3]}/{tid}?peerId=child-1"


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[Server]:
    store = PieceStore(tmp_path / "store", gc_interval_s=0)
    await store.start()
    app = upload_app(store, slots=4)
    runner, base = await _serve(app)
    async with aiohttp.ClientSession() as http:
        yield Server(store, base, http, app)
    await runner.cleanup()
    await store.close()


def blob(n: int, seed: int = 3) -> bytes:
    return random.Random(seed).randbytes(n)


async def full_task(store: PieceStore, name: str, data: bytes) -> TaskStore:
    task = await store.create(
        task_id(f"http://o/{name}", "v1"), url="u", content_length=len(data), piece_size=PS, content_type="t"
    )
    for n in range(task.piece_count):
        await task.write_piece(n, data[n * PS : n * PS + task.piece_length(n)])
    return task


@pytest.mark.parametrize(
    ("first", "last"), [(0, PS - 1), (PS, 2 * PS - 1), (5, 2 * PS + 9), (3 * PS, 3 * PS + 6), (0, 3 * PS + 6)]
)
async def test_ranged_download(server: Server, first: int, last: int) -> None:
    data = blob(3 * PS + 7)
    task = await full_task(server.store, "a", data)
    headers = {"Range": f"bytes={first}-{last}"}
    async with server.http.get(server.download_url(task.task_id), headers=headers) as resp:
        assert resp.status == 206
        assert resp.headers["Content-Range"] == f"bytes {first}-{last}/{len(data)}"
        assert resp.content_length == last - first + 1
        assert await resp.read() == data[first : last + 1]


async def test_whole_download_without_range(server: Server) -> None:
    data = blob(2 * PS + 1)
    task = await full_task(server.store, "whole", data)
    async with server.http.get(server.download_url(task.task_id)) as resp:
        assert resp.status == 200
        assert await resp.read() == data


async def test_errors(server: Server) -> None:
    data = blob(PS + 1)
    task = await full_task(server.store, "e", data)
    tid = task.task_id
    other = task_id("http://o/none", "v1")
    cases = [
        (server.download_url(other), {"Range": "bytes=0-1"}, 404),
        (f"{server.base}/download/zzz/{tid}", {"Range": "bytes=0-1"}, 404),  # prefix does not match
        (f"{server.base}/download/..%2F/..%2F..%2Fetc", {"Range": "bytes=0-1"}, 404),
        (server.download_url(tid), {"Range": f"bytes={PS + 1}-{PS + 5}"}, 416),
        (server.download_url(tid), {"Range": "bytes=9-3"}, 400),
        (server.download_url(tid), {"Range": "lines=1-2"}, 400),
        (f"{server.base}/tasks/{other}/pieces", {}, 404),
    ]
    for url, headers, status in cases:
        async with server.http.get(url, headers=headers) as resp:
            assert resp.status == status, (url, headers)
    async with server.http.get(server.download_url(tid), headers={"Range": "bytes=0-0"}) as resp:
        assert resp.status == 206 and await resp.read() == data[:1]  # still serving


async def test_only_present_pieces_are_served(server: Server) -> None:
    data = blob(3 * PS)
    task = await server.store.create(
        task_id("http://o/partial", "v1"), url="u", content_length=len(data), piece_size=PS, content_type="t"
    )
    await task.write_piece(0, data[:PS])
    await task.write_piece(2, data[2 * PS :])
    url = server.download_url(task.task_id)
    async with server.http.get(url, headers={"Range": f"bytes=0-{PS - 1}"}) as resp:
        assert resp.status == 206 and await resp.read() == data[:PS]
    async with server.http.get(url, headers={"Range": f"bytes={PS - 10}-{PS + 10}"}) as resp:
        assert resp.status == 404  # touches piece 1, which is missing
    async with server.http.get(url, headers={"Range": f"bytes={2 * PS}-{3 * PS - 1}"}) as resp:
        assert resp.status == 206 and await resp.read() == data[2 * PS :]


async def test_corrupt_piece_is_never_served(server: Server) -> None:
    data = blob(2 * PS)
    task = await full_task(server.store, "bad", data)
    with open(task.data_path, "r+b") as f:
        os.pwrite(f.fileno(), b"XXXX", PS + 3)
    st = os.stat(task.data_path)
    os.utime(task.data_path, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))
    url = server.download_url(task.task_id)
    async with server.http.get(url, headers={"Range": f"bytes={PS}-{2 * PS - 1}"}) as resp:
        assert resp.status == 404
    assert not task.has_piece(1) and task.has_piece(0)
    async with server.http.get(url, headers={"Range": f"bytes=0-{PS - 1}"}) as resp:
        assert resp.status == 206 and await resp.read() == data[:PS]


async def test_piece_table_and_long_poll(server: Server) -> None:
    data = blob(3 * PS + 7)
    task = await server.store.create(
        task_id("http://o/t", "v1"), url="u", content_length=len(data), piece_size=PS, content_type="t"
    )
    await task.write_piece(2, data[2 * PS : 3 * PS])
    table_url = f"{server.base}/tasks/{task.task_id}/pieces"
    async with server.http.get(table_url) as resp:
        table = await resp.json()
    assert table["content_length"] == len(data) and table["piece_size"] == PS and table["piece_count"] == 4
    assert table["done"] is False and table["task_digest"] == ""
    digest = piece_digest(data[2 * PS : 3 * PS])
    assert table["pieces"] == [{"number": 2, "offset": 2 * PS, "size": PS, "digest": digest}]

    async def later() -> None:
        await asyncio.sleep(0.1)
        await task.write_piece(0, data[:PS])

    writer = asyncio.create_task(later())
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with server.http.get(table_url, params={"have": "1", "wait_s": "10"}) as resp:
        table = await resp.json()
    await writer
    assert [p["number"] for p in table["pieces"]] == [0, 2]
    assert loop.time() - started < 5  # woke on the new piece, not at the timeout
    async with server.http.get(table_url, params={"have": "2", "wait_s": "0.2"}) as resp:
        table = await resp.json()
        assert len(table["pieces"]) == 2 and table["failed"] is False  # nothing new: answers after the wait
    task.fail(SourceError("origin down"))
    started = loop.time()
    async with server.http.get(table_url, params={"have": "2", "wait_s": "10"}) as resp:
        assert (await resp.json())["failed"] is True
    assert loop.time() - started < 5  # a failed download ends the wait at once


async def test_no_free_slot_answers_503(server: Server) -> None:
    task = await full_task(server.store, "slots", blob(10))
    slots = server.app[SLOTS_KEY]
    for _ in range(4):
        await slots.acquire()
    try:
        async with server.http.get(server.download_url(task.task_id), headers={"Range": "bytes=0-1"}) as resp:
            assert resp.status == 503
    finally:
        for _ in range(4):
            slots.release()
    async with server.http.get(server.download_url(task.task_id), headers={"Range": "bytes=0-1"}) as resp:
        assert resp.status == 206


@pytest.mark.parametrize("chunked", [False, True])
async def test_send_regions_sendfile_and_fallback(tmp_path: Path, chunked: bool) -> None:
    """Several regions of two files in one body; chunked encoding forces the 1 MiB read fallback."""
    a, b = tmp_path / "a", tmp_path / "b"
    da, db = blob(3 * 1024 * 1024 + 5, 1), blob(1000, 2)
    a.write_bytes(da)
    b.write_bytes(db)
    regions = [FileRegion(str(a), 10, 2 * 1024 * 1024), FileRegion(str(b), 0, 1000), FileRegion(str(a), 0, 0),
               FileRegion(str(a), 3 * 1024 * 1024, 5)]
    expected = da[10 : 10 + 2 * 1024 * 1024] + db + da[3 * 1024 * 1024 :]

    async def gen() -> AsyncIterator[FileRegion]:
        for r in regions:
            yield r

    async def handler(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse()
        if chunked:
            resp.enable_chunked_encoding()
        else:
            resp.content_length = len(expected)
        await resp.prepare(request)
        await send_regions(request, resp, gen())
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_get("/", handler)
    runner, base = await _serve(app)
    try:
        async with aiohttp.ClientSession() as http, http.get(base + "/") as resp:
            assert resp.status == 200
            assert (resp.headers.get("Transfer-Encoding") == "chunked") is chunked
            assert await resp.read() == expected
    finally:
        await runner.cleanup()


async def test_download_survives_a_child_hanging_up(server: Server) -> None:
    data = blob(256 * PS)  # 16 MiB: more than the socket buffers hold
    task = await full_task(server.store, "hang", data)
    url = server.download_url(task.task_id)
    async with server.http.get(url, headers={"Range": f"bytes=0-{len(data) - 1}"}) as resp:
        await resp.content.read(100)
        resp.close()  # drop the connection mid-body
    for _ in range(200):  # the server notices the hang-up and releases its pin
        if not task.pinned:
            break
        await asyncio.sleep(0.01)
    assert not task.pinned
    async with server.http.get(url, headers={"Range": f"bytes=0-{len(data) - 1}"}) as resp:
        assert await resp.read() == data


async def test_rate_limit_spreads_the_bytes(tmp_path: Path) -> None:
    store = PieceStore(tmp_path / "store", gc_interval_s=0)
    await store.start()
    data = blob(3 * 1024 * 1024)
    task = await full_task(store, "slow", data)
    # the bucket starts with one second of tokens (8 MiB), then refills at 8 MiB/s
    runner, base = await _serve(upload_app(store, rate_limit_bps=8 * 1024 * 1024))
    try:
        url = f"{base}/download/{task.task_id[:3]}/{task.task_id}"
        loop = asyncio.get_running_loop()
        async with aiohttp.ClientSession() as http:
            for _ in range(3):  # 9 MiB in all: the last MiB waits for tokens
                async with http.get(url, headers={"Range": f"bytes=0-{len(data) - 1}"}) as resp:
                    assert await resp.read() == data
            started = loop.time()
            async with http.get(url, headers={"Range": f"bytes=0-{len(data) - 1}"}) as resp:
                assert await resp.read() == data
            assert loop.time() - started >= 0.3  # 3 MiB at 8 MiB/s with the bucket empty
    finally:
        await runner.cleanup()
        await store.close()
