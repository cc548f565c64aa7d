"""The S3 gateway's aiohttp application: one catch-all route, one error middleware, SigV4 on
every request, `x-amz-request-id` on every response.

    app = create_app(service, config, staging_dir=home / "multipart")
    runner = web.AppRunner(app, **RUNNER_KWARGS)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from aiohttp import web
from aiohttp.http import HttpVersion11

from dfstore.errors import DFError, InvalidRange, NotModified
from gateway import auth as sigv4
from gateway import xml
from gateway.config import GatewayConfig
from gateway.errors import ERROR_CONTENT_TYPE, as_dferror, error_resource, status_of
from gateway.handlers.call import Deps, S3Call
from gateway.multipart import MultipartStore
from gateway.routes import resolve_target, select

if TYPE_CHECKING:
    from dfstore.core.service import ObjectService

log = logging.getLogger(__name__)

# Presigned URLs and long keys make long request lines; S3 allows 8 KiB of headers per field.
RUNNER_KWARGS: dict[str, Any] = {"max_line_size": 64 * 1024, "max_field_size": 16 * 1024}

DEPS = web.AppKey("gateway_deps", Deps)
REQUEST_ID = web.RequestKey("s3_request_id", str)
AUTH = web.RequestKey("s3_auth", object)  # AuthContext, or None when auth is off
STARTED = web.RequestKey("s3_started", bool)
PURGE_INTERVAL_S = 3600.0


def create_app(service: ObjectService, config: GatewayConfig, *, staging_dir: Path) -> web.Application:
    app = web.Application(middlewares=[_errors], client_max_size=xml.MAX_XML_BYTES + 1024)
    app[DEPS] = Deps(service=service, config=config, uploads=MultipartStore(staging_dir))
    app.router.add_route("*", "/{tail:.*}", _dispatch, expect_handler=_expect)
    app.on_response_prepare.append(_stamp)
    if config.multipart_ttl_s > 0:
        app.cleanup_ctx.append(_purge_stale_uploads)
    return app


async def _purge_stale_uploads(app: web.Application) -> AsyncIterator[None]:
    """Abandoned multipart uploads would fill the staging disk: drop them after multipart_ttl_s."""
    deps = app[DEPS]

    async def loop() -> None:
        while True:
            cutoff = datetime.now(UTC) - timedelta(seconds=deps.config.multipart_ttl_s)
            try:
                purged = await deps.uploads.purge(cutoff)
            except OSError as exc:
                log.warning("cannot purge stale multipart uploads: %s", exc)
            else:
                if purged:
                    log.info("purged %d multipart uploads older than %.0f s", purged, deps.config.multipart_ttl_s)
            await asyncio.sleep(PURGE_INTERVAL_S)

    task = asyncio.create_task(loop(), name="gateway-multipart-purge")
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def request_id(request: web.Request) -> str:
    rid = request.get(REQUEST_ID)
    if rid is None:
        rid = uuid.uuid4().hex[:16].upper()
        request[REQUEST_ID] = rid
    return rid


async def _stamp(request: web.Request, response: web.StreamResponse) -> None:
    request[STARTED] = True
    rid = request_id(request)
    response.headers["x-amz-request-id"] = rid
    response.headers["x-amz-id-2"] = rid
    response.headers.setdefault("Server", "dfly")


def _signed_request(request: web.Request) -> sigv4.SignedRequest:
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers.setdefault(name.lower(), []).append(value)
    raw_path, _, raw_query = request.raw_path.partition("?")
    # Decoded by hand: a literal '+' is a plus to SigV4, not a space as in form encoding.
    query = []
    for item in raw_query.split("&"):
        if item:
            name, _, value = item.partition("=")
            query.append((unquote(name), unquote(value)))
    return sigv4.SignedRequest(request.method, raw_path, query, headers)


def _authenticate(request: web.Request) -> sigv4.AuthContext | None:
    if AUTH in request:
        return request[AUTH]  # type: ignore[return-value]
    config = request.app[DEPS].config
    ctx = None
    if config.access_key:
        ctx = sigv4.verify(
            _signed_request(request),
            {config.access_key: config.secret()},
            now=datetime.now(UTC),
            max_skew=timedelta(seconds=config.max_clock_skew_s),
        )
    request[AUTH] = ctx
    return ctx


async def _expect(request: web.Request) -> web.StreamResponse | None:
    """Answer 100-continue only for a request that passes auth; ignore any other Expect value."""
    if request.version != HttpVersion11 or request.headers.get("Expect", "").lower() != "100-continue":
        return None
    try:
        _authenticate(request)
    except Exception as exc:  # this runs outside the middleware: nothing may escape
        if not isinstance(exc, DFError):
            log.exception("internal error checking %s %s", request.method, request.path)
        return _error_response(request, as_dferror(exc))
    await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.writer.output_size = 0
    return None


async def _dispatch(request: web.Request) -> web.StreamResponse:
    deps = request.app[DEPS]
    target = resolve_target(request.raw_path, request.host, deps.config.domain)
    auth = _authenticate(request)
    handler = select(request.method, target, request.query, request.headers)
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s bucket=%s key=%r op=%s payload=%s", request.method, target.bucket, target.key,
                  handler.__name__, request.headers.get("x-amz-content-sha256", "-")[:40])
    return await handler(S3Call(request, target.bucket, target.key, auth, deps))


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except Exception as exc:
        if request.get(STARTED):
            raise  # bytes went out: aiohttp aborts the connection, the client sees a short body
        if not isinstance(exc, DFError):
            log.exception("internal error on %s %s", request.method, request.path)
        return _error_response(request, as_dferror(exc))


def _error_response(request: web.Request, exc: DFError) -> web.StreamResponse:
    rid = request_id(request)
    status = status_of(exc)
    headers = {}
    if isinstance(exc, InvalidRange) and exc.size is not None:
        headers["Content-Range"] = f"bytes */{exc.size}"
    if request.method == "HEAD" or isinstance(exc, NotModified):
        response = web.Response(status=status, headers=headers, content_type=ERROR_CONTENT_TYPE)
    else:
        body = xml.error(exc, error_resource(exc, request.path), rid)
        response = web.Response(status=status, headers=headers, body=body, content_type=ERROR_CONTENT_TYPE)
    if request.body_exists and not request.content.is_eof():
        response.force_close()  # the unread body must not be taken for the next request
    return response
