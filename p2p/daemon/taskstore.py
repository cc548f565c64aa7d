"""One task on disk: its data file, piece table and metadata (see p2p/daemon/store.py for the layout,
the verification policy and GC). `PieceStore` creates, reloads and deletes these; downloaders write
pieces into them and readers wait on them."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import xxhash

from p2p.common.digest import piece_count as _piece_count
from p2p.common.digest import piece_digest
from p2p.common.digest import task_digest as _task_digest
from p2p.errors import P2PError, PieceDigestMismatch, PieceNotFound, StorageError, TaskNotFound
from p2p.proto.values import TINY_FILE_SIZE, TaskSpec
from p2p.types import ByteRange, FileRegion, MiB, PieceInfo, SourceStat, TaskID

log = logging.getLogger(__name__)

DATA_NAME = "data"
META_NAME = "metadata.json"
META_VERSION = 1
_TASK_ID = re.compile(r"^[0-9a-f]{64}$")
IO_CHUNK = MiB

FileKey = tuple[int, int, int]  # (st_ino, st_size, st_mtime_ns)


def valid_task_id(task_id: str) -> bool:
    return bool(_TASK_ID.match(task_id))


def _file_key(st: os.stat_result) -> FileKey:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def digest_span(fd: int, offset: int, size: int, buf: bytearray) -> str:
    """xxh3-64 of `size` bytes at `offset`, read in 1 MiB chunks; a short file gives a wrong digest."""
    h = xxhash.xxh3_64()
    view = memoryview(buf)
    while size > 0:
        n = os.preadv(fd, [view[: min(size, len(buf))]], offset)
        if n <= 0:
            break
        h.update(view[:n])
        offset += n
        size -= n
    return h.hexdigest()


def _copy_error(exc: BaseException) -> BaseException:
    """A fresh exception per waiter, so tracebacks of many waiters don't pile onto one object."""
    if isinstance(exc, P2PError):
        try:
            new = type(exc)(exc.message)
        except TypeError:
            new = P2PError(exc.message)
    else:
        new = P2PError(f"download failed: {exc!r}")
    new.__cause__ = exc
    return new


