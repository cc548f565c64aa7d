"""A raw HTTP/1.1 client that puts on the wire what Go's net/http and JuiceFS's `dragonfly` backend do.

No HTTP library sits in between, so the requests carry exactly the bytes a Go client sends: paths
built with path.Join (plus the trailing-slash re-append) and escaped like url.URL.String(), queries
encoded like url.Values.Encode(), multipart bodies laid out like mime/multipart, an empty `Range:`
header on whole-object reads, `User-Agent: JuiceFS`.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, urlsplit

# Go's shouldEscape(c, encodePath) leaves these alone besides letters and digits.
_GO_PATH_SAFE = "-_.~$&+,/:;=@"
# url.QueryEscape leaves only these alone besides letters and digits (space becomes '+').
_GO_QUERY_SAFE = "-_.~"


def go_path_clean(path: str) -> str:
    """Go's path.Clean: collapse `//`, resolve `.` and `..`, drop a trailing slash."""
    rooted = path.startswith("/")
    out: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if out and out[-1] != "..":
                out.pop()
            elif not rooted:
                out.append("..")
            continue
        out.append(part)
    cleaned = ("/" if rooted else "") + "/".join(out)
    return cleaned or "."


def go_path_join(*elems: str) -> str:
    joined = "/".join(e for e in elems if e)
    return go_path_clean(joined) if joined else ""


def go_escape_path(path: str) -> str:
    """url.URL.String() for a host-relative path: `/` first, everything unsafe as uppercase %XX."""
    if not path.startswith("/"):
        path = "/" + path
    return quote(path.encode("utf-8"), safe=_GO_PATH_SAFE)


def go_query_encode(values: dict[str, str]) -> str:
    """url.Values.Encode(): keys sorted, QueryEscape with space as `+`."""
    return "&".join(
        f"{quote(k, safe=_GO_QUERY_SAFE).replace('%20', '+')}={quote(v, safe=_GO_QUERY_SAFE).replace('%20', '+')}"
        for k, v in sorted(values.items())
    )


def _go_quote_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"')


@dataclass
class MultipartBody:
    """mime/multipart.Writer: 60 hex boundary, first part without a leading CRLF, fields then file."""

    boundary: str = field(default_factory=lambda: secrets.token_hex(30))
    _parts: list[bytes] = field(default_factory=list)

    def field(self, name: str, value: str) -> MultipartBody:
        head = f'Content-Disposition: form-data; name="{_go_quote_escape(name)}"\r\n\r\n'
        self._parts.append(head.encode("utf-8") + value.encode("utf-8"))
        return self

    def file(self, name: str, filename: str, data: bytes) -> MultipartBody:
        head = (
            f'Content-Disposition: form-data; name="{_go_quote_escape(name)}"; '
            f'filename="{_go_quote_escape(filename)}"\r\nContent-Type: application/octet-stream\r\n\r\n'
        )
        self._parts.append(head.encode("utf-8") + data)
        return self

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def encode(self) -> bytes:
        out = bytearray()
        for i, part in enumerate(self._parts):
            out += (b"\r\n" if i else b"") + f"--{self.boundary}\r\n".encode() + part
        out += f"\r\n--{self.boundary}--\r\n".encode()
        return bytes(out)


@dataclass
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)


async def raw_request(
    endpoint: str,
    method: str,
    target: str,
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    timeout_s: float = 30.0,
) -> RawResponse:
    """Send one request exactly as given (request target already escaped) and read the answer."""
    return await asyncio.wait_for(_raw_request(endpoint, method, target, headers or [], body), timeout_s)


async def _raw_request(
    endpoint: str, method: str, target: str, headers: list[tuple[str, str]], body: bytes
) -> RawResponse:
    url = urlsplit(endpoint)
    assert url.hostname == "127.0.0.1", "tests talk to loopback only"
    reader, writer = await asyncio.open_connection(url.hostname, url.port, limit=1 << 20)
    try:
        head = f"{method} {target} HTTP/1.1\r\nHost: {url.netloc}\r\n"
        head += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
        writer.write(head.encode("utf-8") + body)
        await writer.drain()
        return await read_response(reader, method)
    finally:
        writer.close()


async def read_response(reader: asyncio.StreamReader, method: str) -> RawResponse:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = [(k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:] if line)]
    response = RawResponse(status, headers, b"")
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return response
    if (response.header("Transfer-Encoding") or "").lower() == "chunked":
        body = bytearray()
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            body += await reader.readexactly(size)
            await reader.readexactly(2)
            if size == 0:
                break
        response.body = bytes(body)
    elif (length := response.header("Content-Length")) is not None:
        response.body = await reader.readexactly(int(length))
    else:
        response.body = await reader.read()
    return response


