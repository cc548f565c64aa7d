"""The origin-store seam. `FilesystemBackend` (a local directory) and `S3Backend` (any S3 endpoint)
implement `Backend`; `BackendSource` adapts one to p2p's `Source` for back-to-source reads.

Contract: every method raises only dfstore.errors (NoSuchBucket, NoSuchKey, BackendError, ...).
Bodies stream; no method holds a whole object in memory.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Protocol

from dfstore.config import OriginSection
from dfstore.models import Bucket, ListPage, ObjectMeta, PutOptions


class Backend(Protocol):
    name: str  # reported by dfstore's /metadata; "s3" for every backend so JuiceFS accepts it

    async def list_buckets(self) -> list[Bucket]: ...

    async def create_bucket(self, bucket: str) -> None: ...

    async def head_bucket(self, bucket: str) -> None: ...

    def check_key(self, bucket: str, key: str) -> None:
        """Raise InvalidBucketName / InvalidArgument / KeyTooLongError when this origin cannot hold the
        key (no I/O), so a write-back PUT is refused up front rather than failing in the background."""
        ...

    async def delete_bucket(self, bucket: str) -> None: ...

    async def head_object(self, bucket: str, key: str, *, also: Callable[[], None] | None = None) -> ObjectMeta:
        """The object's metadata. `also` is a short blocking call that never raises (the cache's
        check of its copy, see p2p.daemon.openfiles.FileProbe): run it at most once, in the worker
        thread that does the backend's own blocking work, after that work, whatever its outcome,
        so that a cached read costs one thread hop in all. (Skipping it is allowed, e.g. when the
        arguments are refused before any I/O: the caller then does its check itself.)"""
        ...

    def read_object(
        self, bucket: str, key: str, offset: int, length: int, *, etag: str | None = None
    ) -> AsyncIterator[bytes]:
        """Stream `length` bytes from `offset` (BackendError on a short read). With `etag`, raise
        PreconditionFailed when the object is no longer that version, so a download that spans an
        overwrite fails instead of mixing two versions."""
        ...

    async def put_object(
        self, bucket: str, key: str, path: Path, options: PutOptions, *, etag: str | None = None
    ) -> ObjectMeta:
        """Write the file at `path` as the object (the caller keeps the file).

        `etag`, when the caller already knows it (the MD5 it computed while spooling, or a multipart
        `md5-N`), is kept by origins that store their own ETags (the directory origin, which then
        skips hashing the file again); S3 origins compute theirs and ignore it.
        """
        ...

    async def copy_object(
        self, bucket: str, key: str, src_bucket: str, src_key: str, options: PutOptions | None
    ) -> ObjectMeta:
        """Server-side copy; `options` None keeps the source's metadata."""
        ...

    async def delete_object(self, bucket: str, key: str) -> None:
        """Idempotent: deleting a missing key succeeds."""
        ...

    async def list_objects(
        self, bucket: str, *, prefix: str = "", marker: str = "", delimiter: str = "", max_keys: int = 1000
    ) -> ListPage: ...

    async def close(self) -> None: ...


def build_backend(origin: OriginSection, home: Path) -> Backend:
    """The origin store a config names: `fs` (default root `<home>/origin`) or `s3`."""
    # imported here so a directory origin never loads boto3
    if origin.kind == "s3":
        from dfstore.core.s3 import S3Backend

        return S3Backend(
            origin.endpoint,
            origin.region,
            origin.access_key.get_secret_value() if origin.access_key else None,
            origin.secret_key.get_secret_value() if origin.secret_key else None,
        )
    from dfstore.core.fs import FilesystemBackend

    return FilesystemBackend(Path(origin.path).expanduser() if origin.path else Path(home) / "origin")
