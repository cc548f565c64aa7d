"""A streaming `multipart/form-data` reader for PUT bodies.

aiohttp's own reader rejects control bytes in a part's `filename`, which Go clients send as is
(JuiceFS's special-character key ends up in the filename), and `request.post()` would hold the
whole file in memory. This reader parses part headers leniently and hands out a part's body as
an async iterator of chunks of about `chunk_size` bytes, holding at most two chunks at a time.

Every framing error raises `MalformedMultipart` (an `InvalidArgument`, so the edge answers 422).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass

from aiohttp import StreamReader

from dfstore.errors import InvalidArgument
from p2p.types import MiB

MAX_HEADER_LINE = 16 * 1024
MAX_HEADER_LINES = 64

# `; name=value` or `; name="quoted \" value"` (Go's writer escapes `\` and `"` with a backslash).
_PARAM_RE = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)', re.DOTALL)
_UNESCAPE_RE = re.compile(r"\\(.)", re.DOTALL)
_BOUNDARY_RE = re.compile(r'boundary\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]+)', re.IGNORECASE)


class MalformedMultipart(InvalidArgument):
    pass


@dataclass(frozen=True)
class PartHeaders:
    name: str
    filename: str | None  # None for a plain value; Go treats only parts with a filename as files
    content_type: str

    @property
    def is_file(self) -> bool:
        return bool(self.filename)


def boundary_of(content_type: str) -> str | None:
    """The boundary of a `multipart/form-data` Content-Type, or None for any other type."""
    media, _, params = content_type.partition(";")
    if media.strip().lower() != "multipart/form-data":
        return None
    match = _BOUNDARY_RE.search(params)
    if not match:
        raise MalformedMultipart("multipart/form-data without a boundary")
    boundary = _unquote(match.group(1))
    if not 1 <= len(boundary) <= 70:
        raise MalformedMultipart("multipart boundary must be 1 to 70 characters")
    return boundary


def _unquote(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == '"' and value[-1] == '"':
        return _UNESCAPE_RE.sub(r"\1", value[1:-1])
    return value


def parse_disposition(value: str) -> tuple[str, dict[str, str]]:
    """`form-data; name="file"; filename="x"` -> ("form-data", {...}). Any byte is allowed in values."""
    kind, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for match in _PARAM_RE.finditer(";" + rest):
        params.setdefault(match.group(1).lower(), _unquote(match.group(2)))
    return kind.strip().lower(), params


class MultipartStream:
    """Reads parts one after the other: `next_part()`, then `read_value()`, `chunks()` or `drain()`."""

    def __init__(self, content: StreamReader, boundary: str, *, chunk_size: int = MiB) -> None:
        self._content = content
        self._delim = b"\r\n--" + boundary.encode("latin-1")
        self._chunk_size = chunk_size
        # A virtual CRLF in front lets the first boundary match the same delimiter as the others.
        self._buf = bytearray(b"\r\n")
        self._started = False
        self._in_body = False
        self._finished = False

    async def next_part(self) -> PartHeaders | None:
        """Skip whatever is left of the current part and parse the next part's headers; None at the end."""
        if self._finished:
            return None
        if self._in_body or not self._started:
            await self.drain()
            self._started = True
        await self._fill(2)
        if self._buf[:2] == b"--":
            self._finished = True  # the epilogue, if any, is left unread
            return None
        line = await self._read_line()
        if line.strip(b" \t"):
            raise MalformedMultipart("garbage after a multipart boundary")
        headers = await self._read_headers()
        self._in_body = True
        return headers

    async def read_value(self, limit: int) -> bytes:
        """The current part's whole body; raises MalformedMultipart past `limit` bytes."""
        out = bytearray()
        async for chunk in self.chunks():
            out += chunk
            if len(out) > limit:
                raise MalformedMultipart(f"form value larger than {limit} bytes")
        return bytes(out)

    async def drain(self) -> None:
        async for _ in self.chunks():
            pass

    async def chunks(self) -> AsyncIterator[bytes]:
        """The current part's body up to the next delimiter, in chunks of about `chunk_size`."""
        if not self._in_body and self._started:
            return
        delim = self._delim
        start = 0
        while True:
            idx = self._buf.find(delim, start)
            if idx >= 0:
                if idx:
                    yield self._take(idx)
                del self._buf[: len(delim)]
                self._in_body = False
                return
            safe = len(self._buf) - (len(delim) - 1)
            if safe >= self._chunk_size:
                yield self._take(safe)
                start = 0
            else:
                start = max(safe, 0)
            await self._read_more()

    def _take(self, length: int) -> bytes:
        with memoryview(self._buf) as view:
            data = bytes(view[:length])
        del self._buf[:length]
        return data

    async def _read_more(self) -> None:
        data = await self._content.read(self._chunk_size)
        if not data:
            raise MalformedMultipart("multipart body ended before its closing boundary")
        self._buf += data

    async def _fill(self, size: int) -> None:
        while len(self._buf) < size:
            await self._read_more()

    async def _read_line(self) -> bytes:
        start = 0
        while True:
            idx = self._buf.find(b"\r\n", start)
            if idx >= 0:
                line = bytes(self._buf[:idx])
                del self._buf[: idx + 2]
                return line
            if len(self._buf) > MAX_HEADER_LINE:
                raise MalformedMultipart("multipart header line too long")
            start = max(len(self._buf) - 1, 0)
            await self._read_more()

    async def _read_headers(self) -> PartHeaders:
        headers: dict[str, str] = {}
        for _ in range(MAX_HEADER_LINES):
            line = await self._read_line()
            if not line:
                break
            name, sep, value = line.partition(b":")
            if not sep or not name.strip():
                raise MalformedMultipart("malformed multipart part header")
            # Latin-1 keeps every byte; only the field name must be text, and it is ASCII in practice.
            headers.setdefault(name.strip().decode("latin-1").lower(), value.strip().decode("latin-1"))
        else:
            raise MalformedMultipart("too many multipart part headers")
        kind, params = parse_disposition(headers.get("content-disposition", ""))
        if kind != "form-data" or "name" not in params:
            raise MalformedMultipart("multipart part without a form-data name")
        filename = params.get("filename", params.get("filename*"))
        return PartHeaders(
            name=_latin1_to_utf8(params["name"]),
            filename=None if filename is None else _latin1_to_utf8(filename),
            content_type=headers.get("content-type", ""),
        )


def _latin1_to_utf8(value: str) -> str:
    """Header bytes were decoded as Latin-1; Go writes UTF-8, so re-decode (lenient: names are not keys)."""
    return value.encode("latin-1").decode("utf-8", errors="replace")
