"""The dfstore HTTP edge: an aiohttp application wire-compatible with Dragonfly's object-storage API.

`create_app` builds it over an in-process ObjectService; serve it with
`web.AppRunner(app, **RUNNER_KWARGS)` so that very long request lines are parsed and answered.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from aiohttp import web
from aiohttp.typedefs import Handler

from dfstore.errors import DFError
from dfstore.http import render
from dfstore.http.routes import STREAMING_RESPONSE, DfstoreHandlers, EdgeSettings

if TYPE_CHECKING:
    from dfstore.core.service import ObjectService

log = logging.getLogger(__name__)

# aiohttp refuses request lines and header fields over 8190 bytes before any handler runs; JuiceFS's
# huge-key probe sends a ~24 KiB path. 64 KiB lets it reach the handler and get a real answer.
RUNNER_KWARGS: dict[str, Any] = {"max_line_size": 64 * 1024, "max_field_size": 64 * 1024}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render our error tree as `{"errors": ...}`; unknown routes and methods as Gin's plain 404.

    Once a streaming GET has sent its headers nothing can be rendered any more: an error goes on to
    aiohttp, which logs it and closes the connection so the client sees a short body. A reader that
    hangs up mid-body (JuiceFS aborts reads it no longer needs) is routine and only logged at debug.
    """
    try:
        return await handler(request)
    except (web.HTTPNotFound, web.HTTPMethodNotAllowed):
        return render.page_not_found()
    except ConnectionError:
        streaming = request.get(STREAMING_RESPONSE)
        if streaming is None:
            raise
        log.debug("%s %s: the client went away mid-body", request.method, request.path)
        return streaming  # already prepared: aiohttp finishes it quietly on the closed connection
    except DFError as exc:
        if STREAMING_RESPONSE in request:
            raise
        if render.error_status(exc, request.method) == 500:
            log.warning("%s %s failed: %r", request.method, request.path, exc)
        return render.error_response(exc, request.method)
    except web.HTTPException:
        raise
    except Exception as exc:
        if STREAMING_RESPONSE in request:
            raise
        log.exception("%s %s failed", request.method, request.path)
        return render.json_response(500, {"errors": f"internal error: {type(exc).__name__}"})


def create_app(
    service: ObjectService,
    *,
    default_filter: str,
    max_replicas: int,
    backend_name: str = "s3",
    region: str = "us-east-1",
    endpoint: str = "",
) -> web.Application:
    """`backend_name` is what /metadata reports; JuiceFS accepts only s3, oss or obs there."""
    # client_max_size stays at its default: no handler reads a body with request.read()/post().
    app = web.Application(middlewares=[error_middleware])
    settings = EdgeSettings(
        default_filter=default_filter,
        max_replicas=max_replicas,
        backend_name=backend_name,
        region=region,
        endpoint=endpoint,
    )
    DfstoreHandlers(service, settings).add_routes(app.router)
    return app
