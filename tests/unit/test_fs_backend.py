"""FilesystemBackend: paths stay inside the root, atomic writes, MD5 ETags, S3 ListObjects v1 paging."""

from __future__ import annotations

import hashlib
import os
import random
from pathlib import Path

import pytest

from dfstore.core.fs import FilesystemBackend
from dfstore.errors import (
    BucketAlreadyOwnedByYou,
    BucketNotEmpty,
    InvalidArgument,
    InvalidBucketName,
    KeyConflict,
    KeyTooLongError,
    NoSuchBucket,
    NoSuchKey,
)
from dfstore.models import PutOptions

B = "bkt"


@pytest.fixture
async def fs(tmp_path: Path) -> FilesystemBackend:
    backend = FilesystemBackend(tmp_path / "origin")
    await backend.create_bucket(B)
    return backend


async def put(fs: FilesystemBackend, tmp_path: Path, key: str, data: bytes, **opts: object) -> str:
    src = tmp_path / f"src-{random.getrandbits(64):x}"
    src.write_bytes(data)
    meta = await fs.put_object(B, key, src, PutOptions(**opts))  # type: ignore[arg-type]
    assert src.exists()  # the caller keeps its file
    return meta.etag


async def read(fs: FilesystemBackend, key: str, offset: int = 0, length: int | None = None) -> bytes:
    if length is None:
        length = (await fs.head_object(B, key)).size - offset
    return b"".join([c async for c in fs.read_object(B, key, offset, length)])


async def test_put_head_read_roundtrip(fs: FilesystemBackend, tmp_path: Path) -> None:
    data = random.Random(1).randbytes(3 * 1024 * 1024 + 7)
    etag = await put(fs, tmp_path, "dir/sub/obj.bin", data, content_type="text/plain",
                     cache_control="no-cache", user_meta={"digest": "md5:x", "a": "b"})
    assert etag == hashlib.md5(data).hexdigest()
    meta = await fs.head_object(B, "dir/sub/obj.bin")
    assert (meta.size, meta.etag, meta.content_type, meta.cache_control) == (len(data), etag, "text/plain", "no-cache")
    assert meta.user_meta == {"digest": "md5:x", "a": "b"}
    assert meta.last_modified.tzinfo is not None
    assert await read(fs, "dir/sub/obj.bin") == data
    start = 1024 * 1024 - 3
    assert await read(fs, "dir/sub/obj.bin", start, 1024 * 1024 + 10) == data[start:start + 1024 * 1024 + 10]
    # nothing but the object itself lands in the bucket directory
    assert sorted(p.name for p in (tmp_path / "origin" / B).rglob("*")) == ["dir", "obj.bin", "sub"]
    assert list((tmp_path / "origin" / ".dfly" / "tmp").iterdir()) == []


async def test_overwrite_changes_etag_and_keeps_new_metadata(fs: FilesystemBackend, tmp_path: Path) -> None:
    await put(fs, tmp_path, "k", b"one", content_type="a/b")
    etag = await put(fs, tmp_path, "k", b"two!", content_type="c/d")
    meta = await fs.head_object(B, "k")
    assert (meta.etag, meta.size, meta.content_type) == (etag, 4, "c/d")
    assert await read(fs, "k") == b"two!"


async def test_empty_object(fs: FilesystemBackend, tmp_path: Path) -> None:
    await put(fs, tmp_path, "empty", b"")
    meta = await fs.head_object(B, "empty")
    assert (meta.size, meta.etag) == (0, hashlib.md5(b"").hexdigest())
    assert await read(fs, "empty") == b""


async def test_short_read_is_an_error(fs: FilesystemBackend, tmp_path: Path) -> None:
    await put(fs, tmp_path, "small", b"12345")
    with pytest.raises(Exception) as info:
        await read(fs, "small", 3, 10)
    assert type(info.value).__name__ == "BackendError"


