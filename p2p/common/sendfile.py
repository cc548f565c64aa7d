"""Send spans of files as an HTTP response body with sendfile: the bytes never enter Python.

`send_regions` is the one body writer for cached objects: the dfstore API, the S3 gateway and the
piece upload server all hand it the `FileRegion`s a TaskReader (or a PieceStore) yields.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import BinaryIO, Protocol

from aiohttp import web

from p2p.types import FileRegion, MiB

CHUNK_BYTES = MiB  # fallback read size when sendfile is not available
NOSENDFILE = bool(os.environ.get("AIOHTTP_NOSENDFILE"))  # honour aiohttp's own switch


class BodyResponse(web.StreamResponse):
    """A StreamResponse whose headers wait for the first body write, so that a small body leaves in
    one segment with them (aiohttp's own `Response` does the same; a plain StreamResponse sends its
    headers at `prepare()`). `send_regions` pushes them out before a sendfile."""

    _send_headers_immediately = False


class Limiter(Protocol):
    """A byte-rate limit, e.g. p2p.daemon.ratelimit.RateLimiter."""

    async def acquire(self, n: int) -> None: ...


class _OpenFile:
    """The file of the current region, kept open while consecutive regions share its path."""

    def __init__(self) -> None:
        self.path = ""
        self.file: BinaryIO | None = None

    async def get(self, path: str) -> BinaryIO:
        if self.file is None or path != self.path:
            await self.close()
            self.file = await asyncio.to_thread(open, path, "rb")
            self.path = path
        return self.file

    async def close(self) -> None:
        if self.file is not None:
            f, self.file = self.file, None
            await asyncio.to_thread(f.close)


async def send_regions(
    request: web.BaseRequest,
    response: web.StreamResponse,
    regions: AsyncIterator[FileRegion],
    *,
    limiter: Limiter | None = None,
) -> None:
    """Write each region to the prepared `response`, in order, with `loop.sendfile` on the transport.

    Falls back to 1 MiB reads in a thread when sendfile is unavailable (TLS, chunked or compressed
    responses, AIOHTTP_NOSENDFILE). The caller sets Content-Length and calls `prepare()` before, and
    `write_eof()` after. Errors from `regions` propagate: after `prepare()` the caller can only abort
    the connection. The regions iterator is closed on return. With a `limiter`, bytes go out in
    1 MiB slices, each after `await limiter.acquire(size)`. A region that carries its open `file`
    is sent from it (no open/close); the others are opened by path. A region that carries its
    `data` (a small object) is written from memory, in one write with the headers of a
    `BodyResponse`.
    """
    loop = asyncio.get_running_loop()
    use_sendfile = not (NOSENDFILE or response.chunked or response.compression)
    opened = _OpenFile()
    headers_flushed = False
    try:
        async for region in regions:
            if region.length <= 0:
                continue
            if region.data is not None and limiter is None:
                await response.write(region.data)  # small: one write, with the headers
                headers_flushed = True
                continue
            fobj = region.file if region.file is not None else await opened.get(region.path)
            for part in _slices(region) if limiter is not None else (region,):
                if limiter is not None:
                    await limiter.acquire(part.length)
                if use_sendfile:
                    if not headers_flushed:
                        await response.write(b"")  # push out headers aiohttp may still hold back
                        headers_flushed = True
                    transport = request.transport
                    if transport is None or transport.is_closing():
                        raise ConnectionResetError("client went away")
                    try:
                        await loop.sendfile(transport, fobj, part.offset, part.length, fallback=False)
                        continue
                    except (NotImplementedError, asyncio.SendfileNotAvailableError):
                        use_sendfile = False
                await _write_chunks(response, fobj, part)
    finally:
        await opened.close()
        aclose = getattr(regions, "aclose", None)
        if aclose is not None:
            await aclose()


def _slices(region: FileRegion) -> list[FileRegion]:
    return [
        FileRegion(region.path, off, min(CHUNK_BYTES, region.offset + region.length - off))
        for off in range(region.offset, region.offset + region.length, CHUNK_BYTES)
    ]


async def _write_chunks(response: web.StreamResponse, fobj: BinaryIO, region: FileRegion) -> None:
    fd = fobj.fileno()
    offset, left = region.offset, region.length
    while left > 0:
        chunk = await asyncio.to_thread(os.pread, fd, min(CHUNK_BYTES, left), offset)
        if not chunk:
            raise OSError(f"{region.path} ended {left} bytes before the region did")
        await response.write(chunk)
        offset += len(chunk)
        left -= len(chunk)
