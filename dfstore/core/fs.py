"""The embedded default origin: a local directory, one subdirectory per bucket.

Layout under `root`:

    <bucket>/<key path>            object data; keys with `/` are nested directories
    .dfly/meta/<bucket>/<hh>/<h>.json   sidecar per key (h = sha256 of the key): ETag, content type,
                                   standard headers, user metadata, and the size + mtime_ns of the data
                                   file it describes
    .dfly/meta/<bucket>/<hh>/<h>.data   data of keys ending in `/` (the directory `<bucket>/<key>` exists
                                   too, so listings find it)
    .dfly/buckets/<bucket>.json    bucket creation time
    .dfly/tmp/                     temp files, renamed into place (same filesystem as the buckets)

No bucket name starts with `.`, so the hidden tree never collides with a bucket, and sidecars are
named by hash, so they never collide with a user key. A sidecar whose size or mtime_ns disagrees with
the data file is stale (the file was replaced by hand): the ETag is then recomputed lazily and cached.
Temp files live in `.dfly/tmp` rather than next to the target so a listing never sees a half-written
object and no temp name can shadow a user key.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import os
import shutil
import stat as stat_mod
import threading
import uuid
from bisect import bisect_left, bisect_right
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any

from dfstore.core.keys import MAX_KEY_BYTES, check_bucket, check_key
from dfstore.core.listing import PAST, paginate
from dfstore.errors import (
    BackendError,
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    ClientError,
    DFError,
    InvalidArgument,
    KeyConflict,
    KeyTooLongError,
    NoSuchBucket,
    NoSuchKey,
    PreconditionFailed,
)
from dfstore.models import Bucket, ListPage, ObjectMeta, PutOptions
from p2p.types import MiB

HIDDEN = ".dfly"
CHUNK = MiB
NAME_MAX = 255
_HEADER_FIELDS = ("content_type", "content_disposition", "content_encoding", "content_language",
                  "cache_control", "expires")


LOC_CACHE = 4096  # validated key locations kept (a GET needs its key's paths twice)


@dataclass(frozen=True)
class _Loc:
    bucket: str
    key: str
    bucket_dir: Path
    node: Path  # the key's place in the bucket tree: a file, or a directory for keys ending in `/`
    data: Path  # where the bytes are
    meta: Path  # the sidecar
    dir_key: bool
    steps: tuple[str, ...]  # node's path and its parents' below the bucket directory, top down


def _try_link(src: Path, dst: Path) -> bool:
    try:
        os.link(src, dst)
    except OSError:  # another filesystem, or links not supported
        return False
    return True


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_json_atomic(path: Path, tmp_dir: Path, record: dict[str, Any], *, durable: bool = True) -> None:
    tmp = tmp_dir / f"{uuid.uuid4().hex}.json"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _md5_file(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


class FilesystemBackend:
    name = "s3"  # what dfstore's /metadata reports, so JuiceFS accepts it

    def __init__(self, root: Path) -> None:
        self.root = Path(root).resolve()
        self._hidden = self.root / HIDDEN
        self._tmp = self._hidden / "tmp"
        self._tmp.mkdir(parents=True, exist_ok=True)
        (self._hidden / "buckets").mkdir(exist_ok=True)
        # Writers and deleters of one key take turns for the sidecar + rename step, so the sidecar
        # always describes the data file that won (striped: a lock per key would grow forever).
        self._key_locks = [threading.Lock() for _ in range(64)]
        # Plain dicts, cleared when full: safe to share between worker threads.
        self._locs: dict[tuple[str, str], _Loc] = {}
        self._sidecars: dict[str, tuple[tuple[int, int, int], dict[str, Any]]] = {}  # parsed, by identity

    def _key_lock(self, loc: _Loc) -> threading.Lock:
        return self._key_locks[hash((loc.bucket, loc.key)) % len(self._key_locks)]

    # ---- buckets -------------------------------------------------------------------------

    async def list_buckets(self) -> list[Bucket]:
        return await asyncio.to_thread(self._list_buckets)

    async def create_bucket(self, bucket: str) -> None:
        await asyncio.to_thread(self._create_bucket, bucket)

    async def head_bucket(self, bucket: str) -> None:
        await asyncio.to_thread(self._bucket_dir, bucket)

    async def delete_bucket(self, bucket: str) -> None:
        await asyncio.to_thread(self._delete_bucket, bucket)

    def _bucket_dir(self, bucket: str) -> Path:
        check_bucket(bucket)
        path = self.root / bucket
        if not path.is_dir():
            raise NoSuchBucket(f"bucket {bucket!r} does not exist", bucket=bucket)
        return path

    def _list_buckets(self) -> list[Bucket]:
        out = []
        for entry in sorted(os.scandir(self.root), key=lambda e: e.name):
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            try:
                check_bucket(entry.name)
            except DFError:
                continue  # a directory that cannot be a bucket name
            out.append(Bucket(entry.name, self._bucket_created(entry.name, entry.stat().st_mtime)))
        return out

    def _bucket_created(self, bucket: str, fallback_ts: float) -> datetime:
        try:
            record = json.loads((self._hidden / "buckets" / f"{bucket}.json").read_text())
            return datetime.fromisoformat(record["created"])
        except (OSError, ValueError, KeyError):
            return datetime.fromtimestamp(fallback_ts, UTC)

    def _create_bucket(self, bucket: str) -> None:
        check_bucket(bucket)
        try:
            (self.root / bucket).mkdir()
        except FileExistsError:
            raise BucketAlreadyOwnedByYou(f"bucket {bucket!r} already exists", bucket=bucket) from None
        record = {"created": datetime.now(UTC).isoformat()}
        _write_json_atomic(self._hidden / "buckets" / f"{bucket}.json", self._tmp, record)

    def _delete_bucket(self, bucket: str) -> None:
        path = self._bucket_dir(bucket)
        # Any file at all, even one no key can name (a symlink, a non-UTF-8 name), keeps it: only
        # empty directories are ever removed.
        for top, dirs, files in os.walk(path):
            if files or any(os.path.islink(os.path.join(top, d)) for d in dirs):
                raise BucketNotEmpty(f"bucket {bucket!r} is not empty", bucket=bucket)
        if next(self._scan(bucket, path, "", b"", {}), None) is not None:
            raise BucketNotEmpty(f"bucket {bucket!r} is not empty", bucket=bucket)
        shutil.rmtree(path)  # only empty directories are left
        shutil.rmtree(self._hidden / "meta" / bucket, ignore_errors=True)
        (self._hidden / "buckets" / f"{bucket}.json").unlink(missing_ok=True)

    # ---- keys -> paths -------------------------------------------------------------------

    def _loc(self, bucket: str, key: str) -> _Loc:
        loc = self._locs.get((bucket, key))
        if loc is None:
            loc = self._new_loc(bucket, key)
            if len(self._locs) >= LOC_CACHE:
                self._locs.clear()
            self._locs[(bucket, key)] = loc
        return loc

    def _new_loc(self, bucket: str, key: str) -> _Loc:
        check_bucket(bucket)
        check_key(bucket, key)
        dir_key = key.endswith("/")
        parts = key[:-1].split("/") if dir_key else key.split("/")
        for part in parts:
            if part in ("", ".", ".."):
                raise InvalidArgument(
                    "object key must not start with '/' or hold empty, '.' or '..' segments", bucket=bucket
                )
            if "\0" in part:
                raise InvalidArgument("object key must not contain NUL", bucket=bucket)
            if len(part.encode()) > NAME_MAX:
                raise KeyTooLongError(f"a key segment is longer than {NAME_MAX} bytes", bucket=bucket)
        # one Path per location (pathlib joins are slow, and listings do this per key)
        root = str(self.root)
        bucket_dir = Path(f"{root}/{bucket}")
        node = Path(f"{root}/{bucket}/{'/'.join(parts)}")
        meta = self._meta_base(bucket, key)
        data = Path(f"{meta}.data") if dir_key else node
        steps = tuple(f"{root}/{bucket}/{'/'.join(parts[: i + 1])}" for i in range(len(parts)))
        return _Loc(bucket, key, bucket_dir, node, data, Path(f"{meta}.json"), dir_key, steps)

    def _meta_base(self, bucket: str, key: str) -> str:
        """The sidecar path without its suffix: named by the key's hash, never by the key."""
        h = hashlib.sha256(key.encode()).hexdigest()
        return f"{self.root}/{HIDDEN}/meta/{bucket}/{h[:2]}/{h}"

    def check_key(self, bucket: str, key: str) -> None:
        self._loc(bucket, key)

    def _inside(self, loc: _Loc, path: Path) -> bool:
        """True when `path` (after following symlinks) stays inside the bucket directory."""
        real = os.path.realpath(path)
        return real.startswith(os.path.realpath(loc.bucket_dir) + os.sep)

    # ---- head / read ---------------------------------------------------------------------

    async def head_object(self, bucket: str, key: str, *, also: Callable[[], None] | None = None) -> ObjectMeta:
        return await asyncio.to_thread(self._head_also, bucket, key, also)

    def _head_also(self, bucket: str, key: str, also: Callable[[], None] | None) -> ObjectMeta:
        try:
            return self._head(bucket, key)
        finally:
            if also is not None:
                also()  # in the same hop (see Backend.head_object)

    def _stat(self, loc: _Loc, *, walked: bool = False) -> os.stat_result:
        """`walked`: the key came from a listing walk, which follows no symlinks: skip those checks."""
        if not walked and not loc.dir_key:
            st = self._lstat_plain(loc)
            if st is not None:
                return st
        if not walked and not loc.bucket_dir.is_dir():
            raise NoSuchBucket(f"bucket {loc.bucket!r} does not exist", bucket=loc.bucket)
        missing = NoSuchKey(f"no such key in bucket {loc.bucket!r}", bucket=loc.bucket, key=loc.key)
        try:
            if loc.dir_key and not loc.node.is_dir():
                raise missing
            if not walked and not self._inside(loc, loc.node):
                raise missing  # a symlink planted in the bucket that points outside it
            st = os.stat(loc.data)
        except (FileNotFoundError, NotADirectoryError):
            raise missing from None
        except OSError as exc:
            raise BackendError(f"cannot stat object: {exc.strerror}", bucket=loc.bucket, key=loc.key) from exc
        if not stat_mod.S_ISREG(st.st_mode):
            raise missing
        return st

    @staticmethod
    def _lstat_plain(loc: _Loc) -> os.stat_result | None:
        """The fast path of `_stat` for a plain key: lstat the key's path one level at a time below
        the bucket directory. No symlink on the way means it cannot lead outside the bucket, and the
        last lstat is the file's stat. None (take the slow path) for anything else."""
        st = None
        try:
            for step in loc.steps:
                st = os.lstat(step)
                if stat_mod.S_ISLNK(st.st_mode):
                    return None
        except OSError:
            return None  # missing, or not a directory: the slow path tells which error it is
        return st if st is not None and stat_mod.S_ISREG(st.st_mode) else None

    def _head(self, bucket: str, key: str, *, walked: bool = False) -> ObjectMeta:
        loc = self._loc(bucket, key)
        for _ in range(3):
            st = self._stat(loc, walked=walked)
            record = self._read_sidecar(loc, st)
            if record is not None:
                return self._meta(loc, st, record)
            etag = _md5_file(loc.data)
            after = self._stat(loc, walked=walked)
            if (after.st_ino, after.st_size, after.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns):
                # unchanged while hashing: cache it
                record = {"key": key, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "etag": etag}
                try:
                    loc.meta.parent.mkdir(parents=True, exist_ok=True)
                    _write_json_atomic(loc.meta, self._tmp, record, durable=False)  # a cache: no fsync
                except OSError:
                    pass  # a read-only origin still serves; the ETag is recomputed next time
                return self._meta(loc, st, record)
        raise BackendError("object keeps changing while its ETag is computed", bucket=bucket, key=key)

    def _read_sidecar(self, loc: _Loc, st: os.stat_result) -> dict[str, Any] | None:
        # Sidecars are only ever replaced (new inode), so a stat tells whether the parsed copy we
        # keep is still the file's content: one syscall instead of open, read, close and a parse.
        path = str(loc.meta)
        cached = self._sidecars.get(path)
        try:
            side = os.stat(path)
            if cached is not None and cached[0] == (side.st_ino, side.st_size, side.st_mtime_ns):
                record = cached[1]
            else:
                with open(path, encoding="utf-8") as f:
                    side = os.fstat(f.fileno())  # what we parse, should it be replaced meanwhile
                    record = json.load(f)
                if len(self._sidecars) >= LOC_CACHE:
                    self._sidecars.clear()
                self._sidecars[path] = ((side.st_ino, side.st_size, side.st_mtime_ns), record)
        except (OSError, ValueError):
            return None
        if record.get("key") != loc.key or record.get("size") != st.st_size:
            return None
        if record.get("mtime_ns") != st.st_mtime_ns:
            return None
        return record

    def _meta(self, loc: _Loc, st: os.stat_result, record: dict[str, Any]) -> ObjectMeta:
        headers = {name: str(record[name]) for name in _HEADER_FIELDS if record.get(name)}
        return ObjectMeta(
            bucket=loc.bucket,
            key=loc.key,
            size=st.st_size,
            etag=str(record["etag"]),
            last_modified=datetime.fromtimestamp(st.st_mtime_ns / 1e9, UTC),
            user_meta=dict(record.get("user_meta") or {}),
            **headers,
        )

    async def read_object(
        self, bucket: str, key: str, offset: int, length: int, *, etag: str | None = None
    ) -> AsyncIterator[bytes]:
        loc = self._loc(bucket, key)
        await asyncio.to_thread(self._stat, loc)
        try:
            f = await asyncio.to_thread(open, loc.data, "rb")
        except (FileNotFoundError, NotADirectoryError):
            raise NoSuchKey(f"no such key in bucket {bucket!r}", bucket=bucket, key=key) from None
        try:
            if etag:
                await asyncio.to_thread(self._check_version, loc, f.fileno(), etag)
            await asyncio.to_thread(f.seek, offset)
            left = length
            while left > 0:
                chunk = await asyncio.to_thread(f.read, min(CHUNK, left))
                if not chunk:
                    raise BackendError(f"short read: {left} bytes missing", bucket=bucket, key=key)
                left -= len(chunk)
                yield chunk
        finally:
            await asyncio.to_thread(f.close)

    def _check_version(self, loc: _Loc, fd: int, etag: str) -> None:
        """The file we opened must be the version `etag` names. Without a valid sidecar (a
        read-only origin could not cache one) there is nothing cheap to compare: let it pass."""
        record = self._read_sidecar(loc, os.fstat(fd))
        if record is not None and record.get("etag") != etag:
            raise PreconditionFailed(
                "the object changed at the origin during the download", bucket=loc.bucket, key=loc.key
            )

    # ---- write ---------------------------------------------------------------------------

    async def put_object(
        self, bucket: str, key: str, path: Path, options: PutOptions, *, etag: str | None = None
    ) -> ObjectMeta:
        return await asyncio.to_thread(self._put, bucket, key, path, options, etag)

    async def copy_object(
        self, bucket: str, key: str, src_bucket: str, src_key: str, options: PutOptions | None
    ) -> ObjectMeta:
        return await asyncio.to_thread(self._copy, bucket, key, src_bucket, src_key, options)

    def _copy(self, bucket: str, key: str, src_bucket: str, src_key: str, options: PutOptions | None) -> ObjectMeta:
        src = self._head(src_bucket, src_key)
        if options is None:
            options = PutOptions.from_meta(src)
        return self._put(bucket, key, self._loc(src_bucket, src_key).data, options, src.etag)

    def _put(self, bucket: str, key: str, src: Path, options: PutOptions, etag: str | None) -> ObjectMeta:
        loc = self._loc(bucket, key)
        if not loc.bucket_dir.is_dir():
            raise NoSuchBucket(f"bucket {bucket!r} does not exist", bucket=bucket)
        tmp = self._tmp / f"{uuid.uuid4().hex}.part"
        try:
            computed = self._copy_to_temp(src, tmp, hash_it=etag is None)
            st = os.stat(tmp)
            record: dict[str, Any] = {"key": key, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                      "etag": etag or computed, "user_meta": dict(options.user_meta)}
            record.update({name: getattr(options, name) for name in _HEADER_FIELDS})
            # A concurrent delete may prune the directories we just made: try again a few times.
            for attempt in range(5):
                try:
                    with self._key_lock(loc):
                        self._make_parents(loc)
                        _write_json_atomic(loc.meta, self._tmp, record)
                        os.replace(tmp, loc.data)
                    break
                except FileNotFoundError:
                    if attempt == 4:
                        raise
                except IsADirectoryError:
                    raise self._conflict(loc, "a key under it already exists") from None
            _fsync_dir(loc.data.parent)
            return self._meta(loc, st, record)
        except OSError as exc:
            if exc.errno in (errno.ENOTDIR, errno.EEXIST):
                raise self._conflict(loc, "an object exists where a directory is needed") from exc
            raise BackendError(f"cannot write object: {exc.strerror}", bucket=bucket, key=key) from exc
        finally:
            tmp.unlink(missing_ok=True)

    def _copy_to_temp(self, src: Path, tmp: Path, *, hash_it: bool) -> str:
        """Copy `src` to `tmp` and fsync it; the MD5 on the way only when no ETag was given."""
        digest = hashlib.md5()
        if not hash_it:
            # A spool, journal or staging file is written once and never modified in place: sharing
            # its inode costs no copy. Objects inside the origin are always copied, so every key keeps
            # its own file.
            if src.resolve().is_relative_to(self.root) or not _try_link(src, tmp):
                shutil.copyfile(src, tmp)  # in the kernel (sendfile): the bytes never enter Python
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
            return ""
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            while chunk := fin.read(CHUNK):
                digest.update(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        return digest.hexdigest()

    def _make_parents(self, loc: _Loc) -> None:
        parent = loc.node if loc.dir_key else loc.node.parent
        if loc.node.is_dir() and not loc.dir_key:
            raise IsADirectoryError(errno.EISDIR, "is a directory")
        # Checked before mkdir, which would follow a planted symlink and create directories outside
        # (realpath resolves the existing part and keeps the missing rest as written).
        if not self._inside(loc, parent / "x"):
            raise InvalidArgument("object key resolves outside its bucket", bucket=loc.bucket)
        parent.mkdir(parents=True, exist_ok=True)
        loc.meta.parent.mkdir(parents=True, exist_ok=True)

    def _conflict(self, loc: _Loc, why: str) -> KeyConflict:
        return KeyConflict(
            f"cannot store {loc.key!r} in the directory origin: {why} "
            "(a key cannot be both an object and a prefix of other keys here)",
            bucket=loc.bucket,
            key=loc.key,
        )

    async def delete_object(self, bucket: str, key: str) -> None:
        await asyncio.to_thread(self._delete, bucket, key)

    def _delete(self, bucket: str, key: str) -> None:
        loc = self._loc(bucket, key)
        if not loc.bucket_dir.is_dir():
            raise NoSuchBucket(f"bucket {bucket!r} does not exist", bucket=bucket)
        inside = self._inside(loc, loc.node)
        try:
            if not loc.dir_key:
                if loc.node.is_dir() or not inside:
                    return  # not an object: nothing to delete
            with self._key_lock(loc):
                loc.data.unlink(missing_ok=True)
                loc.meta.unlink(missing_ok=True)
        except NotADirectoryError:
            return
        except OSError as exc:
            raise BackendError(f"cannot delete object: {exc.strerror}", bucket=bucket, key=key) from exc
        if inside:
            self._prune(loc)

    def _prune(self, loc: _Loc) -> None:
        """Remove directories left empty, up to the bucket, keeping those that are `dir/` objects."""
        path = loc.node if loc.dir_key else loc.node.parent
        while path != loc.bucket_dir and loc.bucket_dir in path.parents:
            rel = path.relative_to(loc.bucket_dir).as_posix() + "/"
            try:
                if self._loc(loc.bucket, rel).meta.exists():
                    return
            except DFError:
                pass  # a directory too deep to be a key: it cannot be a `dir/` object either
            try:
                path.rmdir()
            except OSError:
                return  # not empty, or already gone
            path = path.parent

    async def close(self) -> None:
        return None  # nothing held open between calls

    # ---- list ----------------------------------------------------------------------------

    async def list_objects(
        self, bucket: str, *, prefix: str = "", marker: str = "", delimiter: str = "", max_keys: int = 1000
    ) -> ListPage:
        return await asyncio.to_thread(self._list, bucket, prefix, marker, delimiter, max_keys)

    def _list(self, bucket: str, prefix: str, marker: str, delimiter: str, max_keys: int) -> ListPage:
        bucket_dir = self._bucket_dir(bucket)
        cache: dict[bytes, list[tuple[bytes, bool]]] = {}
        page = paginate(
            lambda after: self._scan(bucket, bucket_dir, prefix, after, cache),
            prefix=prefix, marker=marker, delimiter=delimiter, max_keys=max_keys,
        )
        objects = []
        for key in page.items:
            try:
                objects.append(self._head(bucket, key, walked=True))
            except ClientError:
                continue  # deleted since the scan
        return ListPage(objects, page.common_prefixes, page.is_truncated, page.next_marker)

    def _scan(
        self, bucket: str, bucket_dir: Path, prefix: str, after: bytes, cache: dict[bytes, list[tuple[bytes, bool]]]
    ) -> Iterator[tuple[str, str]]:
        """Yield (key, key) for every object whose key starts with `prefix` and sorts after `after`."""
        prefix_b = prefix.encode()

        def entries(dir_path: bytes) -> list[tuple[bytes, bool]]:
            if dir_path not in cache:
                found = []
                try:
                    with os.scandir(dir_path) as it:
                        for e in it:
                            if e.is_symlink():
                                continue
                            try:
                                e.name.decode("utf-8")
                            except UnicodeDecodeError:
                                continue  # not representable as a key
                            if e.is_dir(follow_symlinks=False):
                                found.append((e.name + b"/", True))
                            elif e.is_file(follow_symlinks=False):
                                found.append((e.name, False))
                except (FileNotFoundError, NotADirectoryError):
                    pass
                found.sort()  # byte order; directories sort as "name/", as their keys do
                cache[dir_path] = found
            return cache[dir_path]

        def first_index(items: list[tuple[bytes, bool]], bound: bytes, bisect: Callable[..., int]) -> int:
            """Where entries that may hold keys at or past `bound` start: the directory whose name
            is a prefix of the bound sorts just before it and must be entered too."""
            i = bisect(items, bound, key=itemgetter(0))
            if i and items[i - 1][1] and bound.startswith(items[i - 1][0]):
                i -= 1
            return i

        def walk(dir_path: bytes, rel: bytes) -> Iterator[tuple[str, str]]:
            items = entries(dir_path)
            # Jump over what sorts before the marker or the prefix instead of scanning it: a
            # listing restarts here after every common prefix.
            start = 0
            if after.startswith(rel) and len(after) > len(rel):
                start = first_index(items, after[len(rel):], bisect_right)
            local_prefix = prefix_b[len(rel):] if prefix_b.startswith(rel) else b""
            if local_prefix:
                start = max(start, first_index(items, local_prefix, bisect_left))
            for idx in range(start, len(items)):
                name, is_dir = items[idx]
                if local_prefix and name > local_prefix and not name.startswith(local_prefix):
                    break  # sorted: nothing later can match the prefix
                key_b = rel + name
                if len(key_b) > MAX_KEY_BYTES and not is_dir:
                    continue
                if is_dir:
                    if not (key_b.startswith(prefix_b) or prefix_b.startswith(key_b)):
                        continue
                    if key_b + PAST <= after:
                        continue  # the whole subtree sorts before the bound
                    if key_b > after and key_b.startswith(prefix_b) and len(key_b) <= MAX_KEY_BYTES:
                        key = key_b.decode()
                        if os.path.isfile(self._meta_base(bucket, key) + ".data"):
                            yield key, key  # the `dir/` object itself
                    yield from walk(dir_path + b"/" + name[:-1], key_b)
                elif key_b > after and key_b.startswith(prefix_b):
                    yield key_b.decode(), key_b.decode()

        yield from walk(os.fsencode(bucket_dir), b"")