@pytest.mark.parametrize(
    ("key", "error"),
    [
        ("../escape", InvalidArgument),
        ("a/../../escape", InvalidArgument),
        ("/etc/passwd", InvalidArgument),
        ("a//b", InvalidArgument),
        ("./a", InvalidArgument),
        ("a/./b", InvalidArgument),
        ("..", InvalidArgument),
        ("a\0b", InvalidArgument),
        ("", InvalidArgument),
        ("/", InvalidArgument),
        ("k" * 1025, KeyTooLongError),
        ("é" * 513, KeyTooLongError),
        ("s" * 256, KeyTooLongError),
        ("\udc80", InvalidArgument),
    ],
)
async def test_bad_keys_never_touch_the_disk(fs: FilesystemBackend, tmp_path: Path, key: str, error: type) -> None:
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    src = tmp_path / "payload"
    src.write_bytes(b"x")
    with pytest.raises(error):
        await fs.put_object(B, key, src, PutOptions())
    with pytest.raises(error):
        await fs.head_object(B, key)
    with pytest.raises(error):
        await fs.delete_object(B, key)
    with pytest.raises(error):
        [c async for c in fs.read_object(B, key, 0, 1)]
    assert sorted(str(p) for p in tmp_path.rglob("*") if p.name != "payload") == before


async def test_bad_bucket_names(fs: FilesystemBackend, tmp_path: Path) -> None:
    for name in ["..", ".dfly", "a", "UPPER", "a/b", "x" * 64, "a..b", "192.168.1.1", "-ab"]:
        with pytest.raises(InvalidBucketName):
            await fs.create_bucket(name)
        with pytest.raises(InvalidBucketName):
            await fs.head_object(name, "k")
    assert [b.name for b in await fs.list_buckets()] == [B]


