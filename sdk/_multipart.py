"""multipart/form-data bodies described without I/O: the form fields and the file part's header are
bytes built up front, the file data is a `Source` the send layer streams, so the whole object is never
in memory and the Content-Length is known whenever the source's size is."""

from __future__ import annotations

import io
import os
import secrets
from collections.abc import AsyncIterable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ._errors import UsageError

# What put_object accepts: bytes, a binary file object, or an iterable of bytes chunks (async ones
# only on the AsyncClient).
PutData = bytes | bytearray | memoryview | BinaryIO | Iterable[bytes] | AsyncIterable[bytes]


@dataclass(frozen=True)
class BytesSource:
    data: bytes | bytearray | memoryview

    @property
    def size(self) -> int:
        return memoryview(self.data).nbytes


@dataclass(frozen=True)
class PathSource:
    """A file on disk, opened by the send layer for each attempt (so it can be replayed)."""

    path: Path
    size: int


@dataclass(frozen=True)
class FileSource:
    """An open binary file. `start` is its position when seekable (replayable), else None."""

    fileobj: BinaryIO
    size: int | None
    start: int | None


@dataclass(frozen=True)
class IterSource:
    """Chunks from an iterator (sync or async); read once, so never retried. `size` if the caller knows it."""

    chunks: Iterable[bytes] | AsyncIterable[bytes]
    size: int | None


Source = BytesSource | PathSource | FileSource | IterSource


def source_of(data: PutData, size: int | None = None) -> Source:
    """Classify what a caller passed to put_object. Sizes of files come from fstat/seek, not reads."""
    if isinstance(data, bytes | bytearray | memoryview):
        return BytesSource(data)
    if hasattr(data, "read"):
        fileobj: BinaryIO = data  # type: ignore[assignment]
        return FileSource(fileobj, *(_file_extent(fileobj, size)))
    if isinstance(data, str | os.PathLike):
        raise UsageError("put_object takes bytes, a file object or an iterable; use upload_file for paths")
    if isinstance(data, Iterable | AsyncIterable):
        return IterSource(data, size)  # type: ignore[arg-type]  # bytes-likes were taken above
    raise UsageError(f"cannot upload a {type(data).__name__}")


def _file_extent(fileobj: BinaryIO, size: int | None) -> tuple[int | None, int | None]:
    """(bytes left to read, start position) for a file object; (size, None) when it cannot seek."""
    try:
        if not fileobj.seekable():
            return size, None
        start = fileobj.tell()
        end = fileobj.seek(0, io.SEEK_END)
        fileobj.seek(start)
    except (OSError, ValueError):
        return size, None
    left = end - start
    return (left if size is None else min(size, left)), start


def replayable(source: Source) -> bool:
    """Can the same bytes be sent again on a retry?"""
    if isinstance(source, FileSource):
        return source.start is not None
    return not isinstance(source, IterSource)


@dataclass(frozen=True)
class MultipartBody:
    """`head` + the source's bytes + `tail`, ready to stream."""

    content_type: str
    head: bytes
    source: Source | None
    tail: bytes

    @property
    def length(self) -> int | None:
        if self.source is None:
            return len(self.head) + len(self.tail)
        size = self.source.size
        return None if size is None else len(self.head) + size + len(self.tail)

    @property
    def replayable(self) -> bool:
        return self.source is None or replayable(self.source)


def _field(boundary: str, name: str, value: str) -> bytes:
    return (f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n').encode()


def _filename(key: str) -> str:
    """The file part's filename: the key's last segment, as Go clients send it, minus the characters
    that would break a header line (quotes and backslashes escaped, control characters dropped)."""
    base = key.rstrip("/").rsplit("/", 1)[-1] or "file"
    base = "".join(ch for ch in base if ch >= " " and ch != "\x7f")
    return base.replace("\\", "\\\\").replace('"', '\\"') or "file"


def multipart(fields: list[tuple[str, str]], *, file_key: str = "", source: Source | None = None) -> MultipartBody:
    """Form fields in order, then (if `source`) the file part named `file`, last so a server can stream it."""
    boundary = secrets.token_hex(16)
    head = b"".join(_field(boundary, name, value) for name, value in fields)
    tail = f"--{boundary}--\r\n".encode()
    if source is not None:
        head += (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{_filename(file_key)}"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        tail = b"\r\n" + tail
    return MultipartBody(f"multipart/form-data; boundary={boundary}", head, source, tail)
