"""The I/O-free core shared by `Client` and `AsyncClient`: request builders, response parsers, the
status → exception table, and the multi-step operations as generator flows.

A flow yields `Request`s (and `Sleep`s between retries) and receives `Response`s; a failed send is
thrown into it as a `TransportError` at the yield. `_drive_sync`/`_drive_async` in the two clients
run the same flow, so retries and paging are written once.
"""

from __future__ import annotations

import http
import json
import random
import re
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar
from urllib.parse import quote, urlencode, urlsplit

from ._errors import APIError, InvalidRange, NotFound, ServerError, TransportError, UsageError, ValidationError
from ._models import (
    DEFAULT_LIST_LIMIT,
    MAX_LIST_LIMIT,
    MAX_REPLICAS_LIMIT,
    CommonPrefix,
    EndpointMetadata,
    ObjectMetadata,
    ObjectMetadatas,
    PutMode,
    RetryPolicy,
)
from ._multipart import MultipartBody, Source, multipart

T = TypeVar("T")

COPY_HEADER = "X-Dragonfly-Object-Operation"
META_DIGEST = "x-dragonfly-object-meta-digest"
META_LAST_MODIFIED = "x-dragonfly-object-meta-last-modified-time"
META_STORAGE_CLASS = "x-dragonfly-object-meta-storage-class"
RETRY_STATUSES = frozenset({502, 503, 504})  # upstream answers 500 for deterministic failures too
ERROR_BODY_LIMIT = 64 * 1024  # error bodies are short JSON; never read more than this
# Go's url.URL.String() leaves these unescaped in a path besides letters, digits and -_.~
_PATH_SAFE = "/$&+,:;=@"


@dataclass(frozen=True)
class Request:
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | MultipartBody | None = None
    bucket: str = ""  # for error messages
    key: str = ""
    stream: bool = False  # leave a 2xx body open for the caller
    idempotent: bool = True

    @property
    def retryable(self) -> bool:
        return self.idempotent and (not isinstance(self.body, MultipartBody) or self.body.replayable)


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]  # names lower-cased
    content: bytes = b""  # the whole body, except for a 2xx to a `stream` request
    raw: Any = None  # the open transport response of a streamed body; the core never touches it


@dataclass(frozen=True)
class Sleep:
    seconds: float


Step = Request | Sleep
Flow = Generator[Step, Response, T]


# -- URLs and validation ---------------------------------------------------------------------------


def parse_endpoint(endpoint: str) -> str:
    """`http://host:port` (a path prefix is kept) without the trailing slash."""
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UsageError(f"endpoint must be an http(s) URL, got {endpoint!r}")
    if parts.query or parts.fragment:
        raise UsageError(f"endpoint must not have a query or fragment: {endpoint!r}")
    return endpoint.rstrip("/")


def check_bucket(bucket: str) -> None:
    if not bucket or "/" in bucket or bucket in (".", ".."):
        raise UsageError(f"invalid bucket name {bucket!r}")


def check_key(key: str) -> None:
    """Keys travel in the URL path, where '.', '..' and empty segments would be rewritten on the way."""
    if not key:
        raise UsageError("object key must not be empty")
    segments = key.split("/")
    if segments[-1] == "":
        segments.pop()  # a trailing slash (a "directory" key such as `c/`) is kept as is
    if any(seg in ("", ".", "..") for seg in segments):
        raise UsageError(f"object key must not have empty, '.' or '..' segments: {key!r}")


def bucket_url(base: str, bucket: str) -> str:
    check_bucket(bucket)
    return f"{base}/buckets/{quote(bucket, safe='')}"


def object_url(base: str, bucket: str, key: str) -> str:
    check_key(key)
    return f"{bucket_url(base, bucket)}/objects/{quote(key, safe=_PATH_SAFE)}"