async def test_symlink_out_of_the_root_is_not_followed(fs: FilesystemBackend, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.mkdir()
    (secret / "passwd").write_bytes(b"root")
    os.symlink(secret, tmp_path / "origin" / B / "link")
    with pytest.raises(NoSuchKey):
        await fs.head_object(B, "link/passwd")
    with pytest.raises(InvalidArgument):
        await put(fs, tmp_path, "link/new", b"x")
    with pytest.raises(InvalidArgument):
        await put(fs, tmp_path, "link/deeper/dirs/obj", b"x")
    with pytest.raises(InvalidArgument):
        await put(fs, tmp_path, "link/sub/", b"")
    (secret / "keep").mkdir()
    await fs.delete_object(B, "link/keep/")
    await fs.delete_object(B, "link/passwd")
    assert sorted(p.name for p in secret.iterdir()) == ["keep", "passwd"]
    assert (await fs.list_objects(B)).objects == []


async def test_key_conflicts(fs: FilesystemBackend, tmp_path: Path) -> None:
    await put(fs, tmp_path, "a", b"file")
    with pytest.raises(KeyConflict, match="'a/b'"):
        await put(fs, tmp_path, "a/b", b"x")
    with pytest.raises(KeyConflict):
        await put(fs, tmp_path, "a/", b"")
    await put(fs, tmp_path, "d/e", b"x")
    with pytest.raises(KeyConflict, match="'d'"):
        await put(fs, tmp_path, "d", b"x")
    assert await read(fs, "a") == b"file"
    with pytest.raises(NoSuchKey):
        await fs.head_object(B, "a/b")
    with pytest.raises(NoSuchKey):
        await fs.head_object(B, "d")


async def test_directory_keys_are_kept(fs: FilesystemBackend, tmp_path: Path) -> None:
    await put(fs, tmp_path, "c/", b"")
    await put(fs, tmp_path, "x/", b"hello")
    await put(fs, tmp_path, "x/y", b"y")
    assert (await fs.head_object(B, "c/")).size == 0
    assert await read(fs, "x/") == b"hello"
    with pytest.raises(NoSuchKey):
        await fs.head_object(B, "c")
    page = await fs.list_objects(B)
    assert [o.key for o in page.objects] == ["c/", "x/", "x/y"]
    # deleting x/y keeps the x/ object; deleting x/ then removes the empty directory
    await fs.delete_object(B, "x/y")
    assert [o.key for o in (await fs.list_objects(B)).objects] == ["c/", "x/"]
    await fs.delete_object(B, "x/")
    assert not (tmp_path / "origin" / B / "x").exists()
    assert [o.key for o in (await fs.list_objects(B)).objects] == ["c/"]


async def test_delete_is_idempotent_and_prunes_directories(fs: FilesystemBackend, tmp_path: Path) -> None:
    await put(fs, tmp_path, "p/q/r", b"1")
    await put(fs, tmp_path, "p/s", b"2")
    await fs.delete_object(B, "p/q/r")
    await fs.delete_object(B, "p/q/r")
    await fs.delete_object(B, "never/was")
    await fs.delete_object(B, "p")  # a directory, not an object
    assert not (tmp_path / "origin" / B / "p" / "q").exists()
    assert (tmp_path / "origin" / B / "p" / "s").exists()
    with pytest.raises(NoSuchKey):
        await fs.head_object(B, "p/q/r")
    with pytest.raises(NoSuchBucket):
        await fs.delete_object("nobucket", "k")


async def test_hand_dropped_files_get_a_lazy_md5(fs: FilesystemBackend, tmp_path: Path) -> None:
    path = tmp_path / "origin" / B / "dropped" / "f.txt"
    path.parent.mkdir()
    path.write_bytes(b"by hand")
    meta = await fs.head_object(B, "dropped/f.txt")
    assert (meta.etag, meta.size) == (hashlib.md5(b"by hand").hexdigest(), 7)
    assert meta.content_type == "application/octet-stream"
    assert [o.etag for o in (await fs.list_objects(B)).objects] == [meta.etag]
    # replaced by hand (new size and mtime): the cached ETag is not reused
    path.write_bytes(b"changed by hand")
    os.utime(path, ns=(1, 1_000_000_000))
    assert (await fs.head_object(B, "dropped/f.txt")).etag == hashlib.md5(b"changed by hand").hexdigest()
    # a file we wrote then replaced by hand loses its stale metadata
    await put(fs, tmp_path, "w", b"ours", content_type="text/x")
    (tmp_path / "origin" / B / "w").write_bytes(b"theirs!")
    meta = await fs.head_object(B, "w")
    assert (meta.etag, meta.content_type) == (hashlib.md5(b"theirs!").hexdigest(), "application/octet-stream")


async def test_buckets(fs: FilesystemBackend, tmp_path: Path) -> None:
    with pytest.raises(BucketAlreadyOwnedByYou):
        await fs.create_bucket(B)
    await fs.create_bucket("other")
    assert [b.name for b in await fs.list_buckets()] == [B, "other"]
    await fs.head_bucket("other")
    with pytest.raises(NoSuchBucket):
        await fs.head_bucket("missing")
    with pytest.raises(NoSuchBucket):
        await fs.list_objects("missing")
    with pytest.raises(NoSuchBucket):
        await put_into(fs, tmp_path, "missing")
    await put_into(fs, tmp_path, "other")
    with pytest.raises(BucketNotEmpty):
        await fs.delete_bucket("other")
    await fs.delete_object("other", "a/b")
    odd = tmp_path / "origin" / "other" / "deep"
    odd.mkdir()
    (odd / "x").symlink_to(tmp_path)  # not a key, but not ours to delete either
    with pytest.raises(BucketNotEmpty):
        await fs.delete_bucket("other")
    (odd / "x").unlink()
    await fs.delete_bucket("other")
    assert [b.name for b in await fs.list_buckets()] == [B]


async def put_into(fs: FilesystemBackend, tmp_path: Path, bucket: str) -> None:
    src = tmp_path / "one"
    src.write_bytes(b"1")
    await fs.put_object(bucket, "a/b", src, PutOptions())


async def test_copy(fs: FilesystemBackend, tmp_path: Path) -> None:
    etag = await put(fs, tmp_path, "src", b"payload", content_type="text/a", user_meta={"digest": "md5:1"})
    meta = await fs.copy_object(B, "dst/copy", B, "src", None)
    assert (meta.etag, meta.content_type, meta.user_meta) == (etag, "text/a", {"digest": "md5:1"})
    meta = await fs.copy_object(B, "dst/other", B, "src", PutOptions(content_type="text/b"))
    assert (meta.etag, meta.content_type, meta.user_meta) == (etag, "text/b", {})
    assert await read(fs, "dst/other") == b"payload"
    with pytest.raises(NoSuchKey):
        await fs.copy_object(B, "x", B, "missing", None)


# ---- listing: dfstore-wire.md §2.6 and the JuiceFS checklist (§5.4) ---------------------------

JUICEFS_KEYS = ["a/a", "a/a1", "b/b", "b/b1", "c/", "a1", "a/b/c/d/e/f", "test"]


def names(page: object) -> list[str]:
    return sorted([o.key for o in page.objects] + list(page.common_prefixes))  # type: ignore[attr-defined]


async def test_juicefs_delimiter_pagination(fs: FilesystemBackend, tmp_path: Path) -> None:
    for key in JUICEFS_KEYS:
        await put(fs, tmp_path, key, b"hello")
    page = await fs.list_objects(B, delimiter="/", max_keys=4)
    assert names(page) == ["a/", "a1", "b/", "c/"] and page.is_truncated and page.next_marker == "c/"
    page = await fs.list_objects(B, marker="c/", delimiter="/", max_keys=4)
    assert names(page) == ["test"] and not page.is_truncated and page.next_marker == ""
    page = await fs.list_objects(B, marker="test", delimiter="/", max_keys=4)
    assert names(page) == [] and not page.is_truncated
    assert names(await fs.list_objects(B, delimiter="/", max_keys=10)) == ["a/", "a1", "b/", "c/", "test"]
    assert names(await fs.list_objects(B, prefix="a", delimiter="/", max_keys=10)) == ["a/", "a1"]
    assert names(await fs.list_objects(B, prefix="a/", delimiter="/", max_keys=10)) == ["a/a", "a/a1", "a/b/"]
    assert [o.key for o in (await fs.list_objects(B, marker="test2")).objects] == []
    assert [o.key for o in (await fs.list_objects(B)).objects] == sorted(JUICEFS_KEYS)


async def test_listing_uses_utf8_byte_order(fs: FilesystemBackend, tmp_path: Path) -> None:
    special = "测试编码文件{\"name\":\"juicefs\"}\x1f%uFF081%uFF09.jpg"
    keys = [special, "a+b c", "Z", "a-b", "a/b", "ä", "\U0001f600", "a0"]
    for key in keys:
        await put(fs, tmp_path, key, b"")
    listed = [o.key for o in (await fs.list_objects(B)).objects]
    assert listed == sorted(keys, key=lambda k: k.encode())
    page = await fs.list_objects(B, prefix="测试编码文件", max_keys=1)
    assert [o.key for o in page.objects] == [keys[0]]


def model_list(keys: list[str], prefix: str, marker: str, delimiter: str, max_keys: int) -> list[str]:
    """The S3 v1 rules, written the slow and obvious way."""
    out: list[str] = []
    for key in sorted(keys, key=lambda k: k.encode()):
        if not key.startswith(prefix) or key.encode() <= marker.encode():
            continue
        entry = key
        if delimiter and delimiter in key[len(prefix):]:
            entry = key[: key.index(delimiter, len(prefix)) + len(delimiter)]
            if entry.encode() <= marker.encode() or entry in out:
                continue
        out.append(entry)
    return out[:max_keys]


async def test_listing_matches_the_model(fs: FilesystemBackend, tmp_path: Path) -> None:
    rng = random.Random(7)
    alphabet = ["a", "b", "/", "-", "é", "z"]
    keys: set[str] = set()
    while len(keys) < 60:
        key = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 6)))
        segs = key.split("/")
        if any(s == "" for s in segs[:-1]) or key.startswith("/"):
            continue
        # the directory origin cannot hold a key that is also a directory of another key
        candidate = keys | {key}
        if any(o.startswith(k + "/") for k in candidate for o in candidate):
            continue
        keys.add(key)
    for key in keys:
        await put(fs, tmp_path, key, b"")
    for _ in range(300):
        prefix = rng.choice(["", "a", "a/", "b", "é", "z/", "a/b", "b/a/", "a-"])
        marker = rng.choice(["", "a", "a/", "b/", "b-", rng.choice(sorted(keys))])
        delimiter = rng.choice(["", "/", "-"])
        max_keys = rng.randint(0, 12)
        page = await fs.list_objects(B, prefix=prefix, marker=marker, delimiter=delimiter, max_keys=max_keys)
        got = sorted([o.key for o in page.objects] + page.common_prefixes, key=lambda k: k.encode())
        full = model_list(sorted(keys), prefix, marker, delimiter, 10_000)
        assert got == full[:max_keys], (prefix, marker, delimiter, max_keys)
        assert page.is_truncated == (len(full) > max_keys)
    # paging with next_marker walks the whole listing exactly once
    for delimiter in ["", "/"]:
        seen: list[str] = []
        marker = ""
        for _ in range(100):
            page = await fs.list_objects(B, marker=marker, delimiter=delimiter, max_keys=3)
            entries = sorted([o.key for o in page.objects] + page.common_prefixes, key=lambda k: k.encode())
            seen += entries
            if not page.is_truncated:
                break
            marker = page.next_marker
        assert seen == model_list(sorted(keys), "", "", delimiter, 10_000)


