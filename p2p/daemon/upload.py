"""The piece upload server: children fetch byte ranges of a task's data file from this peer.

Routes:
- `GET /healthy` -> 200 `ok`.
- `GET /download/{task_id[:3]}/{task_id}?peerId=...` with `Range: bytes=a-b` (any span, not
  necessarily piece-aligned). Answers 206 with `Content-Range` and `Content-Length` (200 for the whole
  task when no Range is sent), the body sent with sendfile. Every piece the span touches must be
  present and verified first (see p2p/daemon/store.py), else 404: a child only asks for pieces the
  piece list showed, so a miss means the piece was just dropped and the child should look elsewhere.
  Unknown task: 404; malformed Range: 400; a span past the end: 416; no free upload slot: 503.
  With a rate limit, every upload together stays under it (1 MiB sendfile slices, p2p/daemon/ratelimit.py).
- `GET /tasks/{task_id}/pieces[?have=N&wait_s=S]` -> JSON of the pieces present now:
  `{"task_id", "content_length", "piece_size", "piece_count", "done", "task_digest", "failed",
  "pieces": [{"number", "offset", "size", "digest"}, ...]}` (pieces ordered by number). With
  `have=N` and `wait_s=S` (at most 30) it waits up to S seconds until more than N pieces are present,
  the task is done or its download failed, so a child can follow a parent that is still downloading
  without hammering it (and stop following one whose download failed).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from p2p.common.httprange import MalformedRange, RangeNotSatisfiable, parse_range
from p2p.common.sendfile import send_regions
from p2p.daemon.ratelimit import RateLimiter
from p2p.daemon.store import PieceStore, TaskStore
from p2p.daemon.taskstore import valid_task_id
from p2p.errors import PieceDigestMismatch, PieceNotFound
from p2p.types import ByteRange, FileRegion, TaskID

STORE_KEY = web.AppKey("piece_store", PieceStore)
SLOTS_KEY = web.AppKey("upload_slots", asyncio.Semaphore)
LIMIT_KEY = web.AppKey("upload_rate_limit", RateLimiter)
MAX_WAIT_S = 30.0


def upload_app(store: PieceStore, *, slots: int = 0, rate_limit_bps: int = 0) -> web.Application:
    """The upload server's app. `slots` > 0 caps concurrent piece uploads (beyond: 503);
    `rate_limit_bps` > 0 caps the bytes per second of all uploads together."""
    app = web.Application()
    app[STORE_KEY] = store
    if slots > 0:
        app[SLOTS_KEY] = asyncio.Semaphore(slots)
    if rate_limit_bps > 0:
        app[LIMIT_KEY] = RateLimiter(rate_limit_bps)
    app.router.add_get("/healthy", _healthy)
    app.router.add_get("/download/{prefix}/{task_id}", _download)
    app.router.add_get("/tasks/{task_id}/pieces", _pieces)
    return app


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"errors": message}, status=status, headers=headers)


def _find_task(request: web.Request) -> TaskStore | None:
    task_id = request.match_info["task_id"]
    if not valid_task_id(task_id):
        return None
    prefix = request.match_info.get("prefix")
    if prefix is not None and prefix != task_id[:3]:
        return None
    return request.app[STORE_KEY].get(TaskID(task_id))


async def _healthy(request: web.Request) -> web.Response:
    return web.Response(text="ok")


async def verified_span(task: TaskStore, span: ByteRange) -> list[FileRegion]:
    """The data-file regions of `span`, every piece it touches verified; raises PieceNotFound or
    PieceDigestMismatch when one is missing or bad."""
    regions: list[FileRegion] = []
    if span.length == 0:
        return regions
    first, last = span.start // task.piece_size, span.end // task.piece_size
    for n in range(first, last + 1):
        region = await task.verified_region(n)
        lo, hi = max(region.offset, span.start), min(region.offset + region.length, span.end + 1)
        if regions and regions[-1].offset + regions[-1].length == lo:
            prev = regions.pop()
            regions.append(FileRegion(prev.path, prev.offset, prev.length + hi - lo))
        else:
            regions.append(FileRegion(region.path, lo, hi - lo))
    return regions


async def _iterate(regions: list[FileRegion]) -> AsyncIterator[FileRegion]:
    for region in regions:
        yield region


async def _download(request: web.Request) -> web.StreamResponse:
    task = _find_task(request)
    if task is None:
        return _error(404, "task not found")
    try:
        spec = parse_range(request.headers.get("Range"))
        span = spec.resolve(task.content_length) if spec is not None else ByteRange(0, task.content_length)
    except MalformedRange as exc:
        return _error(400, str(exc))
    except RangeNotSatisfiable:
        return _error(416, "range not satisfiable", {"Content-Range": f"bytes */{task.content_length}"})
    slots = request.app.get(SLOTS_KEY)
    if slots is not None and slots.locked():
        return _error(503, "no free upload slot", {"Retry-After": "1"})
    async with slots if slots is not None else contextlib.nullcontext():
        task.pin()  # keep GC away while the bytes go out
        try:
            try:
                regions = await verified_span(task, span)
            except (PieceNotFound, PieceDigestMismatch) as exc:
                return _error(404, exc.message)
            response = web.StreamResponse(status=206 if spec is not None else 200)
            response.content_type = "application/octet-stream"
            response.content_length = span.length
            if spec is not None:
                response.headers["Content-Range"] = f"bytes {span.start}-{span.end}/{task.content_length}"
            await response.prepare(request)
            await send_regions(request, response, _iterate(regions), limiter=request.app.get(LIMIT_KEY))
            await response.write_eof()
            return response
        finally:
            task.unpin()


def piece_table(task: TaskStore) -> dict[str, Any]:
    return {
        "task_id": task.task_id,
        "content_length": task.content_length,
        "piece_size": task.piece_size,
        "piece_count": task.piece_count,
        "done": task.done,
        "task_digest": task.task_digest,
        "failed": task.failed is not None,  # this peer's download failed: no more pieces will come
        "pieces": [{"number": p.number, "offset": p.offset, "size": p.size, "digest": p.digest} for p in task.pieces()],
    }


async def _pieces(request: web.Request) -> web.Response:
    task = _find_task(request)
    if task is None:
        return _error(404, "task not found")
    try:
        have = int(request.query.get("have", "-1"))
        wait_s = min(float(request.query.get("wait_s", "0")), MAX_WAIT_S)
    except ValueError:
        return _error(400, "have and wait_s must be numbers")
    if wait_s > 0 and not task.done and task.present_count <= have:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not task.done and task.present_count <= have and task.failed is None:
            left = deadline - loop.time()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(task.wait_changed(), left)
    return web.json_response(piece_table(task))