def range_header(offset: int, length: int | None) -> str:
    """`bytes=first-last` for a window, `bytes=first-` to the end, "" for the whole object."""
    if offset < 0:
        raise UsageError(f"offset must be >= 0, got {offset}")
    if length is None:
        return f"bytes={offset}-" if offset else ""
    if length <= 0:
        raise UsageError(f"length must be > 0, got {length}")
    return f"bytes={offset}-{offset + length - 1}"


# -- request builders ------------------------------------------------------------------------------


def build_endpoint_metadata(base: str) -> Request:
    return Request("GET", f"{base}/metadata")


def build_create_bucket(base: str, bucket: str) -> Request:
    # Not retried: a second POST after a lost answer would fail with "bucket exists".
    return Request("POST", bucket_url(base, bucket), bucket=bucket, idempotent=False)


def build_head_object(base: str, bucket: str, key: str) -> Request:
    return Request("HEAD", object_url(base, bucket, key), bucket=bucket, key=key)


def build_get_object(
    base: str, bucket: str, key: str, *, offset: int = 0, length: int | None = None, filter: str = ""
) -> Request:
    url = object_url(base, bucket, key)
    if filter:
        url += "?" + urlencode({"filter": filter}, quote_via=quote)
    rng = range_header(offset, length)
    headers = {"Range": rng} if rng else {}
    return Request("GET", url, headers, bucket=bucket, key=key, stream=True)


def build_put_object(
    base: str,
    bucket: str,
    key: str,
    source: Source,
    *,
    mode: int = PutMode.ASYNC_WRITE_BACK,
    max_replicas: int = 0,
    filter: str = "",
) -> Request:
    """The Go SDK's form: `mode` always, `filter` if set, `maxReplicas` if > 0, then the `file` part."""
    if mode not in (PutMode.ASYNC_WRITE_BACK, PutMode.WRITE_BACK):
        raise UsageError(f"mode must be 0 (async write-back) or 1 (write-back), got {mode}")
    if not 0 <= max_replicas <= MAX_REPLICAS_LIMIT:
        raise UsageError(f"max_replicas must be in 0..{MAX_REPLICAS_LIMIT}, got {max_replicas}")
    fields = [("mode", str(int(mode)))]
    if filter:
        fields.append(("filter", filter))
    if max_replicas:
        fields.append(("maxReplicas", str(max_replicas)))
    body = multipart(fields, file_key=key, source=source)
    return Request("PUT", object_url(base, bucket, key), _form_headers(body), body, bucket=bucket, key=key)


def build_copy_object(base: str, bucket: str, source_key: str, destination_key: str) -> Request:
    check_key(source_key)
    body = multipart([("source_object_key", source_key)])
    headers = {**_form_headers(body), COPY_HEADER: "copy"}
    url = object_url(base, bucket, destination_key)
    return Request("PUT", url, headers, body, bucket=bucket, key=destination_key)


def build_delete_object(base: str, bucket: str, key: str) -> Request:
    return Request("DELETE", object_url(base, bucket, key), bucket=bucket, key=key)


def list_limit(limit: int) -> int:
    """The Go SDK's rule: 0 means the default, more than the cap means the cap, negative is an error."""
    if limit < 0:
        raise UsageError(f"limit must be >= 0, got {limit}")
    return DEFAULT_LIST_LIMIT if limit == 0 else min(limit, MAX_LIST_LIMIT)


def build_list_objects(
    base: str, bucket: str, *, prefix: str = "", marker: str = "", delimiter: str = "", limit: int = 0
) -> Request:
    params = {"prefix": prefix, "marker": marker, "delimiter": delimiter}
    query = {k: v for k, v in params.items() if v}
    query["limit"] = str(list_limit(limit))
    url = f"{bucket_url(base, bucket)}/metadatas?{urlencode(query, quote_via=quote)}"
    return Request("GET", url, bucket=bucket)


def _form_headers(body: MultipartBody) -> dict[str, str]:
    headers = {"Content-Type": body.content_type}
    if body.length is not None:
        headers["Content-Length"] = str(body.length)
    return headers


# -- response parsers ------------------------------------------------------------------------------


