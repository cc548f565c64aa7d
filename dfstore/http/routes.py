"""The dfstore route table and its handlers: parse, call one ObjectService method, render.

Routes and methods are exactly upstream's (spec §1.1). No HEAD is added to GET routes: Gin does
not do that either, and an unknown method answers Gin's plain 404.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from dfstore.http import params, render
from dfstore.models import PutOptions
from p2p.common.sendfile import BodyResponse, send_regions

if TYPE_CHECKING:
    from dfstore.core.service import ObjectService

# The GET response once its headers are on their way: from then on an error can only abort the
# connection, and a client that went away is no error at all.
STREAMING_RESPONSE = web.RequestKey("dfstore_streaming_response", web.StreamResponse)

COPY_OPERATION = "copy"

_OBJECT = "/buckets/{id}/objects/{key:.*}"
# (method, path, handler name): upstream's route table, nothing more (pinned by a unit test).
ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/healthy", "healthy"),
    ("GET", "/metadata", "metadata"),
    ("POST", "/buckets/{id}", "create_bucket"),
    ("GET", "/buckets/{id}/metadatas", "list_objects"),
    ("HEAD", _OBJECT, "head_object"),
    ("GET", _OBJECT, "get_object"),
    ("PUT", _OBJECT, "put_object"),
    ("DELETE", _OBJECT, "delete_object"),
)


@dataclass(frozen=True)
class EdgeSettings:
    # Dragonfly's task-id filter strips presigned-URL parameters. Task ids here come from the object's
    # URL and origin version, never from a presigned URL, so `filter` (query or form) is accepted and
    # changes nothing; the default is kept for replication to seed peers.
    default_filter: str
    max_replicas: int  # seed-peer copies when a PUT names none
    backend_name: str
    region: str
    endpoint: str


class DfstoreHandlers:
    def __init__(self, service: ObjectService, settings: EdgeSettings) -> None:
        self._service = service
        self._settings = settings

    def add_routes(self, router: web.UrlDispatcher) -> None:
        for method, path, name in ROUTES:
            router.add_route(method, path, getattr(self, name))

    async def healthy(self, request: web.Request) -> web.Response:
        return render.json_response(200, "OK")

    async def metadata(self, request: web.Request) -> web.Response:
        s = self._settings
        return render.json_response(200, {"Name": s.backend_name, "Region": s.region, "Endpoint": s.endpoint})

    async def create_bucket(self, request: web.Request) -> web.Response:
        await self._service.create_bucket(params.bucket_param(request))
        return render.empty_ok()

    async def list_objects(self, request: web.Request) -> web.Response:
        bucket = params.bucket_param(request)
        q = params.list_query(request)
        page = await self._service.list_objects(
            bucket, prefix=q.prefix, marker=q.marker, delimiter=q.delimiter, max_keys=q.limit
        )
        return render.json_response(200, render.list_body(page))

    async def head_object(self, request: web.Request) -> web.Response:
        path = params.object_path(request)
        meta = await self._service.head_object(path.bucket, path.key)
        return web.Response(status=200, headers=render.head_headers(meta))

    async def get_object(self, request: web.Request) -> web.StreamResponse:
        path = params.object_path(request)
        byte_range = params.byte_range(request)
        reader = await self._service.get_object(path.bucket, path.key, byte_range=byte_range)
        async with contextlib.aclosing(reader):
            # Upstream answers 200 with only the requested bytes, even for a range; no ETag or meta headers.
            response = BodyResponse(status=200)
            response.content_length = reader.content_length
            response.content_type = reader.meta.content_type or "application/octet-stream"
            request[STREAMING_RESPONSE] = response
            await response.prepare(request)
            await send_regions(request, response, reader.regions())
            await response.write_eof()
        return response

    async def put_object(self, request: web.Request) -> web.Response:
        path = params.object_path(request)
        if request.headers.get(render.HEADER_OPERATION) == COPY_OPERATION:
            source = await params.copy_source(request)
            await self._service.copy_object(path.bucket, path.key, path.bucket, source)
            return render.empty_ok()
        upload = await params.open_upload(request)
        await self._service.put_object(
            path.bucket,
            path.key,
            upload.body,
            mode=upload.mode,
            options=PutOptions(content_type=upload.content_type or "application/octet-stream"),
            max_replicas=upload.max_replicas or self._settings.max_replicas,
        )
        return render.empty_ok()

    async def delete_object(self, request: web.Request) -> web.Response:
        path = params.object_path(request)
        await self._service.delete_object(path.bucket, path.key)
        return render.empty_ok()
