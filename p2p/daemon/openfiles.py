"""Descriptors of completed tasks' data files, kept open between reads, and the file check that rides
along in a caller's worker-thread hop.

Opening and closing a task's data file per GET costs two worker-thread hops, and stat-ing it for
the verification policy (p2p/daemon/store.py) a third; for a small cached object these hops are most
of the request. So:

- `OpenFiles` (owned by the PieceStore) keeps a bounded LRU of open read-only files, one per
  completed task. A file in use by readers is never closed under them: evicting or deleting it
  only retires it, and its last user hands it on for closing.
- Closing is I/O (the last close of a deleted file frees its blocks), so nothing closes a file on
  the event loop: retired files wait in a thread-safe queue that the next worker-thread hop drains
  (`drain_sync`: a FileProbe, a GC round, a delete, shutdown).
- `FileProbe` is the stat (and, when no descriptor is held, the open) of one completed task's data
  file, written as a plain blocking call so that a caller who makes a worker-thread hop anyway
  (the object service's origin HEAD) runs it in that same hop. The TaskManager applies its result
  when the read opens (`TaskManager.open(..., probe=...)`), so a cached read needs no hop of its own.
"""

from __future__ import annotations

import contextlib
import os
from collections import OrderedDict, deque
from typing import TYPE_CHECKING, BinaryIO

from p2p.types import TaskID

if TYPE_CHECKING:
    from p2p.daemon.taskstore import TaskStore

DEFAULT_CAPACITY = 256  # open data files; a file per completed task recently read
SMALL_BYTES = 64 * 1024  # a task this small is read along with its check: no sendfile for it


class SharedFile:
    """One open read-only data file and the number of readers sending from it."""

    __slots__ = ("file", "ino", "retired", "users")

    def __init__(self, file: BinaryIO, ino: int) -> None:
        self.file = file
        self.ino = ino  # the inode it was opened on: the path may be replaced later
        self.users = 0
        self.retired = False


class OpenFiles:
    """A bounded LRU of open data files by task id. Used on the event loop, except `drain_sync`."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY) -> None:
        self.capacity = max(1, capacity)
        self._files: OrderedDict[TaskID, SharedFile] = OrderedDict()
        self._closable: deque[BinaryIO] = deque()  # append/popleft are safe across threads

    def __len__(self) -> int:
        return len(self._files)

    def get(self, task_id: TaskID) -> SharedFile | None:
        shared = self._files.get(task_id)
        if shared is not None:
            self._files.move_to_end(task_id)
        return shared

    def put(self, task_id: TaskID, shared: SharedFile) -> SharedFile:
        """Keep `shared` open for the task (the one already kept wins); evict beyond capacity."""
        kept = self._files.get(task_id)
        if kept is not None:
            self.close_later(shared)
            return kept
        self._files[task_id] = shared
        while len(self._files) > self.capacity:
            _, old = self._files.popitem(last=False)
            self._retire(old)
        return shared

    def discard(self, task_id: TaskID) -> None:
        """The task is gone or its file changed: stop handing its descriptor out."""
        shared = self._files.pop(task_id, None)
        if shared is not None:
            self._retire(shared)

    def acquire(self, shared: SharedFile) -> None:
        shared.users += 1

    def release(self, shared: SharedFile) -> None:
        shared.users -= 1
        if shared.retired and shared.users == 0:
            self.close_later(shared)

    def retire_all(self) -> None:
        for task_id in list(self._files):
            self.discard(task_id)

    def _retire(self, shared: SharedFile) -> None:
        shared.retired = True
        if shared.users == 0:
            self.close_later(shared)

    def close_later(self, shared: SharedFile) -> None:
        """Close `shared` in the next worker-thread hop; it must have no users."""
        shared.retired = True
        self._closable.append(shared.file)

    def drain_sync(self) -> None:
        """Close every retired, unused file (blocking: call it in a worker thread)."""
        while True:
            try:
                f = self._closable.popleft()
            except IndexError:
                return
            with contextlib.suppress(OSError):
                f.close()


class FileProbe:
    """Check a completed task's data file, and open it if no descriptor is held: one blocking call.

    Call it (in a worker thread) right before the read; it never raises. Then pass it to
    `TaskManager.open(..., probe=...)`, which applies it on the event loop: the verification stat
    is done (a trusted piece is served without another look), and the descriptor is kept open.
    """

    def __init__(self, task: TaskStore, files: OpenFiles, held: SharedFile | None) -> None:
        self.task = task
        self.held = held
        self.opened: SharedFile | None = None
        self.ino = -1  # the data file's inode when checked; -1: the check did not run or failed
        self.data: bytes | None = None  # the whole data file of a small task, read after the check
        self._files = files

    def __call__(self) -> None:
        self._files.drain_sync()
        try:
            st = self.task.check_file_sync()
            shared = self.held
            if shared is None:
                f = open(self.task.data_path, "rb", buffering=0)  # kept open by OpenFiles
                shared = self.opened = SharedFile(f, os.fstat(f.fileno()).st_ino)
            size = self.task.content_length
            # only bytes the check vouches for: a piece it no longer trusts is verified (maybe
            # fetched again) by the read itself
            if size <= SMALL_BYTES and shared.ino == st.st_ino and self.task.trusts_all():
                data = os.pread(shared.file.fileno(), size, 0)
                self.data = data if len(data) == size else None
            self.ino = st.st_ino
        except OSError:
            self.ino = -1

    def apply(self, task: TaskStore) -> SharedFile | None:
        """On the loop, once the read resolved to `task`: the open file that the check covers, with
        one user added for the reader (release it when done), or None (then open by path as usual)."""
        files = self._files
        opened, self.opened = self.opened, None
        if task is not self.task or self.ino < 0 or not task.done:
            if opened is not None:
                files.close_later(opened)
            return None
        shared = files.put(task.task_id, opened) if opened is not None else files.get(task.task_id)
        if shared is None or shared.ino != self.ino:
            files.discard(task.task_id)  # the path names another file now: stop sending from this one
            return None
        files.acquire(shared)
        return shared

    def abandon(self) -> None:
        """The read did not happen (the origin said no): close what the check opened."""
        opened, self.opened = self.opened, None
        if opened is not None:
            self._files.close_later(opened)
