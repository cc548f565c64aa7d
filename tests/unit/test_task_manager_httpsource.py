"""HTTPSource, the back-to-source reader for http(s) URLs, against a real origin on 127.0.0.1."""

from __future__ import annotations

import socket

import pytest

from p2p.daemon.httpsource import HTTPSource, redact
from p2p.errors import SourceError, SourceNotFound
from tests.httporigin import LAST_MODIFIED, serve_origin

DATA = bytes(range(256)) * 1000


async def collect(source: HTTPSource, url: str, offset: int, length: int) -> bytes:
    return b"".join([chunk async for chunk in source.read(url, offset, length)])


async def test_stat_uses_etag_else_size_and_last_modified() -> None:
    async with serve_origin() as origin:
        url = origin.put("a", DATA, version="abc123")
        source = HTTPSource()
        try:
            stat = await source.stat(url)
            assert (stat.size, stat.version, stat.content_type) == (len(DATA), '"abc123"', "application/x-test")
            origin.send_etag = False
            assert (await source.stat(url)).version == f"{len(DATA)}-{LAST_MODIFIED}"
            with pytest.raises(SourceNotFound):
                await source.stat(origin.url("missing"))
        finally:
            await source.close()


async def test_stat_falls_back_to_a_one_byte_get_when_head_is_refused() -> None:
    async with serve_origin() as origin:
        url = origin.put("c", DATA, version="v9")
        empty = origin.put("empty", b"", version="v0")
        origin.refuse_head = True
        source = HTTPSource()
        try:
            stat = await source.stat(url)
            assert (stat.size, stat.version) == (len(DATA), '"v9"')
            assert (await source.stat(empty)).size == 0
            assert [(g.start, g.length) for g in origin.gets] == [(0, 1)]  # the empty one got a 416
            with pytest.raises(SourceNotFound):
                await source.stat(origin.url("missing"))
        finally:
            await source.close()


async def test_ranged_reads_are_exact() -> None:
    async with serve_origin() as origin:
        url = origin.put("b", DATA)
        source = HTTPSource()
        try:
            for offset, length in [(0, 1), (0, len(DATA)), (1000, 5000), (len(DATA) - 3, 3)]:
                assert await collect(source, url, offset, length) == DATA[offset : offset + length]
            assert await collect(source, url, 10, 0) == b""
            assert [(g.start, g.length) for g in origin.gets][-1] == (len(DATA) - 3, 3)
            origin.ignore_range = True  # a 200 with the whole body: fine from offset 0, wrong elsewhere
            assert await collect(source, url, 0, 10) == DATA[:10]
            with pytest.raises(SourceError):
                await collect(source, url, 5, 10)
            origin.ignore_range = False
            origin.fail_gets = 1
            with pytest.raises(SourceError):
                await collect(source, url, 0, 10)
            with pytest.raises(SourceNotFound):
                await collect(source, origin.url("missing"), 0, 10)
        finally:
            await source.close()


async def test_unreachable_origin_is_a_source_error() -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    source = HTTPSource(connect_timeout_s=2)
    try:
        with pytest.raises(SourceError):
            await source.stat(f"http://127.0.0.1:{port}/x")
        with pytest.raises(SourceError):
            await collect(source, f"http://127.0.0.1:{port}/x", 0, 5)
    finally:
        await source.close()


def test_redact_drops_secrets() -> None:
    assert redact("https://user:pw@host:8443/b/k?X-Amz-Signature=s3cr3t#f") == "https://host:8443/b/k"
