"""AsyncWriteBack: the journal of acknowledged writes that have not reached the origin yet.

An entry is two files in the journal directory, `<seq>.data` (the object's bytes) and `<seq>.json`
(bucket, key, metadata). `enqueue` renames the data in, fsyncs it and the directory, then writes
the record atomically (temp + fsync + rename + directory fsync): the entry exists once the record
does, and the PUT is answered only after that. Workers upload entries to the origin, retrying with
exponential backoff until it accepts; only then are the files removed. `start()` resumes every
entry left by a previous process (a crash, SIGKILL, a power cut after the fsyncs).

Ordering per key: `seq` grows with every enqueue (also across restarts), only the newest entry of a
key is ever uploaded, and a key's uploads run one at a time under a per-key lock, so an older
version can never land on the origin after a newer one. `supersede()` (used before a synchronous
origin write or a delete) drops the pending entry and waits for an upload in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dfstore.core.backend import Backend
from dfstore.models import ObjectMeta, PutOptions
from p2p.types import MiB

log = logging.getLogger(__name__)

CHUNK = MiB
Ident = tuple[str, str]  # (bucket, key)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(eq=False)
class PendingEntry:
    seq: int
    meta: ObjectMeta  # what HEAD answers while the entry waits (ETag = MD5 of the data)
    options: PutOptions
    data: Path
    record: Path
    attempts: int = 0
    in_flight: bool = False

    @property
    def ident(self) -> Ident:
        return (self.meta.bucket, self.meta.key)

    def remove_files(self) -> None:
        self.record.unlink(missing_ok=True)  # the record first: without it the data is garbage
        self.data.unlink(missing_ok=True)


def _record_json(seq: int, meta: ObjectMeta, options: PutOptions) -> dict[str, Any]:
    m = asdict(meta)
    m["last_modified"] = meta.last_modified.isoformat()
    return {"seq": seq, "meta": m, "options": asdict(options)}


def _entry_from_record(directory: Path, record: dict[str, Any]) -> PendingEntry:
    seq = int(record["seq"])
    m = dict(record["meta"])
    m["last_modified"] = datetime.fromisoformat(m["last_modified"])
    return PendingEntry(
        seq=seq,
        meta=ObjectMeta(**m),
        options=PutOptions(**record["options"]),
        data=directory / f"{seq:020d}.data",
        record=directory / f"{seq:020d}.json",
    )


class _KeyLocks:
    """One asyncio.Lock per key, dropped when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Ident, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, ident: Ident) -> AsyncIterator[None]:
        lock, users = self._locks.get(ident, (asyncio.Lock(), 0))
        self._locks[ident] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[ident]
            if users == 1:
                del self._locks[ident]
            else:
                self._locks[ident] = (lock, users - 1)