class RequestFailedError(Exception):
    def __init__(self, response: RawResponse) -> None:
        super().__init__(f"bad response status {response.status}: {response.body[:200]!r}")
        self.response = response


class NotExistError(Exception):
    """os.ErrNotExist: what JuiceFS's Head returns for a 404."""


@dataclass(frozen=True)
class ListedObject:
    key: str
    size: int
    mtime: datetime
    is_dir: bool
    storage_class: str


class JuiceFSDragonfly:
    """JuiceFS's `dragonfly` object storage (pkg/object/dragonfly.go), request for request."""

    FILTER_S3 = "X-Amz-Algorithm&X-Amz-Credential&X-Amz-Date&X-Amz-Expires&X-Amz-SignedHeaders&X-Amz-Signature"

    def __init__(self, endpoint: str, bucket: str, *, mode: int = 1, max_replicas: int = 0) -> None:
        self.endpoint = endpoint
        self.bucket = "/" + bucket  # JuiceFS keeps the URL path's leading slash; path.Join drops it
        self.mode = mode
        self.max_replicas = max_replicas
        self.filter = ""
        self.requests = 0

    async def _do(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes = b"") -> RawResponse:
        self.requests += 1
        return await raw_request(self.endpoint, method, target, headers, body)

    def _object_path(self, key: str, *, reappend: bool = True) -> str:
        path = go_path_join("buckets", self.bucket, "objects", key)
        if reappend and key.endswith("/"):
            path += "/"
        return go_escape_path(path)

    def _headers(self, *extra: tuple[str, str]) -> list[tuple[str, str]]:
        return [("User-Agent", "JuiceFS"), *extra]

    async def init(self) -> None:
        """newDragonfly: GET /metadata, pick the filter by backend name."""
        response = await raw_request(self.endpoint, "GET", "/metadata", [("User-Agent", "Go-http-client/1.1")])
        if response.status // 100 != 2:
            raise RequestFailedError(response)
        name = response.json()["Name"]
        filters = {"s3": self.FILTER_S3, "oss": "Expires&Signature"}
        if name not in ("s3", "oss", "obs"):
            raise ValueError(f"unexpected dragonfly object storage name: {name}")
        self.filter = filters.get(name, self.FILTER_S3)

    async def create(self) -> None:
        try:
            await self.list("", "", "", 1)
            return
        except RequestFailedError:
            pass
        target = go_escape_path(go_path_join("buckets", self.bucket))
        response = await self._do("POST", target, self._headers(("Content-Length", "0"), ("Accept-Encoding", "gzip")))
        if response.status // 100 != 2:
            raise RequestFailedError(response)

    async def head(self, key: str) -> ListedObject:
        response = await self._do("HEAD", self._object_path(key), self._headers())
        if response.status == 404:
            raise NotExistError(key)
        if response.status // 100 != 2:
            raise RequestFailedError(response)
        size = int(response.header("Content-Length") or "")
        mtime = parsedate_to_datetime(response.header("X-Dragonfly-Object-Meta-Last-Modified-Time") or "")
        storage_class = response.header("X-Dragonfly-Object-Meta-Storage-Class") or ""
        return ListedObject(key, size, mtime, key.endswith("/"), storage_class)

    @staticmethod
    def get_range(off: int, limit: int) -> str:
        if limit > 0:
            return f"bytes={off}-{off + limit - 1}"
        if off > 0:
            return f"bytes={off}-"
        return ""

    async def get(self, key: str, off: int = 0, limit: int = -1) -> tuple[bytes, str]:
        """Body and the storage class header of the GET answer."""
        target = self._object_path(key)
        if self.filter:
            target += "?" + go_query_encode({"filter": self.filter})
        rng = self.get_range(off, limit)
        headers = self._headers(("Range", rng))
        if not rng:
            headers.append(("Accept-Encoding", "gzip"))  # Go's transport asks for gzip only without a Range
        response = await self._do("GET", target, headers)
        if response.status // 100 != 2:
            raise RequestFailedError(response)
        return response.body, response.header("X-Dragonfly-Object-Meta-Storage-Class") or ""

    async def put(self, key: str, data: bytes) -> None:
        form = MultipartBody().field("mode", str(self.mode))
        if self.filter:
            form.field("filter", self.filter)
        if self.max_replicas > 0:
            form.field("maxReplicas", str(self.max_replicas))
        form.file("file", go_path_base(key), data)
        body = form.encode()
        headers = self._headers(
            ("Content-Length", str(len(body))), ("Content-Type", form.content_type), ("Accept-Encoding", "gzip")
        )
        response = await self._do("PUT", self._object_path(key), headers, body)
        if response.status // 100 != 2:
            raise RequestFailedError(response)

    async def copy(self, dst: str, src: str) -> None:
        form = MultipartBody().field("source_object_key", src)
        body = form.encode()
        headers = self._headers(
            ("Content-Length", str(len(body))),
            ("Content-Type", form.content_type),
            ("X-Dragonfly-Object-Operation", "copy"),
            ("Accept-Encoding", "gzip"),
        )
        response = await self._do("PUT", self._object_path(dst, reappend=False), headers, body)
        if response.status // 100 != 2:
            raise RequestFailedError(response)

    async def delete(self, key: str) -> None:
        response = await self._do("DELETE", self._object_path(key), self._headers(("Accept-Encoding", "gzip")))
        if response.status // 100 != 2:
            raise RequestFailedError(response)

    async def list(
        self, prefix: str, marker: str, delimiter: str, limit: int
    ) -> tuple[list[ListedObject], bool, str]:
        """Objects (and common prefixes as dirs, re-sorted), hasMore, nextMarker: generateListResult."""
        limit = min(limit, 1000)
        query: dict[str, str] = {}
        if prefix:
            query["prefix"] = prefix
        if marker:
            query["marker"] = marker
        if delimiter:
            query["delimiter"] = delimiter
        if limit:
            query["limit"] = str(limit)
        target = go_escape_path(go_path_join("buckets", self.bucket, "metadatas"))
        encoded = go_query_encode(query)
        target += f"?{encoded}" if encoded else ""
        response = await self._do("GET", target, self._headers(("Accept-Encoding", "gzip")))
        if response.status // 100 != 2:
            raise RequestFailedError(response)
        doc = response.json()
        objs = [
            ListedObject(
                m["Key"],
                m["ContentLength"],
                datetime.fromisoformat(m["LastModifiedTime"]),
                m["Key"].endswith("/"),
                m["StorageClass"],
            )
            for m in doc["Metadatas"]
        ]
        if delimiter:
            epoch = datetime.fromtimestamp(0).astimezone()
            objs += [ListedObject(p, 0, epoch, True, "") for p in doc["CommonPrefixes"] or []]
            objs.sort(key=lambda o: o.key.encode("utf-8"))
        return objs, len(objs) == limit, (objs[-1].key if objs else "")


