"""The daemon's TaskManager: one download per task id, shared by every reader on this daemon.

Readers call `TaskManager.open(url, stat=..., byte_range=...)` and get a `TaskReader` whose
`regions()` yields verified `FileRegion`s of the task's data file, in order, as pieces land, so the
first bytes go out long before the object is complete. A reader leaving (client disconnect,
cancellation, `aclose()`) never cancels the download: the download belongs to the TaskManager.

The piece-source seam (`Downloader`)
------------------------------------
Where pieces come from is pluggable, because the P2P conductor fetches them from parents while
the default goes back to the origin. The contract:

- `DownloaderFactory = Callable[[TaskStore, str, SourceStat], Downloader]` is called with the task,
  the object's source URL and the origin's stat each time the TaskManager starts a download run for
  a task. For a ranged task (`task.byte_range` is not None) piece 0 starts at origin offset
  `task.byte_range.start`; for a whole-object task at offset 0.
- `await downloader.run(task)` fills every piece that is missing when it looks
  (`not task.has_piece(n)`), by calling `await task.write_piece(n, data, expected_digest=...)` with
  exactly `task.piece_length(n)` bytes, in any order and with any parallelism. Pieces are numbered
  from 0; piece n covers task bytes `[n * piece_size, min((n + 1) * piece_size, content_length))`.
  Pass `expected_digest` when the bytes come from an untrusted place (a parent): a mismatch raises
  `PieceDigestMismatch` and stores nothing, so the downloader tries another parent.
- `run` returns normally once it wrote every piece it set out to write, or raises a `P2PError`
  (`SourceError`, `NoCandidateParent`, ...) when it gives up. It must honour cancellation (the
  TaskManager cancels it on shutdown) and keep bounded memory: a few pieces in flight, never the
  whole object.
- The TaskManager, not the downloader, reacts to the outcome: if pieces are still missing after a
  successful run (one was dropped as corrupt meanwhile) it starts another run (three runs in a row
  that leave pieces missing fail the task); after an error it calls `task.fail(exc)` so readers
  waiting on pieces get the error, and the next reader of the task starts a fresh download. While a
  download runs the task is pinned, so GC leaves it alone.

Ranged reads: `open(url, byte_range=r)` reads from the whole-object task when this daemon has it
(complete or still downloading) or when the object is at most `whole_object_range_bytes` (then the
whole object is fetched once); otherwise `r` becomes its own task, `task_id(url, version, r)`, whose
pieces are cut from `r` alone. `byte_range` must already be resolved against the object size.

`BackToSource` is the default downloader: `source_concurrency` ranged origin reads in flight through
the `SourceRouter`, each over a run of consecutive pieces (`read_run`) that are cut, written and
visible to readers one by one as the bytes arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import uuid
from collections import OrderedDict
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Protocol

from p2p.common.digest import piece_size_for
from p2p.common.ids import task_id as make_task_id
from p2p.daemon.dispatcher import Dispatcher
from p2p.daemon.openfiles import FileProbe, SharedFile
from p2p.daemon.store import PieceStore, TaskStore
from p2p.errors import P2PError, PieceDigestMismatch, PieceNotFound, SourceError, SourceNotFound
from p2p.source import SourceRouter
from p2p.types import ByteRange, FileRegion, MiB, PieceInfo, SourceStat, TaskID

log = logging.getLogger(__name__)

MERGE_LIMIT_BYTES = 64 * MiB  # a merged region may still need verifying: keep the first byte early
REFETCH_ATTEMPTS = 3  # times a reader re-waits for a piece that was dropped as corrupt
MAX_IDLE_RUNS = 3  # download runs in a row that leave pieces missing before the task fails
RECENT_URLS = 4096  # urls whose last whole-object task a FileProbe may check ahead of the read


class Downloader(Protocol):
    async def run(self, task: TaskStore) -> None:
        """Fill every piece of `task` that is missing; raise a P2PError when giving up."""
        ...


DownloaderFactory = Callable[[TaskStore, str, SourceStat], Downloader]


async def run_all(coros: list[Coroutine[Any, Any, None]]) -> None:
    """Run coroutines together; the first failure cancels the rest and is raised as itself."""
    try:
        async with asyncio.TaskGroup() as tg:
            for coro in coros:
                tg.create_task(coro)
    except BaseExceptionGroup as group:
        leaf: BaseException = group
        while isinstance(leaf, BaseExceptionGroup):
            leaf = leaf.exceptions[0]
        raise leaf from None


SOURCE_RUN_BYTES = 64 * MiB  # a run of consecutive pieces when several origin reads share an object


def source_run_pieces(piece_size: int, concurrency: int) -> int:
    """The most pieces one origin read covers. Several reads in flight share the object in runs of
    SOURCE_RUN_BYTES, lowest first, so the pieces present stay near the front; a single read covers
    the rest of the object (a new request per run would only idle the link between runs)."""
    return max(1, SOURCE_RUN_BYTES // piece_size) if concurrency > 1 else sys.maxsize


async def read_run(
    task: TaskStore,
    sources: SourceRouter,
    url: str,
    numbers: range,
    *,
    pace: Callable[[int], Awaitable[None]] | None = None,
    attempts: int = 3,
    retry_delay_s: float = 0.2,
) -> AsyncGenerator[PieceInfo, None]:
    """Fill the consecutive pieces `numbers` from the origin with one ranged read, writing and yielding
    each piece as soon as its bytes are in (children and readers get it at once, not at the run's end).

    One piece-sized buffer serves the whole run. A failed read is retried from the first piece not yet
    written, `attempts` times in all; SourceNotFound is not retried. `pace(n)` is awaited after each
    piece (a download rate limit). Use it under `contextlib.aclosing`.
    """
    base = task.byte_range.start if task.byte_range is not None else 0
    buf = memoryview(bytearray(task.piece_size))
    todo = numbers
    for attempt in range(1, attempts + 1):
        lengths = [task.piece_length(n) for n in todo]
        try:
            offset = base + todo.start * task.piece_size
            async with contextlib.aclosing(sources.read_pieces(url, offset, lengths, buf)) as cut:
                async for i in cut:
                    piece = await task.write_piece(todo[i], buf[: lengths[i]])
                    if pace is not None:
                        await pace(lengths[i])
                    yield piece
            return
        except SourceNotFound:
            raise
        except SourceError as exc:
            todo = range(next((n for n in todo if not task.has_piece(n)), todo.stop), todo.stop)
            if not todo:
                return
            if attempt == attempts:
                raise
            log.info("origin read of pieces %d-%d failed (%s); retrying", todo.start, todo.stop - 1, exc.message)
            await asyncio.sleep(retry_delay_s * attempt)


class BackToSource:
    """Fill a task from the origin: `concurrency` ranged reads in flight, each a run of consecutive
    pieces (lowest missing first) streamed and written piece by piece.

    Memory stays at about `concurrency` x piece size per task: one reusable buffer per read.
    """

    def __init__(
        self, sources: SourceRouter, url: str, *, concurrency: int = 4, attempts: int = 3, retry_delay_s: float = 0.2
    ) -> None:
        self._sources = sources
        self._url = url
        self._concurrency = max(1, concurrency)
        self._attempts = max(1, attempts)
        self._retry_delay_s = retry_delay_s

    async def run(self, task: TaskStore) -> None:
        present = {n for n in range(task.piece_count) if task.has_piece(n)}
        dispatcher = Dispatcher(
            task.piece_count,
            present,
            workers=self._concurrency,
            source_workers=self._concurrency,
            source_run=source_run_pieces(task.piece_size, self._concurrency),
        )
        dispatcher.to_source()

        async def worker() -> None:
            while (job := await dispatcher.next()) is not None:
                try:
                    run = read_run(
                        task,
                        self._sources,
                        self._url,
                        job.numbers,
                        attempts=self._attempts,
                        retry_delay_s=self._retry_delay_s,
                    )
                    async with contextlib.aclosing(run) as pieces:
                        async for piece in pieces:
                            dispatcher.landed(piece.number)
                except BaseException:
                    dispatcher.failed(job)
                    raise
                dispatcher.finished(job)

        await run_all([worker() for _ in range(self._concurrency)])


class TaskReader:
    """One reader's view of a task: `regions()` yields verified spans in order as pieces land.

    It pins the task (GC leaves it alone) until `aclose()`; use it as `async with reader:`.
    """

    def __init__(
        self,
        manager: TaskManager,
        task: TaskStore,
        url: str,
        stat: SourceStat,
        start: int,
        length: int,
        *,
        checked: SharedFile | None = None,
        data: bytes | None = None,
    ) -> None:
        self.task_id: TaskID = task.task_id
        self.content_length = length
        self.content_type = task.content_type
        self.task = task
        self._manager = manager
        self._url = url
        self._stat = stat
        self._start = start  # offset of this view within the task's data
        # The data file, open and checked for this read by a FileProbe: the first region is sent
        # from it without another look; later regions are verified (and opened) as usual.
        self._checked = checked
        self._data = data  # the task's whole data file, read with that check (small tasks)
        self._closed = False
        task.pin()

    async def regions(self) -> AsyncIterator[FileRegion]:
        task = self.task
        pos, end = self._start, self._start + self.content_length
        n = pos // task.piece_size if task.piece_size else 0
        shared = self._checked
        while pos < end:
            checked = shared is not None
            region = _clip(await self._piece_region(n, checked), pos, end)
            n += 1
            # merge the following pieces that are already here into one span
            while region.offset + region.length < end and region.length < MERGE_LIMIT_BYTES and task.has_piece(n):
                try:
                    nxt = _clip(await task.verified_region(n, checked=checked), pos, end)
                except (PieceDigestMismatch, PieceNotFound):
                    break
                region = FileRegion(region.path, region.offset, region.length + nxt.length)
                n += 1
            if shared is not None:
                data = self._data
                if data is not None:
                    data = data[region.offset : region.offset + region.length]
                region = FileRegion(region.path, region.offset, region.length, shared.file, data)
                shared = None
            pos = region.offset + region.length
            yield region

    async def _piece_region(self, n: int, checked: bool = False) -> FileRegion:
        task = self.task
        for _ in range(REFETCH_ATTEMPTS):
            if not task.has_piece(n):
                self._manager._ensure_download(task, self._url, self._stat)
                await task.wait_piece(n)
            try:
                return await task.verified_region(n, checked=checked)
            except PieceNotFound:
                continue  # dropped between landing and our look; wait again
            except PieceDigestMismatch:
                log.warning("task_id=%s piece=%d corrupt on disk; fetching it again", task.task_id, n)
        raise PieceDigestMismatch(f"piece {n} of task {task.task_id} failed verification {REFETCH_ATTEMPTS} times")

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            if self._checked is not None:
                self._manager.store.files.release(self._checked)
            self.task.unpin()

    async def __aenter__(self) -> TaskReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def _clip(region: FileRegion, start: int, end: int) -> FileRegion:
    lo = max(region.offset, start)
    hi = min(region.offset + region.length, end)
    return FileRegion(region.path, lo, hi - lo)


class TaskManager:
    """One download per task id on this daemon; readers subscribe to it and never own it."""

    def __init__(
        self,
        store: PieceStore,
        sources: SourceRouter,
        *,
        source_concurrency: int = 4,
        whole_object_range_bytes: int = 0,
        downloader_factory: DownloaderFactory | None = None,
    ) -> None:
        self.store = store
        self.sources = sources
        self._source_concurrency = source_concurrency
        self._whole_object_range_bytes = whole_object_range_bytes
        self._factory = downloader_factory or self._back_to_source
        self._jobs: dict[TaskID, tuple[TaskStore, asyncio.Task[None]]] = {}
        self._all_jobs: set[asyncio.Task[None]] = set()  # includes stale jobs of deleted tasks
        self._recent: OrderedDict[str, TaskStore] = OrderedDict()  # url -> its last whole-object task
        self._closed = False

    def _back_to_source(self, task: TaskStore, url: str, stat: SourceStat) -> Downloader:
        return BackToSource(self.sources, url, concurrency=self._source_concurrency)

    def probe(self, url: str) -> FileProbe | None:
        """A check of the data file of `url`'s last complete whole-object task, to run (blocking) in a
        worker-thread hop the caller makes anyway, then pass to `open`; None when there is none."""
        task = self._recent.get(url)
        if task is None or not task.done or self.store.get(task.task_id) is not task:
            return None
        return FileProbe(task, self.store.files, self.store.files.get(task.task_id))

    def _remember(self, url: str, task: TaskStore) -> None:
        recent = self._recent
        if recent.get(url) is not task:
            recent[url] = task
            if len(recent) > RECENT_URLS:
                recent.popitem(last=False)
        recent.move_to_end(url)

    async def open(
        self,
        url: str,
        *,
        stat: SourceStat | None = None,
        byte_range: ByteRange | None = None,
        probe: FileProbe | None = None,
    ) -> TaskReader:
        """A reader of the object (or of `byte_range` of it), starting its download if needed.

        `byte_range` must lie within the object (resolve it against `stat.size` first). It is served
        from the whole-object task when that one is here (complete or not) or the object is at most
        `whole_object_range_bytes` (a JuiceFS block: one origin read, then every range of it anywhere
        comes from that task); else it is its own task.
        `probe`: from `self.probe(url)`, run just before; when it checked the task this read uses,
        the read starts without a worker-thread hop.
        """
        if self._closed:
            raise P2PError("task manager is closed")
        if stat is None:
            stat = await self.sources.stat(url)
        if byte_range is not None:
            if byte_range.start < 0 or byte_range.length < 0 or byte_range.start + byte_range.length > stat.size:
                raise ValueError(f"range {byte_range} outside an object of {stat.size} bytes")
            if byte_range.start == 0 and byte_range.length == stat.size:
                byte_range = None
        whole_id = make_task_id(url, stat.version)
        task = self.store.get(whole_id) if byte_range is not None else None
        if task is None and (byte_range is None or stat.size <= self._whole_object_range_bytes):
            task = await self.store.create(
                whole_id,
                url=url,
                content_length=stat.size,
                piece_size=piece_size_for(stat.size),
                content_type=stat.content_type,
                source=stat,
            )
        if task is not None:
            start, length = (0, stat.size) if byte_range is None else (byte_range.start, byte_range.length)
        else:
            assert byte_range is not None
            task = await self.store.create(
                make_task_id(url, stat.version, byte_range),
                url=url,
                content_length=byte_range.length,
                piece_size=piece_size_for(byte_range.length),
                content_type=stat.content_type,
                byte_range=byte_range,
                source=stat,
            )
            start, length = 0, byte_range.length
        if task.byte_range is None:
            self._remember(url, task)
        checked = probe.apply(task) if probe is not None else None
        data = probe.data if checked is not None and probe is not None else None
        reader = TaskReader(self, task, url, stat, start, length, checked=checked, data=data)
        if length > 0:
            self._ensure_download(task, url, stat)
        return reader

    async def import_file(self, url: str, stat: SourceStat, path: Path) -> TaskID:
        """Seed the cache with a file we already hold (a dfstore PUT); see PieceStore.adopt."""
        tid = make_task_id(url, stat.version)
        task = await self._adopt(tid, url, stat, path)
        self._remember(url, task)
        return tid

    async def _adopt(
        self, tid: TaskID, url: str, stat: SourceStat, path: Path, byte_range: ByteRange | None = None
    ) -> TaskStore:
        """A completed task from a file holding the object (or `byte_range` of it); PieceStore.adopt."""
        length = stat.size if byte_range is None else byte_range.length
        return await self.store.adopt(
            tid,
            url=url,
            content_length=length,
            piece_size=piece_size_for(length),
            content_type=stat.content_type,
            path=path,
            source=stat,
            byte_range=byte_range,
        )

    async def cut_range(self, url: str, stat: SourceStat, byte_range: ByteRange) -> TaskStore | None:
        """The ranged task of `byte_range`, cut from this daemon's whole-object task of `stat.version`
        (complete, or still downloading: the range's pieces are awaited and verified) without an origin
        read; None when this daemon has no such whole-object task.

        A seed peer that holds an object whole is asked for ranged tasks of it (an S3 client's ranged
        GETs on other peers, after a preheat or a whole read): it can only be their parent once it holds
        those very tasks, cut at their own piece boundaries.
        """
        ranged_id = make_task_id(url, stat.version, byte_range)
        held = self.store.get(ranged_id)
        if held is not None and held.done:
            return held
        if self.store.get(make_task_id(url, stat.version)) is None:
            return None
        staging = self.store.root / f".cut-{uuid.uuid4().hex}"
        try:
            reader = await self.open(url, stat=stat, byte_range=byte_range)  # the whole task serves it
            async with reader:
                if reader.task.byte_range is not None:
                    return None  # the whole task went away meanwhile: a ranged task of its own was made
                regions = [region async for region in reader.regions()]
                await asyncio.to_thread(_write_regions, regions, staging)
            return await self._adopt(ranged_id, url, stat, staging, byte_range)
        finally:
            await asyncio.to_thread(staging.unlink, True)

    def downloading(self, task_id: TaskID) -> bool:
        """Whether a download of this task id is running now."""
        entry = self._jobs.get(task_id)
        return entry is not None and not entry[1].done()

    def _ensure_download(self, task: TaskStore, url: str, stat: SourceStat) -> None:
        if task.done:
            return
        entry = self._jobs.get(task.task_id)
        # a job left over from a deleted task of the same id does not count
        if entry is not None and entry[0] is task and not entry[1].done():
            return
        if self._closed:
            raise P2PError("task manager is closed")
        task.clear_failure()
        task.pin()  # a running download keeps its task from GC
        job = asyncio.create_task(self._download(task, url, stat), name=f"download-{task.task_id[:12]}")
        self._jobs[task.task_id] = (task, job)
        self._all_jobs.add(job)
        job.add_done_callback(lambda j: self._forget(task.task_id, j))

    def _forget(self, task_id: TaskID, job: asyncio.Task[None]) -> None:
        self._all_jobs.discard(job)
        entry = self._jobs.get(task_id)
        if entry is not None and entry[1] is job:
            del self._jobs[task_id]

    async def _download(self, task: TaskStore, url: str, stat: SourceStat) -> None:
        idle_runs = 0
        try:
            while not task.done:
                await self._factory(task, url, stat).run(task)
                await task.finish()  # a no-op unless the last piece came from another writer
                if task.done:
                    break
                idle_runs += 1  # pieces went missing during the run (dropped as corrupt): go again
                if idle_runs >= MAX_IDLE_RUNS:
                    raise P2PError(f"download of task {task.task_id} keeps leaving pieces missing")
            log.debug("task_id=%s complete", task.task_id)
        except asyncio.CancelledError:
            task.fail(P2PError(f"download of task {task.task_id} was cancelled"))
            raise
        except P2PError as exc:
            log.warning("task_id=%s download failed: %s", task.task_id, exc.message)
            task.fail(exc)
        except Exception as exc:
            log.exception("task_id=%s download failed", task.task_id)
            task.fail(P2PError(f"download failed: {exc!r}"))
        finally:
            task.unpin()

    async def close(self) -> None:
        """Cancel every download this manager owns and wait for them to end."""
        self._closed = True
        jobs = list(self._all_jobs)
        for job in jobs:
            job.cancel()
        for job in jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job


def _write_regions(regions: list[FileRegion], dest: Path) -> None:
    """Concatenate verified regions of cached files into `dest`, copied in the kernel."""
    with open(dest, "wb") as out:
        for region in regions:
            with open(region.path, "rb") as src:
                offset, left = region.offset, region.length
                while left > 0:
                    n = os.copy_file_range(src.fileno(), out.fileno(), left, offset)
                    if n == 0:
                        raise OSError(f"{region.path} ended {left} bytes early")
                    offset, left = offset + n, left - n
