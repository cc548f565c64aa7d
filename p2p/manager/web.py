"""The REST plumbing shared by every route: the route record, authentication, body binding,
pagination with a `Link` header, and errors rendered as `{"message": ...}`.

A route is declared once (routes.py) and the same record drives the aiohttp router and the
OpenAPI document (openapi.py), so the two cannot drift apart.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from p2p.manager.auth import AuthService, Principal, require_root
from p2p.manager.errors import Invalid, ManagerError, Unauthorized
from p2p.manager.service import Page

log = logging.getLogger(__name__)

Auth = Literal["none", "session", "root", "pat"]
B = TypeVar("B", bound=BaseModel)
T = TypeVar("T")
MAX_PER_PAGE = 1000


@dataclass
class Call:
    request: web.Request
    user: Principal | None
    body: Any
    token: str = ""  # the bearer credential of this call (sign-out needs it); never logged

    def id(self, name: str = "id") -> int:
        return int(self.request.match_info[name])

    def query(self, name: str, default: str = "") -> str:
        return self.request.query.get(name, default)

    def query_int(self, name: str) -> int | None:
        raw = self.request.query.get(name, "")
        if raw == "":
            return None
        try:
            return int(raw)
        except ValueError as exc:
            raise Invalid(f"query parameter {name} must be an integer") from exc

    @property
    def page(self) -> int:
        return _bounded_int(self.request, "page", 1, 1, 10**9)

    @property
    def per_page(self) -> int:
        return _bounded_int(self.request, "per_page", 10, 1, MAX_PER_PAGE)


@dataclass
class Reply:
    data: Any = None
    status: int = 200
    page: Page | None = None


Handler = Callable[[Call], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # aiohttp syntax; ids as {id:\d+}
    handler: Handler
    summary: str
    tag: str
    auth: Auth = "session"
    body: type[BaseModel] | None = None
    paginated: bool = False
    status: int = 200
    query: tuple[str, ...] = field(default_factory=tuple)  # documented filters


async def run(fn: Callable[..., T], *args: Any) -> T:
    """Service calls touch the database: keep them off the event loop."""
    return await asyncio.to_thread(fn, *args)


def _bounded_int(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name, "")
    if raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise Invalid(f"query parameter {name} must be an integer") from exc
    if not low <= value <= high:
        raise Invalid(f"query parameter {name} must be between {low} and {high}")
    return value


def bearer(request: web.Request) -> str:
    header = request.headers.get("Authorization", "")
    parts = header.split()
    if len(parts) != 2 or parts[0] != "Bearer":
        raise Unauthorized("Authorization: Bearer <token> required")
    return parts[1]


def link_header(request: web.Request, page: int, per_page: int, total: int) -> str:
    last = max(1, -(-total // per_page))

    def url(n: int) -> str:
        return str(request.url.update_query(page=str(n), per_page=str(per_page)))

    links = [f'<{url(1)}>; rel="first"']
    if page > 1:
        links.append(f'<{url(min(page - 1, last))}>; rel="prev"')
    if page < last:
        links.append(f'<{url(page + 1)}>; rel="next"')
    links.append(f'<{url(last)}>; rel="last"')
    return ", ".join(links)


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data, separators=(",", ":")).encode(), status=status,
        content_type="application/json", headers=headers,
    )


def bind(
    route: Route, auth: AuthService
) -> Callable[[web.Request], Awaitable[web.Response]]:
    async def handler(request: web.Request) -> web.Response:
        user: Principal | None = None
        token = ""
        if route.auth in ("session", "root"):
            token = bearer(request)
            user = await run(auth.authenticate_session, token)
            if route.auth == "root":
                require_root(user)
        elif route.auth == "pat":
            token = bearer(request)
            resource = request.path.split("/")[3] if request.path.count("/") >= 3 else ""
            user = await run(auth.authenticate_token, token, resource)
        body = await _parse_body(request, route.body) if route.body is not None else None
        reply = await route.handler(Call(request, user, body, token))
        if reply.status == 204:
            return web.Response(status=204)
        if reply.page is not None:
            call_page = _bounded_int(request, "page", 1, 1, 10**9)
            per_page = _bounded_int(request, "per_page", 10, 1, MAX_PER_PAGE)
            headers = {
                "Link": link_header(request, call_page, per_page, reply.page.total),
                "X-Total-Count": str(reply.page.total),
            }
            return json_response(reply.page.items, reply.status, headers)
        return json_response(reply.data, reply.status)

    return handler


async def _parse_body(request: web.Request, model: type[B]) -> B:
    raw = await request.read()
    try:
        return model.model_validate_json(raw or b"{}")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'body'}: {err['msg']}" for err in exc.errors()
        )
        raise Invalid(problems) from exc


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ManagerError as exc:
        headers = {"WWW-Authenticate": 'Bearer realm="dfly"'} if exc.status == 401 else None
        return json_response({"message": exc.message}, exc.status, headers)
    except web.HTTPException as exc:
        if exc.status >= 400 and request.path.startswith(("/api/", "/oapi/")):
            return json_response({"message": exc.reason}, exc.status)
        raise
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_response({"message": "internal error"}, 500)
