"""Object-service value types (frozen). Storage and both edges speak these, never wire types."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime


class PutMode(enum.IntEnum):
    """Dragonfly's dfstore put modes (form field `mode`)."""

    ASYNC_WRITE_BACK = 0  # 200 once durable on local disk; origin written in the background, retried
    WRITE_BACK = 1  # origin written before 200
    EPHEMERAL = 2  # local cache only


@dataclass(frozen=True)
class Bucket:
    name: str
    created: datetime


@dataclass(frozen=True)
class ObjectMeta:
    """One object version as the origin describes it. `etag` is unquoted (hex MD5, or MD5-N for multipart)."""

    bucket: str
    key: str
    size: int
    etag: str
    last_modified: datetime  # timezone-aware UTC
    content_type: str = "application/octet-stream"
    content_disposition: str = ""
    content_encoding: str = ""
    content_language: str = ""
    cache_control: str = ""
    expires: str = ""
    storage_class: str = "STANDARD"
    user_meta: dict[str, str] = field(default_factory=dict)  # x-amz-meta-* without the prefix

    @property
    def digest(self) -> str:
        """dfstore's `digest` user metadata (`md5:<hex>`), empty when the object was written elsewhere."""
        return self.user_meta.get("digest", "")

    @property
    def version(self) -> str:
        """The version identity that names P2P tasks: ETag, else size+mtime."""
        return self.etag or f"{self.size}-{self.last_modified.timestamp():.6f}"


@dataclass(frozen=True)
class PutOptions:
    """Standard headers and user metadata kept with a written object."""

    content_type: str = "application/octet-stream"
    content_disposition: str = ""
    content_encoding: str = ""
    content_language: str = ""
    cache_control: str = ""
    expires: str = ""
    user_meta: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_meta(cls, meta: ObjectMeta) -> PutOptions:
        return cls(
            content_type=meta.content_type,
            content_disposition=meta.content_disposition,
            content_encoding=meta.content_encoding,
            content_language=meta.content_language,
            cache_control=meta.cache_control,
            expires=meta.expires,
            user_meta=dict(meta.user_meta),
        )


@dataclass(frozen=True)
class ListPage:
    """One page of a ListObjects-v1 style listing. Keys and common prefixes together are at most max_keys."""

    objects: list[ObjectMeta]
    common_prefixes: list[str]
    is_truncated: bool
    next_marker: str = ""
