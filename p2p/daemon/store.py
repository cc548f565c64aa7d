"""Piece storage on the peer: one task = one data file written at piece offsets + one metadata file.

Layout under the store root (task ids are 64 lower-case hex chars, checked before any path is built,
so no path ever leaves the root):

    <root>/<task_id[:3]>/<task_id>/data           the task's bytes, sparse until every piece landed
    <root>/<task_id[:3]>/<task_id>/metadata.json  replaced atomically (temp file, fsync, rename)

Metadata is written when a task is created, when it completes (after the data file is fsynced) and
when a completed task's last access time changed (at GC rounds and at close). At start only
completed tasks are reloaded; partial and unreadable ones are deleted.

Every piece carries an xxh3-64 digest of its bytes; a completed task carries `task_digest`, the
xxh3-64 over its piece digests in order.

Verification policy (so a corrupted piece is never served: it is dropped and fetched again):
- pieces written by this process are trusted;
- pieces of tasks reloaded from disk are verified against their digest on first serve;
- whenever the data file's (st_ino, st_size, st_mtime_ns) differs from what the store last recorded
  (it records the stat after each of its own writes), every piece is re-verified before serving.
`TaskStore.verified_region(n)` applies it: a piece whose bytes no longer match is dropped
(`has_piece(n)` becomes False, the task is no longer done) and `PieceDigestMismatch` is raised, so
the TaskManager fetches it again. Modifications that keep size, inode and mtime (bit rot under an
unchanged mtime) are not detected here; a child verifies every piece it receives anyway.

GC (`PieceStore.gc()`, every `gc_interval_s`, and before a new task would exceed the quota):
first every unpinned task idle longer than `ttl_s` (0 = off); then, while the sum of content
lengths exceeds `quota_bytes` (0 = off), unpinned tasks least recently used first, skipping
incomplete tasks touched within the last GC interval.
Readers and downloads pin a task (`pin()`/`unpin()`) so it is never deleted under them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from p2p.daemon.openfiles import DEFAULT_CAPACITY, OpenFiles
from p2p.daemon.taskstore import (
    TaskStore,
    valid_task_id,
)
from p2p.errors import StorageError
from p2p.types import ByteRange, SourceStat, TaskID

__all__ = ["PieceStore", "TaskStore"]

log = logging.getLogger(__name__)


class PieceStore:
    """Every task of this daemon under one root directory."""

    def __init__(
        self,
        root: Path,
        *,
        quota_bytes: int = 0,
        ttl_s: float = 6 * 3600,
        gc_interval_s: float = 60,
        open_files: int = DEFAULT_CAPACITY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root)
        self.files = OpenFiles(open_files)  # descriptors of completed tasks, kept open for readers
        self.quota_bytes = quota_bytes
        self.ttl_s = ttl_s
        self.gc_interval_s = gc_interval_s
        self._clock = clock
        self._tasks: dict[TaskID, TaskStore] = {}
        self._create_lock = asyncio.Lock()
        self._gc_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Reload completed tasks (deleting broken and partial ones), then start the GC loop."""
        self.root.mkdir(parents=True, exist_ok=True)
        loaded = await asyncio.to_thread(self._load_all)
        for task in loaded:
            self._tasks[task.task_id] = task
        log.info("piece store %s: %d completed tasks reloaded", self.root, len(loaded))
        if self.gc_interval_s > 0:
            self._gc_task = asyncio.create_task(self._gc_loop(), name="piece-store-gc")

    def _load_all(self) -> list[TaskStore]:
        loaded: list[TaskStore] = []
        for entry in self.root.iterdir():
            if entry.name.startswith(".import-"):
                shutil.rmtree(entry, ignore_errors=True)  # an import interrupted by a crash
                continue
            if not entry.is_dir() or len(entry.name) != 3:
                continue
            for directory in entry.iterdir():
                try:
                    loaded.append(TaskStore.load(directory, self._clock))
                except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
                    log.info("piece store: dropping %s (%s)", directory.name, exc)
                    shutil.rmtree(directory, ignore_errors=True)
            with contextlib.suppress(OSError):
                entry.rmdir()  # only succeeds when empty
        return loaded

    async def close(self) -> None:
        if self._gc_task is not None:
            self._gc_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._gc_task
            self._gc_task = None
        await self._save_dirty()
        self.files.retire_all()
        await asyncio.to_thread(self.files.drain_sync)

    def get(self, task_id: TaskID) -> TaskStore | None:
        return self._tasks.get(task_id)

    def tasks(self) -> list[TaskStore]:
        return list(self._tasks.values())

    @property
    def used_bytes(self) -> int:
        return sum(t.content_length for t in self._tasks.values())

    def _task_dir(self, task_id: TaskID) -> Path:
        if not valid_task_id(task_id):
            raise ValueError(f"invalid task id {task_id!r}")
        return self.root / task_id[:3] / task_id

    async def create(
        self,
        task_id: TaskID,
        *,
        url: str,
        content_length: int,
        piece_size: int,
        content_type: str,
        byte_range: ByteRange | None = None,
        source: SourceStat | None = None,
    ) -> TaskStore:
        """A new, empty task (sparse data file of the full length), or the existing one of that id.
        `source`: the origin object it copies, recorded so a restarted daemon can offer the task."""
        if content_length < 0 or piece_size <= 0:
            raise ValueError("content_length must be >= 0 and piece_size > 0")
        if self.quota_bytes > 0 and task_id not in self._tasks and self.used_bytes + content_length > self.quota_bytes:
            await self.gc(reserve_bytes=content_length)  # make room now, not at the next GC round
        async with self._create_lock:
            existing = self._tasks.get(task_id)
            if existing is not None:
                existing.touch()
                return existing
            task = TaskStore(
                task_id=task_id,
                directory=self._task_dir(task_id),
                url=url,
                content_length=content_length,
                piece_size=piece_size,
                content_type=content_type,
                byte_range=byte_range,
                clock=self._clock,
                last_access=self._clock(),
                source=source,
            )
            try:
                await asyncio.to_thread(task.init_files)
            except OSError as exc:
                raise StorageError(f"cannot create task {task_id}: {exc.strerror}") from exc
            self._tasks[task_id] = task
            return task

    async def adopt(
        self,
        task_id: TaskID,
        *,
        url: str,
        content_length: int,
        piece_size: int,
        content_type: str,
        path: Path,
        source: SourceStat | None = None,
        byte_range: ByteRange | None = None,
    ) -> TaskStore:
        """Seed a completed task from a file we already hold: hard-link it (or copy it in the kernel)
        into the store, digest its pieces (the one read through Python), mark it done. `byte_range`:
        the file holds that span of the object (a ranged task), not the whole object.

        The caller must not modify `path` in place afterwards (replace it instead): with a hard link
        the store shares its inode. If the task is being downloaded meanwhile, its missing pieces are
        copied in from the file instead.
        """
        final = self._task_dir(task_id)
        existing = self._tasks.get(task_id)
        if existing is not None and existing.done:
            existing.touch()
            return existing
        staging = self.root / f".import-{uuid.uuid4().hex}"
        probe = TaskStore(
            task_id=task_id,
            directory=staging,
            url=url,
            content_length=content_length,
            piece_size=piece_size,
            content_type=content_type,
            byte_range=byte_range,
            clock=self._clock,
            last_access=self._clock(),
            source=source,
        )
        try:
            try:
                pieces = await asyncio.to_thread(probe.stage_import, Path(path))
            except OSError as exc:
                raise StorageError(f"cannot import {task_id}: {exc.strerror}") from exc
            async with self._create_lock:
                existing = self._tasks.get(task_id)
                if existing is None:
                    try:
                        await asyncio.to_thread(probe.install_import, pieces, final)
                        task = await asyncio.to_thread(TaskStore.load, final, self._clock)
                    except OSError as exc:
                        raise StorageError(f"cannot import {task_id}: {exc.strerror}") from exc
                    task.trust_all()  # we just digested these very bytes
                    self._tasks[task_id] = task
                    return task
            if not existing.done:
                await existing.copy_pieces_from(probe.data_path, pieces)
            existing.touch()
            return existing
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)

    async def delete(self, task_id: TaskID) -> None:
        """Forget a task and remove its files; its waiters get TaskNotFound."""
        task = self._tasks.pop(task_id, None)
        if task is None:
            return
        task.mark_deleted()
        self.files.discard(task_id)
        await asyncio.to_thread(self._remove_dir, task.directory)

    def _remove_dir(self, directory: Path) -> None:
        self.files.drain_sync()  # close the descriptor first, so the blocks are freed now
        shutil.rmtree(directory, ignore_errors=True)
        with contextlib.suppress(OSError):
            directory.parent.rmdir()

    async def gc(self, *, reserve_bytes: int = 0) -> list[TaskID]:
        """One GC round now: TTL first, then quota (least recently used first), leaving room for
        `reserve_bytes` more under the quota. Returns the deleted ids."""
        now = self._clock()
        victims: list[TaskID] = []
        live = [t for t in self._tasks.values() if not t.pinned]
        if self.ttl_s > 0:
            for t in live:
                if now - t.last_access > self.ttl_s:
                    victims.append(t.task_id)
        if self.quota_bytes > 0:
            used = reserve_bytes + sum(t.content_length for t in self._tasks.values() if t.task_id not in victims)
            if used > self.quota_bytes:
                candidates = sorted(
                    (t for t in live if t.task_id not in victims),
                    key=lambda t: t.last_access,
                )
                for t in candidates:
                    if used <= self.quota_bytes:
                        break
                    if not t.done and now - t.last_access < self.gc_interval_s:
                        continue  # a download that is still moving
                    victims.append(t.task_id)
                    used -= t.content_length
        for task_id in victims:
            log.info("piece store GC: deleting task_id=%s", task_id)
            await self.delete(task_id)
        await self._save_dirty()
        await asyncio.to_thread(self.files.drain_sync)
        return victims

    async def _save_dirty(self) -> None:
        for task in list(self._tasks.values()):
            try:
                await task.save()
            except OSError as exc:
                log.warning("task_id=%s cannot save metadata: %s", task.task_id, exc.strerror)

    async def _gc_loop(self) -> None:
        while True:
            await asyncio.sleep(self.gc_interval_s)
            try:
                await self.gc()
            except Exception:
                log.exception("piece store GC round failed")