def raise_for_error(request: Request, response: Response) -> None:
    """Map a non-2xx status to the exception tree (by status: HEAD answers carry no body)."""
    status = response.status
    if 200 <= status < 300:
        return
    cls: type[APIError]
    if status == 404:
        cls = NotFound
    elif status == 416:
        cls = InvalidRange
    elif status in (400, 422):
        cls = ValidationError
    elif status >= 500:
        cls = ServerError
    else:
        cls = APIError
    message, code = _error_text(response)
    raise cls(status, message, code=code, bucket=request.bucket, key=request.key)


def _error_text(response: Response) -> tuple[str, str]:
    """(message, code) from `{"errors": "...", "code": "..."}`, else the first line of the body, else
    the status phrase."""
    text = response.content.decode("utf-8", "replace").strip()
    code = ""
    try:
        doc = json.loads(text) if text else None
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        code = str(doc.get("code") or "")
        text = str(doc.get("errors") or doc.get("message") or "")
    elif isinstance(doc, str):
        text = doc
    line = text.splitlines()[0][:300] if text else ""
    if not line:
        try:
            line = http.HTTPStatus(response.status).phrase
        except ValueError:
            line = f"HTTP {response.status}"
    return line, code


def parse_object_metadata(key: str, headers: Mapping[str, str]) -> ObjectMetadata:
    """HEAD headers → ObjectMetadata. Content-Length is required, as in the Go SDK and JuiceFS."""
    try:
        size = int(headers["content-length"])
    except (KeyError, ValueError) as exc:
        raise TransportError("HEAD response without a valid Content-Length", key=key) from exc
    stamp = headers.get(META_LAST_MODIFIED) or headers.get("last-modified", "")
    return ObjectMetadata(
        key=key,
        content_length=size,
        etag=headers.get("etag", ""),
        content_type=headers.get("content-type", ""),
        digest=headers.get(META_DIGEST, ""),
        last_modified=parse_http_date(stamp),
        storage_class=headers.get(META_STORAGE_CLASS, ""),
        content_disposition=headers.get("content-disposition", ""),
        content_encoding=headers.get("content-encoding", ""),
        content_language=headers.get("content-language", ""),
    )


def parse_http_date(value: str) -> datetime | None:
    """`Mon, 02 Jan 2006 15:04:05 GMT` → aware UTC datetime; None when absent or unparsable."""
    if not value:
        return None
    try:
        stamp = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return stamp.replace(tzinfo=UTC) if stamp.tzinfo is None else stamp.astimezone(UTC)


_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\d)[Tt ](\d\d:\d\d:\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:\d\d)$")


def parse_rfc3339(value: str) -> datetime | None:
    """Go's time.Time JSON form, with up to nanosecond fractions (Python keeps microseconds)."""
    match = _RFC3339.match(value or "")
    if not match:
        return None
    day, clock, frac, zone = match.groups()
    text = f"{day}T{clock}" + (f".{(frac or '')[:6].ljust(6, '0')}" if frac else "")
    text += "+00:00" if zone in ("Z", "z") else zone
    try:
        return datetime.fromisoformat(text).astimezone(UTC)
    except ValueError:
        return None


def _malformed(what: str, bucket: str = "") -> TransportError:
    return TransportError(f"malformed {what} response from the server", bucket=bucket)


def parse_object_metadatas(content: bytes, *, bucket: str = "") -> ObjectMetadatas:
    """`{"CommonPrefixes": [...] | null, "Metadatas": [...]}`; a bare array (v2.1.0) is accepted too."""
    try:
        doc = json.loads(content)
    except ValueError as exc:
        raise _malformed("list", bucket) from exc
    if isinstance(doc, list):
        doc = {"Metadatas": doc}
    if not isinstance(doc, dict):
        raise _malformed("list", bucket)
    entries = doc.get("Metadatas") or []
    prefixes = doc.get("CommonPrefixes") or []
    if not isinstance(entries, list) or not isinstance(prefixes, list):
        raise _malformed("list", bucket)
    try:
        metas = tuple(_list_entry(entry) for entry in entries)
    except (TypeError, ValueError, KeyError, AttributeError) as exc:
        raise _malformed("list", bucket) from exc
    return ObjectMetadatas(metas, tuple(str(p) for p in prefixes if p))