async def test_build_backend_from_config(tmp_path: Path) -> None:
    from dfstore.config import OriginSection
    from dfstore.core.backend import build_backend

    default = build_backend(OriginSection(), tmp_path / "home")
    assert isinstance(default, FilesystemBackend) and default.root == (tmp_path / "home" / "origin").resolve()
    chosen = build_backend(OriginSection(kind="fs", path=str(tmp_path / "elsewhere")), tmp_path / "home")
    assert isinstance(chosen, FilesystemBackend) and chosen.root == (tmp_path / "elsewhere").resolve()
    assert chosen.name == "s3"


async def test_concurrent_writers_and_deleters_leave_a_consistent_object(fs: FilesystemBackend, tmp_path: Path) -> None:
    import asyncio

    bodies = [f"writer {i} ".encode() * (i + 1) for i in range(12)]

    async def churn(i: int) -> None:
        await put(fs, tmp_path, f"d/e/sib{i}", b"x")
        await fs.delete_object(B, f"d/e/sib{i}")  # prunes d/e while others write into it

    async def write(i: int) -> None:
        src = tmp_path / f"body{i}"
        src.write_bytes(bodies[i])
        await fs.put_object(B, "d/e/k", src, PutOptions(content_type=f"type/{i}"))

    await asyncio.gather(*(write(i) for i in range(len(bodies))), *(churn(i) for i in range(12)))
    meta = await fs.head_object(B, "d/e/k")
    data = await read(fs, "d/e/k")
    i = bodies.index(data)
    assert (meta.etag, meta.content_type) == (hashlib.md5(data).hexdigest(), f"type/{i}")  # metadata of the winner
    assert [o.key for o in (await fs.list_objects(B)).objects] == ["d/e/k"]
    assert list((tmp_path / "origin" / ".dfly" / "tmp").iterdir()) == []
