"""Request parsing for the dfstore edge: path parameters, list query, Range and the PUT/copy forms.

Everything here raises dfstore.errors only, so the error middleware renders it (422 for bad input,
416 for a bad Range), mirroring where upstream Gin binding fails.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import parse_qs

from aiohttp import web

from dfstore.errors import InvalidArgument, InvalidRange
from dfstore.http.multipart import MalformedMultipart, MultipartStream, boundary_of
from dfstore.models import PutMode
from p2p.common.httprange import MalformedRange, RangeSpec, parse_range

DEFAULT_LIST_LIMIT = 1000
MAX_LIST_LIMIT = 1000
MAX_FORM_VALUE = 64 * 1024
MAX_URLENCODED_FORM = 1024 * 1024

_FILE_REQUIRED = "Key: 'PutObjectRequest.File' Error:Field validation for 'File' failed on the 'required' tag"
_UINT_RE = re.compile(r"^[0-9]+$")
_INT_RE = re.compile(r"^[+-]?[0-9]+$")


@dataclass(frozen=True)
class ObjectPath:
    bucket: str
    key: str


@dataclass(frozen=True)
class ListQuery:
    prefix: str
    marker: str
    delimiter: str
    limit: int


@dataclass(frozen=True)
class Upload:
    """A parsed PUT form: the text fields, and the `file` part's body still on the wire."""

    mode: PutMode
    filter: str  # accepted for wire compatibility; see EdgeSettings.default_filter
    max_replicas: int  # 0: the daemon's default
    content_type: str
    body: AsyncIterator[bytes]


def bucket_param(request: web.Request) -> str:
    return request.match_info["id"]


def object_path(request: web.Request) -> ObjectPath:
    """Bucket and key as Gin gives them: the catch-all minus one leading `/`, percent-decoded.

    Go clients build paths with path.Join, so `.`/`..` segments never come from them; such keys are
    refused here so that no origin ever has to interpret them.
    """
    bucket = request.match_info["id"]
    key = request.match_info["key"]
    if not key:
        raise InvalidArgument("object key must not be empty", bucket=bucket)
    if any(segment in (".", "..") for segment in key.split("/")):
        raise InvalidArgument("object key must not contain '.' or '..' segments", bucket=bucket, key=key)
    return ObjectPath(bucket, key)


def byte_range(request: web.Request) -> RangeSpec | None:
    """One `bytes=` range; an empty `Range:` header means none (JuiceFS always sends the header)."""
    try:
        return parse_range(request.headers.get("Range"))
    except MalformedRange as exc:
        raise InvalidRange(str(exc)) from exc


def list_query(request: web.Request) -> ListQuery:
    """Query of GetObjectMetadatas. `limit` absent or 0 means 1000; above 1000 is capped (S3's maximum)."""
    query = request.query
    raw_limit = query.get("limit", "")
    limit = 0
    if raw_limit:
        if not _INT_RE.match(raw_limit):
            raise InvalidArgument(f"limit must be an integer, got {raw_limit!r}")
        limit = int(raw_limit)
        if limit < 0:
            raise InvalidArgument("limit must not be negative")
    return ListQuery(
        prefix=query.get("prefix", ""),
        marker=query.get("marker", ""),
        delimiter=query.get("delimiter", ""),
        limit=min(limit, MAX_LIST_LIMIT) if limit else DEFAULT_LIST_LIMIT,
    )


def _parse_mode(raw: str) -> PutMode:
    if not raw:
        return PutMode.ASYNC_WRITE_BACK
    if not _UINT_RE.match(raw) or int(raw) > max(PutMode):
        raise InvalidArgument(f"mode must be one of 0, 1, 2, got {raw!r}")
    return PutMode(int(raw))


def _parse_max_replicas(raw: str) -> int:
    if not raw:
        return 0
    if not _INT_RE.match(raw):
        raise InvalidArgument(f"maxReplicas must be an integer, got {raw!r}")
    value = int(raw)
    if value != 0 and not 1 <= value <= 100:
        raise InvalidArgument(f"maxReplicas must be between 1 and 100, got {raw!r}")
    return value


_PUT_FIELDS = ("mode", "filter", "maxReplicas")


def _multipart(request: web.Request) -> MultipartStream | None:
    boundary = boundary_of(request.headers.get("Content-Type", ""))
    return None if boundary is None else MultipartStream(request.content, boundary)


async def open_upload(request: web.Request) -> Upload:
    """Read the PUT form up to the `file` part and validate its fields; the file body stays streaming.

    Go clients write the fields first and the file last. A field after the file can no longer change
    how the bytes were stored, so it fails the body (and with it the PUT) instead of being ignored.
    """
    stream = _multipart(request)
    if stream is None:
        raise InvalidArgument(_FILE_REQUIRED)
    fields: dict[str, str] = {}
    while True:
        part = await stream.next_part()
        if part is None:
            raise InvalidArgument(_FILE_REQUIRED)
        if part.name == "file" and part.is_file:
            break
        if part.name in _PUT_FIELDS and not part.is_file and part.name not in fields:
            fields[part.name] = await _text_value(stream)
    return Upload(
        mode=_parse_mode(fields.get("mode", "")),
        filter=fields.get("filter", ""),
        max_replicas=_parse_max_replicas(fields.get("maxReplicas", "")),
        content_type=part.content_type,
        body=_file_body(stream),
    )


async def _file_body(stream: MultipartStream) -> AsyncIterator[bytes]:
    async for chunk in stream.chunks():
        yield chunk
    # Read to the closing boundary so a truncated body never counts as a complete upload.
    while (part := await stream.next_part()) is not None:
        if part.name in _PUT_FIELDS and not part.is_file:
            raise MalformedMultipart(f"form field {part.name!r} must come before the file part")


async def _text_value(stream: MultipartStream) -> str:
    raw = await stream.read_value(MAX_FORM_VALUE)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedMultipart("form value is not valid UTF-8") from exc


async def copy_source(request: web.Request) -> str:
    """`source_object_key` from a multipart or URL-encoded copy form (Gin binds both)."""
    source = ""
    stream = _multipart(request)
    if stream is not None:
        while (part := await stream.next_part()) is not None:
            if part.name == "source_object_key" and not part.is_file and not source:
                source = await _text_value(stream)
    elif request.content_type == "application/x-www-form-urlencoded":
        form = parse_qs(await _read_small_body(request), keep_blank_values=True)
        source = form.get("source_object_key", [""])[0]
    if not source:
        raise InvalidArgument(
            "Key: 'CopyObjectRequest.SourceObjectKey' Error:Field validation for 'SourceObjectKey' "
            "failed on the 'required' tag"
        )
    return source


async def _read_small_body(request: web.Request) -> str:
    body = bytearray()
    while chunk := await request.content.read(64 * 1024):
        body += chunk
        if len(body) > MAX_URLENCODED_FORM:
            raise InvalidArgument(f"form body larger than {MAX_URLENCODED_FORM} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidArgument("form body is not valid UTF-8") from exc


__all__ = [
    "ListQuery",
    "ObjectPath",
    "Upload",
    "bucket_param",
    "byte_range",
    "copy_source",
    "list_query",
    "object_path",
    "open_upload",
]