def _list_entry(entry: dict[str, Any]) -> ObjectMetadata:
    return ObjectMetadata(
        key=str(entry["Key"]),
        content_length=int(entry.get("ContentLength") or 0),
        etag=str(entry.get("ETag") or ""),
        content_type=str(entry.get("ContentType") or ""),
        digest=str(entry.get("Digest") or ""),
        last_modified=parse_rfc3339(str(entry.get("LastModifiedTime") or "")),
        storage_class=str(entry.get("StorageClass") or ""),
        content_disposition=str(entry.get("ContentDisposition") or ""),
        content_encoding=str(entry.get("ContentEncoding") or ""),
        content_language=str(entry.get("ContentLanguage") or ""),
    )


def parse_endpoint_metadata(content: bytes) -> EndpointMetadata:
    try:
        doc = json.loads(content)
        return EndpointMetadata(name=str(doc["Name"]), region=str(doc["Region"]), endpoint=str(doc["Endpoint"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise _malformed("/metadata") from exc


# -- flows -----------------------------------------------------------------------------------------


def backoff_s(policy: RetryPolicy, attempt: int, rng: random.Random | None = None) -> float:
    """The delay before retry number `attempt` (0-based): exponential, capped, with up to 50% jitter."""
    delay = min(policy.backoff_max_s, policy.backoff_initial_s * (2**attempt))
    return delay * (0.5 + 0.5 * (rng or random).random())


def send_flow(request: Request, policy: RetryPolicy) -> Flow[Response]:
    """Send with retries (idempotent requests only), then raise for an error status."""
    attempts = max(policy.max_retries, 0) + 1 if request.retryable else 1
    for attempt in range(attempts):
        last = attempt == attempts - 1
        try:
            response = yield request
        except TransportError:
            if last:
                raise
            yield Sleep(backoff_s(policy, attempt))
            continue
        if response.status in RETRY_STATUSES and not last:
            yield Sleep(backoff_s(policy, attempt))
            continue
        raise_for_error(request, response)
        return response
    raise AssertionError("unreachable: the last attempt returns or raises")


def exists_flow(request: Request, policy: RetryPolicy) -> Flow[bool]:
    """HEAD: 2xx → True, 404 → False, anything else raises (the Go SDK's IsObjectExist)."""
    try:
        yield from send_flow(request, policy)
    except NotFound:
        return False
    return True


def list_all_flow(
    base: str, bucket: str, policy: RetryPolicy, *, prefix: str = "", delimiter: str = "", start_after: str = ""
) -> Generator[Step | ObjectMetadata | CommonPrefix, Response | None, None]:
    """Every object (and, with a delimiter, every common prefix) in key order, a page at a time.

    Pages by marker the way JuiceFS does: a page is full when it holds `limit` entries, and the next
    marker is the last entry of the page. Non-`Step` values it yields are results for the caller.
    """
    marker = start_after
    while True:
        request = build_list_objects(base, bucket, prefix=prefix, marker=marker, delimiter=delimiter)
        response = yield from send_flow(request, policy)
        page = parse_object_metadatas(response.content, bucket=bucket)
        entries: list[ObjectMetadata | CommonPrefix] = [*page.metadatas, *map(CommonPrefix, page.common_prefixes)]
        entries.sort(key=lambda entry: entry.key)  # code point order is UTF-8 byte order
        for entry in entries:
            if entry.key > marker or not marker:  # a server that re-emits the marker's prefix is skipped
                yield entry
        if len(entries) < DEFAULT_LIST_LIMIT or not entries:
            return
        if entries[-1].key <= marker:
            raise _malformed("list (keys out of order)", bucket)
        marker = entries[-1].key
