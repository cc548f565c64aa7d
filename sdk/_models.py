"""Typed results and options of the dfstore SDK (frozen dataclasses, no I/O)."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

DEFAULT_ENDPOINT = "http://127.0.0.1:65004"
DEFAULT_LIST_LIMIT = 1000  # the Go SDK's default and cap for one page
MAX_LIST_LIMIT = 1000
MAX_REPLICAS_LIMIT = 100
CHUNK_SIZE = 1024 * 1024  # bulk data moves in 1 MiB chunks

Progress = Callable[[int], None]  # called with the number of bytes just transferred


class PutMode(enum.IntEnum):
    """Dragonfly's put modes (form field `mode`). Ephemeral (2) is for peers only, as in the Go SDK."""

    ASYNC_WRITE_BACK = 0  # answered once the daemon holds the data; the origin is written in the background
    WRITE_BACK = 1  # answered after the origin write


@dataclass(frozen=True)
class Timeout:
    """Seconds to wait for a connection and between two reads (not for a whole transfer)."""

    connect_s: float = 10.0
    read_s: float = 60.0


@dataclass(frozen=True)
class RetryPolicy:
    """Retries for idempotent calls on transport errors and 502/503/504. Delays grow as
    `backoff_initial_s * 2**attempt`, capped at `backoff_max_s`, with up to 50% jitter."""

    max_retries: int = 2
    backoff_initial_s: float = 0.2
    backoff_max_s: float = 2.0


@dataclass(frozen=True)
class ObjectMetadata:
    """One object as HEAD or a list entry describes it. List entries fill only key, size, ETag,
    last-modified and storage class (the server's shape); the rest are ""."""

    key: str
    content_length: int
    etag: str = ""
    content_type: str = ""
    digest: str = ""  # `md5:<hex>` when written through dfstore
    last_modified: datetime | None = None  # timezone-aware UTC
    storage_class: str = ""
    content_disposition: str = ""
    content_encoding: str = ""
    content_language: str = ""


@dataclass(frozen=True)
class CommonPrefix:
    """A "directory" of a delimited listing, e.g. `a/` for keys `a/x`, `a/y`."""

    key: str


@dataclass(frozen=True)
class ObjectMetadatas:
    """One page of `GET /buckets/{b}/metadatas`. There is no truncation flag on the wire: a page is full
    (more may follow) when it holds `limit` entries, prefixes and objects together."""

    metadatas: tuple[ObjectMetadata, ...]
    common_prefixes: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.metadatas) + len(self.common_prefixes)


@dataclass(frozen=True)
class EndpointMetadata:
    """`GET /metadata`: which origin the daemon stores to (`name` is s3, oss or obs)."""

    name: str
    region: str
    endpoint: str
