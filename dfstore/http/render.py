"""Rendering for the dfstore wire protocol: Go-compatible JSON, HEAD headers, list bodies and errors.

Upstream is a Gin server, so bodies are what Go's `encoding/json` emits and errors are
`{"errors": "<message>"}`. Status per error class (walk the MRO, first row wins):

| class            | status | why                                                        |
| ---------------- | ------ | ---------------------------------------------------------- |
| NotFound         | 404    | missing object (HEAD, GET); clients depend on exactly 404  |
| InvalidRange     | 416    | unparsable or multi-range `Range` (GET)                    |
| AccessDenied     | 500    | upstream passes backend refusals through as 500            |
| Conflict         | 500    | e.g. creating an existing bucket (upstream: backend error) |
| ClientError      | 422    | Gin's binding/validation failures (bad names, form, query) |
| anything else    | 500    | backend or P2P failure                                     |

A HEAD answer carries no body and Go clients understand only 200 and 404 there (JuiceFS maps any
other status to "no error, no object"), so on HEAD a validation failure (422) becomes 404: no
object can exist under an invalid name. Upstream answers 500 for a missing bucket on list and for a
missing copy source (S3's errors pass through as backend errors); here they are 404. Clients only
test for 2xx there (JuiceFS `Create` lists first and creates the bucket on any failure).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from aiohttp import web

from dfstore import errors
from dfstore.models import ListPage, ObjectMeta

JSON_CONTENT_TYPE = "application/json; charset=utf-8"

# Header names (Dragonfly client/config/headers.go).
HEADER_DIGEST = "X-Dragonfly-Object-Meta-Digest"
HEADER_LAST_MODIFIED = "X-Dragonfly-Object-Meta-Last-Modified-Time"
HEADER_STORAGE_CLASS = "X-Dragonfly-Object-Meta-Storage-Class"
HEADER_OPERATION = "X-Dragonfly-Object-Operation"

_STATUS_BY_CLASS: dict[type[errors.DFError], int] = {
    errors.NotFound: 404,
    errors.InvalidRange: 416,
    errors.AccessDenied: 500,
    errors.Conflict: 500,
    errors.ClientError: 422,
    errors.DFError: 500,
}

# Go's encoding/json escapes these even inside UTF-8 output (HTML safety and JS line terminators).
_GO_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"})


def go_json(value: Any) -> bytes:
    """JSON bytes as Go's json.Marshal writes them: compact, UTF-8, HTML characters escaped."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # Safe on the whole document: these characters can only occur inside strings.
    return text.translate(_GO_ESCAPES).encode("utf-8", errors="surrogateescape")


def json_response(status: int, value: Any) -> web.Response:
    return web.Response(status=status, body=go_json(value), headers={"Content-Type": JSON_CONTENT_TYPE})


def empty_ok() -> web.Response:
    """Gin's `c.Status(200)`: no body, no content type."""
    return web.Response(status=200)


def page_not_found() -> web.Response:
    """Gin's answer for an unknown route or a wrong method (HandleMethodNotAllowed is off)."""
    return web.Response(status=404, body=b"404 page not found", headers={"Content-Type": "text/plain"})


def error_status(exc: errors.DFError, method: str) -> int:
    status = 500
    for cls in type(exc).__mro__:
        if cls in _STATUS_BY_CLASS:
            status = _STATUS_BY_CLASS[cls]
            break
    if method == "HEAD" and status == 422:
        return 404
    return status


def error_response(exc: errors.DFError, method: str) -> web.Response:
    status = error_status(exc, method)
    message = "Not Found" if status == 404 else exc.message
    return json_response(status, {"errors": message})


def rfc3339(moment: datetime) -> str:
    """Go's time.Time JSON form (RFC3339Nano): UTC as `Z`, fractional seconds without trailing zeros."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += "." + f"{utc.microsecond:06d}".rstrip("0")
    return text + "Z"


def http_date(moment: datetime) -> str:
    """Go's http.TimeFormat: `Mon, 02 Jan 2006 15:04:05 GMT`."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return format_datetime(utc.replace(microsecond=0), usegmt=True)


def quoted_etag(etag: str) -> str:
    """The backend ETag as S3 sends it, with its double quotes."""
    if not etag or etag.startswith('"') or etag.startswith('W/"'):
        return etag
    return f'"{etag}"'


def head_headers(meta: ObjectMeta) -> dict[str, str]:
    """HEAD's headers (spec §1.7); empty values are left out, as Gin's `ctx.Header(k, "")` does."""
    headers = {
        "Content-Length": str(meta.size),
        "Content-Type": meta.content_type,
        "ETag": quoted_etag(meta.etag),
        "Content-Disposition": meta.content_disposition,
        "Content-Encoding": meta.content_encoding,
        "Content-Language": meta.content_language,
        HEADER_DIGEST: meta.digest,
        HEADER_LAST_MODIFIED: http_date(meta.last_modified),
        HEADER_STORAGE_CLASS: meta.storage_class,
    }
    return {name: value for name, value in headers.items() if value}


def list_entry(meta: ObjectMeta) -> dict[str, Any]:
    """One `ObjectMetadata`: every field present, only the ones S3 listings carry filled in."""
    return {
        "Key": meta.key,
        "ContentDisposition": "",
        "ContentEncoding": "",
        "ContentLanguage": "",
        "ContentLength": meta.size,
        "ContentType": "",
        "ETag": quoted_etag(meta.etag),
        "Digest": "",
        "LastModifiedTime": rfc3339(meta.last_modified),
        "StorageClass": meta.storage_class or "STANDARD",
    }


def list_body(page: ListPage) -> dict[str, Any]:
    """`ObjectMetadatas`: CommonPrefixes is `[]` (not null) when empty, as the s3 adapter sends it."""
    return {
        "CommonPrefixes": list(page.common_prefixes),
        "Metadatas": [list_entry(meta) for meta in page.objects],
    }
