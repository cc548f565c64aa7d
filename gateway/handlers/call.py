"""What every handler receives: the request, its bucket and key, its verified signature and the
gateway's dependencies."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web
from multidict import CIMultiDictProxy, MultiMapping

from gateway.auth import AuthContext
from gateway.config import GatewayConfig
from gateway.multipart import MultipartStore

if TYPE_CHECKING:
    from dfstore.core.service import ObjectService


@dataclass(frozen=True)
class Deps:
    service: ObjectService
    config: GatewayConfig
    uploads: MultipartStore


@dataclass(frozen=True)
class S3Call:
    request: web.Request
    bucket: str
    key: str
    auth: AuthContext | None
    deps: Deps

    @property
    def service(self) -> ObjectService:
        return self.deps.service

    @property
    def query(self) -> MultiMapping[str]:
        return self.request.query

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self.request.headers


def empty(status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, headers=headers)


def xml_response(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, content_type="application/xml", headers=headers)