def go_path_base(key: str) -> str:
    """path.Base: last element after dropping trailing slashes; '/' for all-slash input."""
    trimmed = key.rstrip("/")
    if not trimmed:
        return "/" if key else "."
    return trimmed.rsplit("/", 1)[-1]


class WithPrefix:
    """JuiceFS's withPrefix wrapper: keys get `prefix` in front; list results lose it again."""

    def __init__(self, store: JuiceFSDragonfly, prefix: str) -> None:
        self.store = store
        self.prefix = prefix

    async def put(self, key: str, data: bytes) -> None:
        await self.store.put(self.prefix + key, data)

    async def get(self, key: str, off: int = 0, limit: int = -1) -> tuple[bytes, str]:
        return await self.store.get(self.prefix + key, off, limit)

    async def head(self, key: str) -> ListedObject:
        return await self.store.head(self.prefix + key)

    async def delete(self, key: str) -> None:
        await self.store.delete(self.prefix + key)

    async def list(
        self, prefix: str, marker: str, delimiter: str, limit: int
    ) -> tuple[builtins.list[ListedObject], bool, str]:
        objs, more, next_marker = await self.store.list(
            self.prefix + prefix, self.prefix + marker if marker else "", delimiter, limit
        )
        stripped = [
            ListedObject(o.key[len(self.prefix):], o.size, o.mtime, o.is_dir, o.storage_class) for o in objs
        ]
        return stripped, more, next_marker[len(self.prefix):] if next_marker else ""

    async def list_all(self, prefix: str, marker: str = "") -> builtins.list[ListedObject]:
        """sharding.go ListAll for stores without a native one: pages of 1000, keys must ascend."""
        out: list[ListedObject] = []
        last = marker
        for _ in range(10_000):
            objs, more, next_marker = await self.list(prefix, last, "", 10_000)
            for obj in objs:
                if last and obj.key.encode("utf-8") <= last.encode("utf-8"):
                    raise AssertionError(f"keys are out of order: {obj.key!r} after {last!r}")
                out.append(obj)
                last = obj.key
            if not more:
                return out
            last = next_marker or last
        raise AssertionError("list_all did not finish")
