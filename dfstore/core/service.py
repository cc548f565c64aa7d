"""ObjectService: buckets, objects and the put modes, shared by the dfstore HTTP edge and the S3 gateway.

Reads: HEAD at the origin first (it is the source of truth: a deleted object is 404 even while
cached, an overwritten one is a new task), then the bytes through the daemon's TaskManager, named
by `dfs://bucket/key` and the origin's version. Writes: the body is spooled to a local file (MD5
and size on the way), imported into the cache so the next GET is a hit, then per mode:

- WRITE_BACK: written to the origin before returning;
- ASYNC_WRITE_BACK: journaled durably (WriteBackQueue) and written to the origin in the background;
- EPHEMERAL: cache only (HEAD/GET through the origin answer 404, as upstream).

Read-your-writes on this node: while a write waits in the journal, head/get/list/copy see it.

Writer as a P2P source: once the origin holds the written version (WRITE_BACK: before the 200;
ASYNC_WRITE_BACK: when the journal's upload lands with the same version) and the cache holds it in
full, the `offerer` (the daemon's P2PNode) announces the task to its scheduler in the background,
so other peers read it from this daemon instead of the origin. EPHEMERAL writes are never offered:
readers elsewhere get 404 from the origin and compute no task id for them.

The service does not own its collaborators: whoever built the backend, task manager and journal
closes them; `close()` only stops the replications this service started.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import dataclasses
import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from dfstore.core.backend import Backend
from dfstore.core.fetch import ObjectReader, map_p2p_errors
from dfstore.core.keys import check_bucket
from dfstore.core.listing import clamp_max_keys
from dfstore.core.source import BackendSource, object_url
from dfstore.core.spool import spool_body
from dfstore.core.writeback import PendingEntry, WriteBackQueue
from dfstore.errors import (
    BackendError,
    BadDigest,
    BucketNotEmpty,
    InvalidArgument,
    InvalidRange,
    NoSuchBucket,
)
from dfstore.models import Bucket, ListPage, ObjectMeta, PutMode, PutOptions
from p2p.common.httprange import RangeNotSatisfiable, RangeSpec
from p2p.common.ids import task_id as make_task_id
from p2p.daemon.tasks import TaskManager
from p2p.errors import P2PError
from p2p.types import MiB, SourceStat, TaskID

log = logging.getLogger(__name__)


class Replicator(Protocol):
    """Copies a freshly written object to seed peers (dfstore-wire.md §2.2)."""

    async def replicate(self, meta: ObjectMeta, path: Path, max_replicas: int) -> None: ...


class Offerer(Protocol):
    """Announces a whole task this daemon holds to the P2P scheduler (P2PNode.offer): in the
    background, never raising and never waiting."""

    def offer(self, task_id: TaskID, url: str, stat: SourceStat) -> None: ...


def _check_content_md5(content_md5: str, actual: bytes, bucket: str, key: str) -> None:
    """`Content-MD5` is base64 of the digest (S3); a 32-char hex digest is accepted too."""
    value = content_md5.strip()
    try:
        expected = bytes.fromhex(value) if len(value) == 32 else base64.b64decode(value, validate=True)
    except (ValueError, binascii.Error):
        raise InvalidArgument("Content-MD5 is not a base64 MD5 digest", bucket=bucket, key=key) from None
    if len(expected) != 16:
        raise InvalidArgument("Content-MD5 is not a base64 MD5 digest", bucket=bucket, key=key)
    if expected != actual:
        raise BadDigest("the Content-MD5 you specified did not match what we received", bucket=bucket, key=key)


def _describes(meta: ObjectMeta, size: int, etag: str) -> bool:
    """Whether the origin's answer after our write can describe our bytes: same size, and not two
    different MD5s (another writer's version seen by the HEAD after an S3 PUT). An ETag that is not
    a plain MD5 (multipart `md5-N`, or an origin's own kind) is taken as ours."""
    return meta.size == size and (meta.etag == etag or not (_is_md5(meta.etag) and _is_md5(etag)))


def _is_md5(etag: str) -> bool:
    return len(etag) == 32 and all(c in "0123456789abcdef" for c in etag.lower())


def _stat_of(meta: ObjectMeta) -> SourceStat:
    return SourceStat(size=meta.size, version=meta.version, content_type=meta.content_type)


class ObjectService:
    def __init__(
        self,
        backend: Backend,
        tasks: TaskManager,
        *,
        spool_dir: Path,
        writeback: WriteBackQueue,
        replicator: Replicator | None = None,
        offerer: Offerer | None = None,
    ) -> None:
        self.backend = backend
        self.tasks = tasks
        self.spool_dir = Path(spool_dir)
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        # Left by a previous process that died mid-PUT: nothing acknowledged refers to them.
        # (Runs once at start-up, before any request.)
        for stale in self.spool_dir.iterdir():
            if stale.suffix in (".spool", ".replica"):
                stale.unlink(missing_ok=True)
        self.writeback = writeback
        self.replicator = replicator
        self.offerer = offerer
        if offerer is not None:
            writeback.on_landed = self._landed
        self._replications: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for job in list(self._replications):
            job.cancel()
        for job in list(self._replications):
            with contextlib.suppress(asyncio.CancelledError):
                await job

    # ---- buckets -------------------------------------------------------------------------

    async def list_buckets(self) -> list[Bucket]:
        return await self.backend.list_buckets()

    async def create_bucket(self, bucket: str) -> None:
        check_bucket(bucket)
        await self.backend.create_bucket(bucket)

    async def head_bucket(self, bucket: str) -> None:
        check_bucket(bucket)
        await self.backend.head_bucket(bucket)

    async def delete_bucket(self, bucket: str) -> None:
        check_bucket(bucket)
        if self.writeback.pending_in(bucket):
            raise BucketNotEmpty(f"bucket {bucket!r} has writes waiting for the origin", bucket=bucket)
        await self.backend.delete_bucket(bucket)

    # ---- reads ---------------------------------------------------------------------------

    async def head_object(self, bucket: str, key: str) -> ObjectMeta:
        self.backend.check_key(bucket, key)
        entry = self.writeback.pending(bucket, key)
        if entry is not None:
            return entry.meta
        return await self.backend.head_object(bucket, key)

    async def get_object(self, bucket: str, key: str, *, byte_range: RangeSpec | None = None) -> ObjectReader:
        self.backend.check_key(bucket, key)
        url = object_url(bucket, key)
        entry = self.writeback.pending(bucket, key)
        # The cache checks its copy of the last version it served in the origin HEAD's thread hop,
        # so a cached read needs no hop of its own (the HEAD still decides which version is read).
        probe = self.tasks.probe(url) if entry is None else None
        try:
            meta = entry.meta if entry is not None else await self.backend.head_object(bucket, key, also=probe)
            resolved = None
            if byte_range is not None:
                try:
                    resolved = byte_range.resolve(meta.size)
                except RangeNotSatisfiable:
                    raise InvalidRange(
                        f"range not satisfiable for an object of {meta.size} bytes",
                        size=meta.size, bucket=bucket, key=key,
                    ) from None
            self._pin(url, meta.etag)
            with map_p2p_errors(bucket, key):
                reader = await self.tasks.open(url, stat=_stat_of(meta), byte_range=resolved, probe=probe)
        finally:
            if probe is not None:
                probe.abandon()  # a no-op once the read took its file
        return ObjectReader(meta, resolved, reader)

    def _pin(self, url: str, etag: str) -> None:
        """Tell our back-to-source which version this read is for (see BackendSource.pin)."""
        try:
            source = self.tasks.sources.for_url(url)
        except P2PError:
            return
        if isinstance(source, BackendSource):
            source.pin(url, etag)

    async def list_objects(
        self, bucket: str, *, prefix: str = "", marker: str = "", delimiter: str = "", max_keys: int = 1000
    ) -> ListPage:
        check_bucket(bucket)
        page = await self.backend.list_objects(
            bucket, prefix=prefix, marker=marker, delimiter=delimiter, max_keys=max_keys
        )
        pending = self.writeback.pending_in(bucket, prefix)
        return _merge_pending(page, pending, prefix, marker, delimiter, max_keys) if pending else page

    # ---- writes --------------------------------------------------------------------------

    async def put_object(
        self,
        bucket: str,
        key: str,
        body: AsyncIterator[bytes],
        *,
        mode: PutMode,
        options: PutOptions,
        content_md5: str | None = None,
        max_replicas: int = 0,
        body_meta: Callable[[], Mapping[str, str]] | None = None,
    ) -> ObjectMeta:
        """`body_meta`: user metadata only the whole body can tell (the S3 gateway's verified
        x-amz-checksum-*), asked for once, after the body is spooled and before it is committed."""
        await self._check_target(bucket, key, mode)
        spool = self.spool_dir / f"{uuid.uuid4().hex}.spool"
        try:
            digest, size = await spool_body(body, spool)
            if content_md5 is not None:
                _check_content_md5(content_md5, digest.digest(), bucket, key)
            etag = digest.hexdigest()
            late = body_meta() if body_meta is not None else {}
            options = dataclasses.replace(options, user_meta={**options.user_meta, **late, "digest": f"md5:{etag}"})
            return await self._commit(bucket, key, spool, size, etag, mode, options, max_replicas, own_file=True)
        finally:
            await asyncio.to_thread(spool.unlink, True)

    async def put_object_file(
        self,
        bucket: str,
        key: str,
        path: Path,
        *,
        mode: PutMode,
        options: PutOptions,
        etag: str | None = None,
        max_replicas: int = 0,
    ) -> ObjectMeta:
        """Like put_object, from a file the caller keeps (the gateway's completed multipart upload)."""
        await self._check_target(bucket, key, mode)
        size = (await asyncio.to_thread(os.stat, path)).st_size
        if etag is None:
            etag = await asyncio.to_thread(_md5_file, path)
            options = dataclasses.replace(options, user_meta={**options.user_meta, "digest": f"md5:{etag}"})
        return await self._commit(bucket, key, path, size, etag, mode, options, max_replicas, own_file=False)

    async def copy_object(
        self, bucket: str, key: str, src_bucket: str, src_key: str, *, options: PutOptions | None = None
    ) -> ObjectMeta:
        self.backend.check_key(bucket, key)
        self.backend.check_key(src_bucket, src_key)
        onto_itself = (bucket, key) == (src_bucket, src_key)
        if not onto_itself:
            await self.writeback.supersede(bucket, key)  # an older pending write must not land after this
        async with self.writeback.using(src_bucket, src_key) as pending:
            if pending is not None:
                # the source has not reached the origin yet: write our copy of its bytes there
                meta = await self.backend.put_object(
                    bucket, key, pending.data, options or pending.options, etag=pending.meta.etag
                )
                if onto_itself:
                    self.writeback.discard(pending)  # written just now, with the new metadata
                return meta
        meta = await self.backend.copy_object(bucket, key, src_bucket, src_key, options)
        await self._import_copy(meta, src_bucket, src_key)
        return meta

    async def _import_copy(self, meta: ObjectMeta, src_bucket: str, src_key: str) -> None:
        """A copy whose ETag is the MD5 of a source version this daemon holds in full has those very
        bytes: import them under the copy's version (a hard link) and offer it, as if written here."""
        if not _is_md5(meta.etag):
            return
        source = self.tasks.store.get(make_task_id(object_url(src_bucket, src_key), meta.version))
        if source is None or not source.done or source.byte_range is not None or source.content_length != meta.size:
            return
        if (meta.bucket, meta.key) == (src_bucket, src_key):
            return  # a copy onto itself (new metadata, same bytes and version): the task is this one
        imported = await self._import(meta, source.data_path, required=False)
        if imported is not None:
            self._offer(meta, imported)

    async def delete_object(self, bucket: str, key: str) -> None:
        self.backend.check_key(bucket, key)
        await self.writeback.supersede(bucket, key)
        await self.backend.delete_object(bucket, key)

    # ---- put internals -------------------------------------------------------------------

    async def _check_target(self, bucket: str, key: str, mode: PutMode) -> None:
        self.backend.check_key(bucket, key)
        if mode == PutMode.EPHEMERAL:
            return
        try:
            await self.backend.head_bucket(bucket)
        except NoSuchBucket:
            raise
        except BackendError:
            if mode != PutMode.ASYNC_WRITE_BACK:
                raise
            # the origin is down: the journal holds the write until it is back

    async def _commit(
        self,
        bucket: str,
        key: str,
        path: Path,
        size: int,
        etag: str,
        mode: PutMode,
        options: PutOptions,
        max_replicas: int,
        *,
        own_file: bool,
    ) -> ObjectMeta:
        local = ObjectMeta(
            bucket=bucket,
            key=key,
            size=size,
            etag=etag,
            last_modified=datetime.now(UTC),
            **{f.name: getattr(options, f.name) for f in dataclasses.fields(PutOptions)},
        )
        if mode == PutMode.WRITE_BACK:
            await self.writeback.supersede(bucket, key)  # an older pending write must not land after this
            meta = await self.backend.put_object(bucket, key, path, options, etag=etag)
        else:
            meta = local
        imported = await self._import(meta, path, required=mode == PutMode.EPHEMERAL)
        if mode == PutMode.WRITE_BACK and imported is not None and _describes(meta, size, etag):
            self._offer(meta, imported)  # the origin has this very version: readers compute this id
        if mode == PutMode.ASYNC_WRITE_BACK:
            await self.writeback.enqueue(local, options, path, move=own_file)
        if mode != PutMode.EPHEMERAL and max_replicas > 0 and self.replicator is not None:
            await self._start_replication(meta, path, max_replicas)
        return meta

    async def _import(self, meta: ObjectMeta, path: Path, *, required: bool) -> TaskID | None:
        try:
            with map_p2p_errors(meta.bucket, meta.key):
                return await self.tasks.import_file(object_url(meta.bucket, meta.key), _stat_of(meta), path)
        except Exception as exc:
            if required:
                raise
            # the origin (or the journal) has the object; the next GET just misses the cache
            log.warning("bucket=%s key=%r not imported into the cache: %s", meta.bucket, meta.key, exc)
            return None

    def _offer(self, meta: ObjectMeta, task_id: TaskID) -> None:
        """Offer the cached task of `meta` (the version now on the origin) to other peers."""
        if self.offerer is None:
            return
        task = self.tasks.store.get(task_id)
        if task is None or not task.done:
            return  # evicted (or never imported): nothing to hand out
        self.offerer.offer(task_id, object_url(meta.bucket, meta.key), _stat_of(meta))

    def _landed(self, local: ObjectMeta, origin: ObjectMeta) -> None:
        """The journal wrote an AsyncWriteBack object to the origin: offer the copy imported at PUT
        time, if the origin names it with the version that copy's task id was computed from."""
        if origin.version != local.version or not _describes(origin, local.size, local.etag):
            log.debug(
                "bucket=%s key=%r not offered: the origin stored version %s, the cache holds %s",
                local.bucket, local.key, origin.version, local.version,
            )
            return
        self._offer(local, make_task_id(object_url(local.bucket, local.key), local.version))

    async def _start_replication(self, meta: ObjectMeta, path: Path, max_replicas: int) -> None:
        assert self.replicator is not None
        copy = self.spool_dir / f"{uuid.uuid4().hex}.replica"
        try:
            await asyncio.to_thread(os.link, path, copy)  # the replication outlives the spool file
        except OSError as exc:
            log.warning("bucket=%s key=%r not replicated: %s", meta.bucket, meta.key, exc)
            return
        job = asyncio.create_task(self._replicate(meta, copy, max_replicas), name=f"replicate-{meta.key[:40]}")
        self._replications.add(job)
        job.add_done_callback(self._replications.discard)

    async def _replicate(self, meta: ObjectMeta, path: Path, max_replicas: int) -> None:
        assert self.replicator is not None
        try:
            await self.replicator.replicate(meta, path, max_replicas)
        except (P2PError, OSError) as exc:
            log.warning("bucket=%s key=%r replication failed: %s", meta.bucket, meta.key, exc)
        finally:
            await asyncio.to_thread(path.unlink, True)


def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(MiB):
            digest.update(chunk)
    return digest.hexdigest()


def _merge_pending(
    page: ListPage, pending: list[PendingEntry], prefix: str, marker: str, delimiter: str, max_keys: int
) -> ListPage:
    """Add journaled keys to an origin page, keeping S3 v1 paging exact.

    The first N entries after `marker` of origin + pending lie within the origin's first N and the
    pending keys, so merging one origin page with every pending key and cutting at N is exact.
    """
    limit = clamp_max_keys(max_keys)
    entries: dict[str, ObjectMeta | None] = {o.key: o for o in page.objects}
    entries.update({p: None for p in page.common_prefixes})
    marker_b = marker.encode()
    for entry in pending:
        key = entry.meta.key
        if key.encode() <= marker_b:
            continue
        cut = key.find(delimiter, len(prefix)) if delimiter else -1
        if cut >= 0:
            common = key[: cut + len(delimiter)]
            if common.encode() > marker_b:
                entries.setdefault(common, None)
        else:
            entries[key] = entry.meta
    names = sorted(entries, key=str.encode)
    kept = names[:limit]
    truncated = page.is_truncated or len(names) > limit
    return ListPage(
        objects=[m for n in kept if (m := entries[n]) is not None],
        common_prefixes=[n for n in kept if entries[n] is None],
        is_truncated=truncated,
        next_marker=kept[-1] if truncated and kept else "",
    )
