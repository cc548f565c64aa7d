"""A tiny real HTTP origin for tests: an aiohttp server on 127.0.0.1 serving named objects with
HEAD and single-range GET, counting what it serves, and able to stall, fail or misbehave on demand."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from p2p.common.httprange import MalformedRange, RangeNotSatisfiable, parse_range

LAST_MODIFIED = "Wed, 21 Oct 2026 07:28:00 GMT"


@dataclass
class Served:
    name: str
    start: int
    length: int


@dataclass
class Origin:
    objects: dict[str, bytes] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    heads: int = 0
    gets: list[Served] = field(default_factory=list)
    bytes_sent: int = 0
    fail_gets: int = 0  # answer this many next GETs with 500
    drop_after: int | None = None  # the next GET of an object sends this many body bytes, then hangs up
    ignore_range: bool = False  # answer 200 with the whole body
    send_etag: bool = True  # else only Last-Modified
    refuse_head: bool = False  # like a URL presigned for GET only
    hold_from: int | None = None  # bytes at or past this offset wait for `release` (files: whole GETs)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    base_url: str = ""

    def put(self, name: str, data: bytes, version: str = "v1") -> str:
        self.objects[name] = data
        self.versions[name] = version
        return self.url(name)

    def put_file(self, name: str, path: Path, version: str = "v1") -> str:
        self.files[name] = path
        self.versions[name] = version
        return self.url(name)

    def url(self, name: str) -> str:
        return f"{self.base_url}/o/{name}"

    def size(self, name: str) -> int:
        return len(self.objects[name]) if name in self.objects else self.files[name].stat().st_size

    def _headers(self, name: str) -> dict[str, str]:
        headers = {"Last-Modified": LAST_MODIFIED, "Accept-Ranges": "bytes", "Content-Type": "application/x-test"}
        if self.send_etag:
            headers["ETag"] = f'"{self.versions[name]}"'
        return headers

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name not in self.objects and name not in self.files:
            return web.Response(status=404)
        size = self.size(name)
        if request.method == "HEAD":
            self.heads += 1
            if self.refuse_head:
                return web.Response(status=403)
            head = web.StreamResponse(headers=self._headers(name))
            head.content_length = size
            await head.prepare(request)
            await head.write_eof()
            return head
        if self.fail_gets > 0:
            self.fail_gets -= 1
            return web.Response(status=500, text="injected failure")
        try:
            spec = None if self.ignore_range else parse_range(request.headers.get("Range"))
            span = spec.resolve(size) if spec is not None else None
        except (MalformedRange, RangeNotSatisfiable):
            return web.Response(status=416, headers={**self._headers(name), "Content-Range": f"bytes */{size}"})
        start, length = (span.start, span.length) if span is not None else (0, size)
        if name in self.files and self.hold_from is not None and start >= self.hold_from:
            await self.release.wait()
        self.gets.append(Served(name, start, length))
        self.bytes_sent += length
        headers = self._headers(name)
        if span is not None:
            headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
        if name in self.files:  # FileResponse does the range itself, with sendfile
            headers.pop("Content-Range", None)
            return web.FileResponse(self.files[name], headers=headers)
        resp = web.StreamResponse(status=206 if span is not None else 200, headers=headers)
        resp.content_length = length
        await resp.prepare(request)
        data = self.objects[name]
        pos, end = start, start + length
        if self.drop_after is not None:
            cut, self.drop_after = start + self.drop_after, None
            await resp.write(data[pos:cut])
            assert request.transport is not None
            request.transport.close()  # mid-body: the client sees a short read
            return resp
        while pos < end:
            stop = min(pos + 256 * 1024, end)
            if self.hold_from is not None:
                if pos >= self.hold_from:
                    await self.release.wait()
                elif stop > self.hold_from:
                    stop = self.hold_from  # the bytes before the hold go out, the rest waits
            await resp.write(data[pos:stop])
            pos = stop
        await resp.write_eof()
        return resp


@asynccontextmanager
async def serve_origin() -> AsyncIterator[Origin]:
    origin = Origin()
    app = web.Application()
    app.router.add_route("*", "/o/{name}", origin.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    origin.base_url = f"http://127.0.0.1:{port}"
    try:
        yield origin
    finally:
        origin.release.set()
        await runner.cleanup()
