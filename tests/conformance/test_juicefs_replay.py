"""Replays JuiceFS's `dragonfly` storage against `dfly up`, once per origin (directory, S3).

Two sequences from spec §5: `juicefs format`'s probe (§5.3) and the generic object-storage test
`testStorage` (§5.4, items 1-18), through `JuiceFSDragonfly`, which puts on the wire exactly what
JuiceFS's Go client sends. Where JuiceFS only logs a failure we still assert our documented answer,
except for the two out-of-range reads whose answer upstream leaves to the origin.
"""

from __future__ import annotations

import os
import random
import string
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest

from tests.cluster import dfly_up
from tests.conformance.goclient import JuiceFSDragonfly, NotExistError, RequestFailedError, WithPrefix
from tests.fixtures.rclone import RcloneS3

pytestmark = [pytest.mark.conformance, pytest.mark.cluster]


@pytest.fixture(scope="module", params=["fs", "s3"])
def origin_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def endpoint(origin_kind: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`dfly up` with a directory origin, or with `rclone serve s3` as its S3 origin."""
    workdir = tmp_path_factory.mktemp(f"juicefs-{origin_kind}")
    if origin_kind == "fs":
        with dfly_up(workdir / "home", str(workdir / "origin")) as cluster:
            yield str(cluster["dfstore"])
        return
    s3 = RcloneS3(workdir / "s3root")
    s3.start()
    try:
        creds = {"AWS_ACCESS_KEY_ID": s3.access_key, "AWS_SECRET_ACCESS_KEY": s3.secret_key}
        with dfly_up(workdir / "home", s3.endpoint, creds) as cluster:
            yield str(cluster["dfstore"])
    finally:
        s3.stop()


def new_bucket() -> str:
    return f"jfs-{uuid.uuid4().hex[:12]}"


async def test_juicefs_format_probe(endpoint: str) -> None:
    """cmd/format.go test(): Put fails on a new bucket, Create, Put again, Get, compare, Delete."""
    store = JuiceFSDragonfly(endpoint, new_bucket(), mode=1)
    await store.init()
    assert store.filter == JuiceFSDragonfly.FILTER_S3
    name = "myjfs"
    key = f"{name}/testing/" + "".join(random.choices(string.ascii_lowercase, k=10))
    data = os.urandom(100)
    with pytest.raises(RequestFailedError):
        await store.put(key, data)  # the bucket does not exist yet
    await store.create()
    await store.put(key, data)
    body, _ = await store.get(key, 0, -1)
    assert body == data
    await store.delete(key)
    try:
        await store.delete(f"{name}/testing/")
    except RequestFailedError:
        pass  # format ignores this one

    volume = WithPrefix(store, f"{name}/")
    leftovers = [o for o in await volume.list_all("") if not o.is_dir and o.size and not o.key.startswith("testing/")]
    assert leftovers == []  # "Storage ... is not empty" would abort the format
    volume_uuid = str(uuid.uuid4()).encode()
    await store.put(f"{name}/juicefs_uuid", volume_uuid)
    assert (await store.get(f"{name}/juicefs_uuid"))[0] == volume_uuid
    assert [o.key for o in await volume.list_all("")] == ["juicefs_uuid"]


async def test_juicefs_generic_storage_checklist(endpoint: str, origin_kind: str) -> None:
    """pkg/object/object_storage_test.go testStorage, step by step (numbers are spec §5.4's)."""
    store = JuiceFSDragonfly(endpoint, new_bucket(), mode=1)
    await store.init()
    # 1. Create twice: the first lists (fails on a missing bucket) and POSTs, the second only lists.
    await store.create()
    before = store.requests
    await store.create()
    assert store.requests == before + 1
    s = WithPrefix(store, "unit-test/")
    # 2. Cleanup of a previous run: nothing to delete in a new bucket.
    assert await s.list_all("") == []

    # 3. The special key: decoded exactly, listed back, deleted.
    special = '测试编码文件{"name":"juicefs"}\x1f%uFF081%uFF09.jpg'
    await s.put(special, b"")
    listed, _, _ = await s.list("测试编码文件", "", "", 1)
    assert [o.key for o in listed] == [special]
    await s.delete(special)

    # 4. A missing object is an error.
    with pytest.raises(RequestFailedError):
        await s.get("not_exists")
    # 5. The huge key: 8 KiB of NUL (a ~24 KiB path) errors, and the daemon keeps serving.
    with pytest.raises(NotExistError):
        await s.head("\0" * 8192)

    # 6. Put/Get, the storage class of GET is empty, ranges.
    await s.put("test", b"hello")
    body, storage_class = await s.get("test", 0, -1)
    assert (body, storage_class) == (b"hello", "")
    for (off, limit), expected in {(0, 5): b"hello", (0, 1): b"h", (4, 1): b"o", (2, 3): b"llo", (2, 2): b"ll"}.items():
        assert (await s.get("test", off, limit))[0] == expected, (off, limit)
    assert (await s.get("test", 4, 2))[0] == b"o"  # logged only by JuiceFS; the range is clamped here
    try:
        assert (await s.get("test", 6, 2))[0] == b""  # logged only; upstream's answer depends on the origin
    except RequestFailedError as exc:
        assert exc.response.status in (416, 500)

    # 7. ListAll: the first key is `test`, 5 bytes, modified now; a marker past it lists nothing.
    everything = await s.list_all("")
    assert [o.key for o in everything][:1] == ["test"]
    assert everything[0].size == 5
    assert abs(everything[0].mtime.timestamp() - time.time()) < 30
    assert await s.list_all("", "test2") == []

    # 8. A small hierarchy; `c/` is an empty object with a trailing slash.
    for key in ("a/a", "a/a1", "b/b", "b/b1"):
        await s.put(key, b"hello")
    try:
        await s.put("c/", b"")
    except RequestFailedError:
        await s.put("c/", b"hello")
    await s.put("a1", b"hello")
    await s.put("a/b/c/d/e/f", b"hello")
    await s.put("a1", b"hello2")

    # 9. Delimiter pages: the limit counts keys and common prefixes together.
    # `rclone serve s3` stores `c/` as a directory and lists it back as `c` (spec §10): an origin
    # quirk that upstream Dragonfly passes through the same way. The directory origin keeps `c/`.
    c = "c/" if origin_kind == "fs" else "c"
    objs, more, next_marker = await s.list("", "", "/", 4)
    assert [o.key for o in objs] == ["a/", "a1", "b/", c]
    assert more and next_marker
    objs, more, next_marker = await s.list("", objs[-1].key, "/", 4)
    assert [o.key for o in objs] == ["test"]
    objs, more, next_marker = await s.list("", objs[-1].key, "/", 4)
    assert (objs, more, next_marker) == ([], False, "")
    # 10. and 11.
    assert [o.key for o in (await s.list("", "", "/", 10))[0]] == ["a/", "a1", "b/", c, "test"]
    assert [o.key for o in (await s.list("a", "", "/", 10))[0]] == ["a/", "a1"]
    assert [o.key for o in (await s.list("a/", "", "/", 10))[0]] == ["a/a", "a/a1", "a/b/"]

    # 12. 100 keys come back from ListAll in byte order.
    hash_keys = [f"hashKey{i}" for i in range(100)]
    for key in hash_keys:
        await s.put(key, b"hello2")
    assert [o.key for o in await s.list_all("hashKey")] == sorted(hash_keys)

    # 13. Put from a file stream, Head, Delete.
    await s.put("file", b"this is a file")
    assert (await s.head("file")).size == 14
    await s.delete("file")
    # 14. Head of a missing key is exactly os.ErrNotExist (HTTP 404); Head("test") works.
    with pytest.raises(NotExistError):
        await s.head("not-exist-file")
    head = await s.head("test")
    assert head.size == 5 and abs(head.mtime - datetime.now(UTC)).total_seconds() < 30
    # 15. Copy takes full keys (withPrefix does not add the prefix to Copy).
    await store.copy("unit-test/test-copy", "unit-test/test")
    assert (await s.head("test-copy")).size == 5
    # 16. Delete twice succeeds.
    await s.delete("test")
    await s.delete("test")
    with pytest.raises(NotExistError):
        await s.head("test")
    # 17. Multipart upload is not part of the dragonfly storage: nothing to send.
    # 18. Empty objects, with and without a trailing slash.
    await s.put("empty", b"")
    await s.put("slash/", b"")
    assert (await s.head("empty")).size == 0
    assert (await s.head("slash/")).size == 0
    assert (await s.get("empty"))[0] == b""
    if origin_kind == "fs":
        # `rclone serve s3` stores `slash/` as a directory (spec §10); the directory origin keeps the key.
        assert "slash/" in [o.key for o in await s.list_all("")]