class WriteBackQueue:
    def __init__(
        self,
        dir: Path,
        backend: Backend,
        *,
        retry_initial_s: float = 0.5,
        retry_max_s: float = 30.0,
        workers: int = 2,
    ) -> None:
        self.dir = Path(dir)
        self._backend = backend
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._workers_n = max(1, workers)
        self._latest: dict[Ident, PendingEntry] = {}
        self._ready: asyncio.Queue[Ident] = asyncio.Queue()
        self._queued: set[Ident] = set()
        self._retries: dict[Ident, asyncio.TimerHandle] = {}
        self._locks = _KeyLocks()
        self._workers: list[asyncio.Task[None]] = []
        self._seq = 0
        self._idle = asyncio.Event()
        self._idle.set()
        # Called with (the journal's meta, the origin's meta) once an entry reached the origin and no
        # newer write of its key is waiting; it must not block or raise (failures are logged).
        self.on_landed: Callable[[ObjectMeta, ObjectMeta], None] | None = None

    # ---- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Resume the entries a previous process left, then start the workers."""
        entries = await asyncio.to_thread(self._load)
        for entry in entries:
            current = self._latest.get(entry.ident)
            if current is not None and current.seq >= entry.seq:
                continue  # enqueued by this process before start()
            self._latest[entry.ident] = entry
            self._seq = max(self._seq, entry.seq)
            self._queue(entry.ident)
        if entries:
            self._idle.clear()
            log.info("write-back journal %s: resuming %d pending writes", self.dir, len(entries))
        self._workers = [asyncio.create_task(self._worker(), name=f"writeback-{i}") for i in range(self._workers_n)]

    def _load(self) -> list[PendingEntry]:
        self.dir.mkdir(parents=True, exist_ok=True)
        newest: dict[Ident, PendingEntry] = {}
        for path in sorted(self.dir.iterdir()):
            if path.suffix == ".tmp":
                path.unlink(missing_ok=True)  # a record being written when the process died
            if path.suffix != ".json":
                continue
            try:
                entry = _entry_from_record(self.dir, json.loads(path.read_text()))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.error("write-back journal: unreadable record %s (%s); kept for inspection", path.name, exc)
                path.rename(path.with_suffix(".bad"))
                continue
            if not entry.data.exists():
                log.error("write-back journal: record %s has no data; kept for inspection", path.name)
                path.rename(path.with_suffix(".bad"))
                continue
            older = newest.get(entry.ident)
            if older is not None and older.seq > entry.seq:
                entry, older = older, entry
            if older is not None:
                older.remove_files()  # superseded before the crash
            newest[entry.ident] = entry
        # data files whose record never got written: the PUT was not acknowledged
        wanted = {e.data for e in newest.values()}
        for path in self.dir.glob("*.data"):
            if path not in wanted and not any(path.with_suffix(x).exists() for x in (".json", ".bad")):
                path.unlink(missing_ok=True)
        return sorted(newest.values(), key=lambda e: e.seq)

    async def close(self) -> None:
        """Stop the workers. Pending entries stay on disk for the next start."""
        for handle in self._retries.values():
            handle.cancel()
        self._retries.clear()
        for worker in self._workers:
            worker.cancel()
        for worker in self._workers:
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        self._workers = []

    # ---- queries -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._latest)

    def pending(self, bucket: str, key: str) -> PendingEntry | None:
        return self._latest.get((bucket, key))

    def pending_in(self, bucket: str, prefix: str = "") -> list[PendingEntry]:
        return [e for (b, k), e in self._latest.items() if b == bucket and k.startswith(prefix)]

    async def drain(self, timeout_s: float) -> bool:
        """Wait until every pending entry reached the origin; False on timeout."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True

    async def read(self, entry: PendingEntry, offset: int, length: int) -> AsyncIterator[bytes]:
        """The entry's bytes; from the origin when the entry completed before we could open it."""
        try:
            f = await asyncio.to_thread(open, entry.data, "rb")
        except FileNotFoundError:
            stream = self._backend.read_object(entry.meta.bucket, entry.meta.key, offset, length)
            async for chunk in stream:
                yield chunk
            return
        try:
            await asyncio.to_thread(f.seek, offset)
            left = length
            while left > 0:
                chunk = await asyncio.to_thread(f.read, min(CHUNK, left))
                if not chunk:
                    raise OSError(errno.EIO, f"journal data of {entry.meta.key!r} is short")
                left -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(f.close)

    # ---- writes --------------------------------------------------------------------------

    def _next_seq(self) -> int:
        # time-based so it also grows across restarts, +1 so it grows within one tick
        self._seq = max(self._seq + 1, time.time_ns())
        return self._seq

    async def enqueue(self, meta: ObjectMeta, options: PutOptions, path: Path, *, move: bool) -> PendingEntry:
        """Make the write durable in the journal and queue it for the origin.

        `move` renames `path` into the journal (the caller gives it up); otherwise it is hard-linked
        or copied. Returns once the data and the record are on disk.
        """
        seq = self._next_seq()
        entry = PendingEntry(
            seq=seq,
            meta=meta,
            options=options,
            data=self.dir / f"{seq:020d}.data",
            record=self.dir / f"{seq:020d}.json",
        )
        await asyncio.to_thread(self._write_entry, entry, path, move)
        ident = entry.ident
        older = self._latest.get(ident)
        self._latest[ident] = entry
        self._idle.clear()
        if older is not None and not older.in_flight:  # in flight: its worker removes it afterwards
            await asyncio.to_thread(older.remove_files)
        self._queue(ident)
        return entry

    def _write_entry(self, entry: PendingEntry, path: Path, move: bool) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        try:
            if move:
                os.replace(path, entry.data)
            else:
                os.link(path, entry.data)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            shutil.copyfile(path, entry.data)  # another filesystem: copy in the kernel
            if move:
                path.unlink()
        with open(entry.data, "rb") as f:
            os.fsync(f.fileno())
        _fsync_dir(self.dir)
        tmp = self.dir / f"{uuid.uuid4().hex}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(_record_json(entry.seq, entry.meta, entry.options), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, entry.record)
        _fsync_dir(self.dir)

    @contextlib.asynccontextmanager
    async def using(self, bucket: str, key: str) -> AsyncIterator[PendingEntry | None]:
        """The key's pending entry (or None), held for the block: no upload of it runs meanwhile and
        its files stay even if a newer write supersedes it (they go when the block ends)."""
        ident = (bucket, key)
        async with self._locks.hold(ident):
            entry = self._latest.get(ident)
            if entry is None:
                yield None
                return
            entry.in_flight = True
            try:
                yield entry
            finally:
                entry.in_flight = False
                if self._latest.get(ident) is not entry:
                    await asyncio.to_thread(entry.remove_files)

    def discard(self, entry: PendingEntry) -> None:
        """Inside `using()`: the caller wrote the entry to the origin itself; forget it."""
        if self._latest.get(entry.ident) is entry:
            del self._latest[entry.ident]
            self._update_idle()

    async def supersede(self, bucket: str, key: str) -> None:
        """Drop the key's pending entry, waiting for an upload of it in flight to finish first."""
        ident = (bucket, key)
        async with self._locks.hold(ident):
            entry = self._latest.pop(ident, None)
            if entry is not None:
                await asyncio.to_thread(entry.remove_files)
            self._update_idle()

    # ---- workers -------------------------------------------------------------------------

    def _queue(self, ident: Ident) -> None:
        retry = self._retries.pop(ident, None)
        if retry is not None:
            retry.cancel()  # a newer write goes now; no-op when called by that very timer
        if ident not in self._queued:
            self._queued.add(ident)
            self._ready.put_nowait(ident)

    def _update_idle(self) -> None:
        if not self._latest:
            self._idle.set()

    async def _worker(self) -> None:
        while True:
            ident = await self._ready.get()
            self._queued.discard(ident)
            async with self._locks.hold(ident):
                entry = self._latest.get(ident)
                if entry is None:
                    continue
                await self._upload(entry)

    async def _upload(self, entry: PendingEntry) -> None:
        entry.in_flight = True
        try:
            landed = await self._backend.put_object(
                entry.meta.bucket, entry.meta.key, entry.data, entry.options, etag=entry.meta.etag
            )
        except Exception as exc:  # every failure is retried: an acknowledged write is never dropped
            entry.attempts += 1
            delay = min(self._retry_initial_s * 2 ** (entry.attempts - 1), self._retry_max_s)
            log.warning(
                "write-back of bucket=%s key=%r failed (attempt %d, next in %.1fs): %s",
                entry.meta.bucket, entry.meta.key, entry.attempts, delay, exc,
            )
            if self._latest.get(entry.ident) is entry:
                loop = asyncio.get_running_loop()
                self._retries[entry.ident] = loop.call_later(delay, self._queue, entry.ident)
            else:
                await asyncio.to_thread(entry.remove_files)  # a newer write replaced it meanwhile
            return
        finally:
            entry.in_flight = False
        log.debug("write-back of bucket=%s key=%r reached the origin", entry.meta.bucket, entry.meta.key)
        if self._latest.get(entry.ident) is entry:
            del self._latest[entry.ident]
            if self.on_landed is not None:
                try:
                    self.on_landed(entry.meta, landed)
                except Exception:
                    log.exception("write-back of bucket=%s key=%r: landed hook failed", *entry.ident)
        await asyncio.to_thread(entry.remove_files)
        self._update_idle()
