"""The OpenAPI 3.1 document, generated from the same Route records that build the router."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from p2p.manager.web import Route

_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
_SECURITY: dict[str, list[dict[str, list[str]]]] = {
    "none": [],
    "session": [{"session": []}],
    "root": [{"session": []}],
    "pat": [{"personalAccessToken": []}],
}


def openapi_path(path: str) -> str:
    """aiohttp `{id:\\d+}` -> OpenAPI `{id}`."""
    return _PARAM.sub(lambda m: "{" + m.group(1) + "}", path)


def _schema_ref(model: type[BaseModel], components: dict[str, Any]) -> dict[str, str]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components.setdefault(name, sub)
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_openapi(routes: list[Route], *, version: str) -> dict[str, Any]:
    components: dict[str, Any] = {
        "Error": {"type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]},
    }
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": {"type": "integer"}}
            for name in _PARAM.findall(route.path)
        ]
        if route.paginated:
            params += [
                {"name": "page", "in": "query", "schema": {"type": "integer", "minimum": 1, "default": 1}},
                {"name": "per_page", "in": "query",
                 "schema": {"type": "integer", "minimum": 1, "maximum": 1000, "default": 10}},
            ]
        params += [{"name": q, "in": "query", "schema": {"type": "string"}} for q in route.query]
        error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
        responses: dict[str, Any] = {str(route.status): {"description": "OK" if route.status != 204 else "No Content"}}
        if route.paginated:
            responses[str(route.status)]["headers"] = {
                "Link": {"description": "RFC 5988 links: first, prev, next, last", "schema": {"type": "string"}},
                "X-Total-Count": {"schema": {"type": "integer"}},
            }
        if route.auth != "none":
            responses["401"] = {"description": "missing or unknown credentials", **error}
            responses["403"] = {"description": "not allowed", **error}
        if "{" in route.path:
            responses["404"] = {"description": "record not found", **error}
        if route.method in ("POST", "PATCH", "DELETE"):
            responses["409"] = {"description": "duplicate or still in use", **error}
        responses["422"] = {"description": "invalid request", **error}
        op: dict[str, Any] = {
            "summary": route.summary,
            "tags": [route.tag],
            "operationId": f"{route.method.lower()}_{openapi_path(route.path).strip('/').replace('/', '_')}",
            "security": _SECURITY[route.auth],
            "parameters": params,
            "responses": responses,
        }
        if route.body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema_ref(route.body, components)}},
            }
        paths.setdefault(openapi_path(route.path), {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "dfly manager", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "http", "scheme": "bearer", "description": "POST /api/v1/users/signin"},
                "personalAccessToken": {"type": "http", "scheme": "bearer"},
            },
        },
    }