class TaskStore:
    """One task's data file and piece table. Create through `PieceStore.create`, never directly."""

    def __init__(
        self,
        *,
        task_id: TaskID,
        directory: Path,
        url: str,
        content_length: int,
        piece_size: int,
        content_type: str,
        byte_range: ByteRange | None,
        clock: Callable[[], float],
        last_access: float,
        source: SourceStat | None = None,
    ) -> None:
        self.task_id = task_id
        self.directory = directory
        self.data_path = directory / DATA_NAME
        self.meta_path = directory / META_NAME
        self.url = url
        self.content_length = content_length
        self.piece_size = piece_size
        self.piece_count = _piece_count(content_length, piece_size)
        self.content_type = content_type
        self.byte_range = byte_range  # origin span of a ranged task; None for a whole object
        self.source = source  # the origin object (size, version) the task copies; None: not recorded
        self.done = self.piece_count == 0
        self.last_access = last_access
        self._clock = clock
        self._pieces: dict[int, PieceInfo] = {}
        self._trusted: set[int] = set()
        self._file_key: FileKey | None = None
        self._io_lock = threading.Lock()  # orders our writes against the stat check of verification
        self._changed = asyncio.Event()
        self._error: BaseException | None = None
        self._pins = 0
        self._deleted = False
        self._saved_access = last_access
        self._finishing = False

    # -- piece table ---------------------------------------------------------------------------

    def piece_length(self, n: int) -> int:
        self._check_number(n)
        return min(self.piece_size, self.content_length - n * self.piece_size)

    def has_piece(self, n: int) -> bool:
        return n in self._pieces

    def piece(self, n: int) -> PieceInfo | None:
        return self._pieces.get(n)

    @property
    def present_count(self) -> int:
        return len(self._pieces)

    def spec(self) -> TaskSpec | None:
        """What the task copies, as the scheduler knows tasks; None when the origin version is unknown."""
        if self.source is None:
            return None
        return TaskSpec(url=self.url, stat=self.source, piece_size=self.piece_size, byte_range=self.byte_range)

    def tiny_content(self) -> bytes:
        """The whole content of a complete TINY task (the scheduler hands it to later peers with their
        registration); empty otherwise."""
        if not 0 < self.content_length <= TINY_FILE_SIZE or not self.done:
            return b""
        with open(self.data_path, "rb") as f:  # at most 128 bytes: not worth a thread
            return f.read(self.content_length)

    def pieces(self) -> list[PieceInfo]:
        return [self._pieces[n] for n in sorted(self._pieces)]

    @property
    def task_digest(self) -> str:
        """xxh3 over the piece digests in order; empty until the task is done."""
        if not self.done:
            return ""
        return _task_digest(self._pieces[n].digest for n in range(self.piece_count))

    @property
    def pinned(self) -> bool:
        return self._pins > 0

    @property
    def failed(self) -> BaseException | None:
        return self._error

    def pin(self) -> None:
        self._pins += 1
        self.touch()

    def unpin(self) -> None:
        self._pins = max(0, self._pins - 1)
        self.touch()

    def touch(self) -> None:
        self.last_access = self._clock()

    # -- writing -------------------------------------------------------------------------------

    async def write_piece(
        self, n: int, data: bytes | memoryview | bytearray, *, expected_digest: str | None = None
    ) -> PieceInfo:
        """Write piece `n` at its offset (in a thread) and record its xxh3 digest.

        With `expected_digest`, bytes that do not match raise PieceDigestMismatch and nothing is stored.
        A piece already present is kept as it is.
        """
        length = self.piece_length(n)
        if len(data) != length:
            raise ValueError(f"piece {n} of task {self.task_id} is {length} bytes, got {len(data)}")
        if self._deleted:
            raise TaskNotFound(f"task {self.task_id} was deleted")
        existing = self._pieces.get(n)
        if existing is not None:
            if expected_digest is not None and expected_digest != existing.digest:
                raise PieceDigestMismatch(f"piece {n} of task {self.task_id}: digest differs from the stored one")
            return existing
        offset = n * self.piece_size
        try:
            digest = await asyncio.to_thread(self._write_sync, offset, data, expected_digest)
        except OSError as exc:
            if self._deleted:
                raise TaskNotFound(f"task {self.task_id} was deleted") from exc
            raise StorageError(f"cannot write piece {n} of task {self.task_id}: {exc.strerror}") from exc
        if digest is None:
            raise PieceDigestMismatch(f"piece {n} of task {self.task_id} does not match its expected digest")
        info = PieceInfo(number=n, offset=offset, size=length, digest=digest)
        self._add_piece(info, trusted=True)
        if len(self._pieces) == self.piece_count:
            await self._finish()
        return info

    def _write_sync(self, offset: int, data: bytes | memoryview | bytearray, expected: str | None) -> str | None:
        view = memoryview(data).cast("B")
        digest = piece_digest(view)
        if expected is not None and digest != expected:
            return None
        with self._io_lock:
            fd = self._open_private_sync()
            try:
                if self._file_key is not None and _file_key(os.fstat(fd)) != self._file_key:
                    self._trusted.clear()  # changed behind our back: re-verify everything
                done = 0
                while done < len(view):
                    done += os.pwrite(fd, view[done:], offset + done)
                self._file_key = _file_key(os.fstat(fd))
            finally:
                os.close(fd)
        return digest

    def _open_private_sync(self) -> int:
        """The data file for writing, never shared: an imported PUT may be hard-linked to the origin's
        object, and writing a piece in place would change that object too. Such a file is copied first
        (the inode changes, so every piece is verified again before it is served)."""
        fd = os.open(self.data_path, os.O_WRONLY)
        if os.fstat(fd).st_nlink == 1:
            return fd
        os.close(fd)
        tmp = self.data_path.with_name(self.data_path.name + ".private")
        shutil.copyfile(self.data_path, tmp)
        os.replace(tmp, self.data_path)
        return os.open(self.data_path, os.O_WRONLY)

    async def copy_pieces_from(self, src: Path, pieces: list[PieceInfo]) -> None:
        """Fill missing pieces from a file of the same content whose piece digests we already know."""
        missing = [p for p in pieces if p.number not in self._pieces]
        if not missing:
            return
        try:
            await asyncio.to_thread(self._copy_sync, src, missing)
        except OSError as exc:
            raise StorageError(f"cannot copy pieces into task {self.task_id}: {exc.strerror}") from exc
        for p in missing:
            if p.number not in self._pieces:
                self._add_piece(p, trusted=True)
        if len(self._pieces) == self.piece_count:
            await self._finish()

    def _copy_sync(self, src: Path, pieces: list[PieceInfo]) -> None:
        with self._io_lock:
            src_fd = os.open(src, os.O_RDONLY)
            dst_fd = self._open_private_sync()
            try:
                for p in pieces:
                    done = 0
                    while done < p.size:
                        n = os.copy_file_range(src_fd, dst_fd, p.size - done, p.offset + done, p.offset + done)
                        if n <= 0:
                            raise OSError(0, "short copy")
                        done += n
                self._file_key = _file_key(os.fstat(dst_fd))
            finally:
                os.close(src_fd)
                os.close(dst_fd)

    def _add_piece(self, info: PieceInfo, *, trusted: bool) -> None:
        self._pieces[info.number] = info
        if trusted:
            self._trusted.add(info.number)
        self.touch()
        self._notify()

    async def finish(self) -> None:
        """Complete the task when every piece is here: idempotent, waits for a completion under way."""
        while not self.done and len(self._pieces) == self.piece_count:
            if self._finishing:
                await self.wait_changed()
            else:
                await self._finish()

    async def _finish(self) -> None:
        """Every piece landed: fsync the data, then record the task as done in its metadata."""
        if self._finishing or self.done:
            return
        self._finishing = True
        try:
            snapshot = self._snapshot(done=True)
            await asyncio.to_thread(self._save_done, snapshot)
            # a piece may have been dropped while we were saving
            self.done = len(self._pieces) == self.piece_count
            self._saved_access = snapshot["last_access"]
        except OSError as exc:
            raise StorageError(f"cannot complete task {self.task_id}: {exc.strerror}") from exc
        finally:
            self._finishing = False
            self._notify()

    def _save_done(self, snapshot: dict[str, Any]) -> None:
        fd = os.open(self.data_path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        write_json_atomic(self.meta_path, snapshot)
        fsync_dir(self.directory)

    def fail(self, exc: BaseException) -> None:
        """The download failed: wake every waiter with the error (pieces already here stay usable)."""
        self._error = exc
        self._notify()

    def clear_failure(self) -> None:
        """A new download run starts: waiters wait again instead of failing."""
        self._error = None

    def _notify(self) -> None:
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    # -- reading -------------------------------------------------------------------------------

    async def wait_piece(self, n: int) -> PieceInfo:
        """Until piece `n` lands; raises the download's error (or TaskNotFound once deleted)."""
        self._check_number(n)
        while True:
            changed = self._changed
            info = self._pieces.get(n)
            if info is not None:
                return info
            if self._error is not None:
                raise _copy_error(self._error)
            await changed.wait()

    async def wait_changed(self) -> None:
        """Until the next piece lands, is dropped, or the task fails (for pollers of the piece table)."""
        await self._changed.wait()

    async def verified_region(self, n: int, *, checked: bool = False) -> FileRegion:
        """Piece `n`'s span of the data file, verified per the module's policy.

        `checked`: the caller ran `check_file_sync()` for this very read (in a worker-thread hop it
        made anyway), so a trusted piece needs no further look and no hop.
        Raises PieceNotFound when the piece is not here, PieceDigestMismatch (after dropping it) when
        its bytes no longer match.
        """
        info = self._pieces.get(n)
        if info is None:
            raise PieceNotFound(f"piece {n} of task {self.task_id} is not here")
        if checked and n in self._trusted:
            self.touch()
            return FileRegion(str(self.data_path), info.offset, info.size)
        try:
            ok = await asyncio.to_thread(self._verify_sync, info)
        except OSError as exc:
            ok = False
            log.warning("task_id=%s piece=%d unreadable: %s", self.task_id, n, exc.strerror)
        if not ok:
            self._drop(info)
            raise PieceDigestMismatch(f"piece {n} of task {self.task_id} no longer matches its digest; dropped")
        self.touch()
        return FileRegion(str(self.data_path), info.offset, info.size)

    def check_file_sync(self) -> os.stat_result:
        """Stat the data file (blocking): if it changed since our last look, trust no piece any more."""
        with self._io_lock:
            st = os.stat(self.data_path)
            key = _file_key(st)
            if key != self._file_key:
                self._trusted.clear()
                self._file_key = key
        return st

    def _verify_sync(self, info: PieceInfo) -> bool:
        self.check_file_sync()
        if info.number in self._trusted:
            return True
        fd = os.open(self.data_path, os.O_RDONLY)
        try:
            ok = digest_span(fd, info.offset, info.size, bytearray(min(IO_CHUNK, max(info.size, 1)))) == info.digest
        finally:
            os.close(fd)
        if ok:
            self._trusted.add(info.number)
        return ok

    def _drop(self, info: PieceInfo) -> None:
        if self._pieces.get(info.number) is info:
            del self._pieces[info.number]
            self._trusted.discard(info.number)
            self.done = False
            log.warning("task_id=%s piece=%d failed verification; dropped", self.task_id, info.number)
            self._notify()

    # -- persistence ---------------------------------------------------------------------------

    def _snapshot(self, *, done: bool) -> dict[str, Any]:
        return {
            "version": META_VERSION,
            "task_id": self.task_id,
            "url": self.url,
            "content_length": self.content_length,
            "piece_size": self.piece_size,
            "piece_count": self.piece_count,
            "content_type": self.content_type,
            "byte_range": None if self.byte_range is None else [self.byte_range.start, self.byte_range.length],
            "source": None if self.source is None else {"size": self.source.size, "version": self.source.version},
            "done": done,
            "task_digest": _task_digest(self._pieces[n].digest for n in range(self.piece_count)) if done else "",
            "last_access": self.last_access,
            "pieces": [[p.number, p.offset, p.size, p.digest] for p in self.pieces()],
        }

    @property
    def dirty(self) -> bool:
        return self.done and self.last_access != self._saved_access

    async def save(self) -> None:
        """Persist a completed task's metadata (its last access time) if it changed."""
        if not self.dirty or self._deleted:
            return
        snapshot = self._snapshot(done=True)
        await asyncio.to_thread(write_json_atomic, self.meta_path, snapshot)
        self._saved_access = snapshot["last_access"]

    @classmethod
    def load(cls, directory: Path, clock: Callable[[], float]) -> TaskStore:
        """Rebuild a completed task from its metadata; raises ValueError/OSError/KeyError when broken."""
        meta = json.loads((directory / META_NAME).read_text())
        if meta.get("version") != META_VERSION or not meta.get("done"):
            raise ValueError("incomplete or unknown metadata")
        if meta["task_id"] != directory.name or not valid_task_id(directory.name):
            raise ValueError("task id does not match its directory")
        br = meta.get("byte_range")
        src = meta.get("source")  # absent in metadata written before it was recorded
        task = cls(
            task_id=TaskID(meta["task_id"]),
            directory=directory,
            url=str(meta["url"]),
            content_length=int(meta["content_length"]),
            piece_size=int(meta["piece_size"]),
            content_type=str(meta["content_type"]),
            byte_range=None if br is None else ByteRange(int(br[0]), int(br[1])),
            clock=clock,
            last_access=float(meta["last_access"]),
            source=None
            if src is None
            else SourceStat(size=int(src["size"]), version=str(src["version"]), content_type=str(meta["content_type"])),
        )
        pieces = [PieceInfo(int(n), int(off), int(size), str(dg)) for n, off, size, dg in meta["pieces"]]
        if [p.number for p in pieces] != list(range(task.piece_count)):
            raise ValueError("piece table is not complete")
        for p in pieces:
            if p.offset != p.number * task.piece_size or p.size != task.piece_length(p.number):
                raise ValueError(f"piece {p.number} has a wrong span")
            task._pieces[p.number] = p
        st = os.stat(task.data_path)
        if st.st_size != task.content_length:
            raise ValueError("data file has the wrong size")
        task._file_key = _file_key(st)  # nothing trusted yet: every piece is verified on first serve
        task.done = True
        task._saved_access = task.last_access
        return task

    # -- lifecycle (called by PieceStore; the sync ones run in a thread) ----------------------------

    def init_files(self) -> None:
        """Create the task's directory, its sparse data file and its first metadata."""
        if self.directory.exists():
            shutil.rmtree(self.directory)  # leftovers of a task we no longer know (deleted mid-write)
        for attempt in range(2):
            try:
                self.directory.mkdir(parents=True)
                break
            except FileNotFoundError:  # a delete removed the empty prefix directory under us
                if attempt:
                    raise
        with open(self.data_path, "wb") as f:
            f.truncate(self.content_length)
        self._file_key = _file_key(os.stat(self.data_path))
        write_json_atomic(self.meta_path, self._snapshot(done=self.done))
        self._saved_access = self.last_access

    def stage_import(self, src: Path) -> list[PieceInfo]:
        """Link (or kernel-copy) `src` into this staging task's directory and digest its pieces."""
        self.directory.mkdir(parents=True)
        try:
            os.link(src, self.data_path)
        except OSError:
            shutil.copyfile(src, self.data_path)  # sendfile/copy_file_range inside, not through Python
        size = os.stat(self.data_path).st_size
        if size != self.content_length:
            raise ValueError(f"file is {size} bytes, expected {self.content_length}")
        pieces: list[PieceInfo] = []
        buf = bytearray(IO_CHUNK)
        fd = os.open(self.data_path, os.O_RDONLY)
        try:
            for n in range(self.piece_count):
                offset, length = n * self.piece_size, self.piece_length(n)
                pieces.append(PieceInfo(n, offset, length, digest_span(fd, offset, length, buf)))
        finally:
            os.close(fd)
        return pieces

    def install_import(self, pieces: list[PieceInfo], final: Path) -> None:
        """Record the staged task as done and move its directory to `final`."""
        for p in pieces:
            self._pieces[p.number] = p
        self.done = True
        write_json_atomic(self.meta_path, self._snapshot(done=True))
        if final.exists():
            shutil.rmtree(final)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.rename(self.directory, final)
        fsync_dir(final.parent)

    def trusts_all(self) -> bool:
        """Every piece is here and needs no verification before it is served."""
        return len(self._trusted) == self.piece_count

    def trust_all(self) -> None:
        self._trusted.update(self._pieces)

    def mark_deleted(self) -> None:
        self._deleted = True
        self.fail(TaskNotFound(f"task {self.task_id} was deleted"))

    def _check_number(self, n: int) -> None:
        if not 0 <= n < self.piece_count:
            raise IndexError(f"piece {n} out of range for task {self.task_id} ({self.piece_count} pieces)")

    def __repr__(self) -> str:
        return (
            f"TaskStore({self.task_id[:12]}, {len(self._pieces)}/{self.piece_count} pieces, "
            f"done={self.done}, pins={self._pins})"
        )
