"""Multipart staging on a real directory: overlapping uploads of one part, completion rules."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dfstore.errors import BadDigest, EntityTooSmall, InvalidPart, InvalidPartOrder, NoSuchUpload
from dfstore.models import PutOptions
from gateway.multipart import MIN_PART_BYTES, MultipartStore


async def _chunks(data: bytes, gate: asyncio.Event | None = None) -> AsyncIterator[bytes]:
    half = len(data) // 2
    yield data[:half]
    if gate is not None:
        await gate.wait()
    yield data[half:]


async def test_overlapping_uploads_of_one_part_last_finisher_wins(tmp_path: Path) -> None:
    store = MultipartStore(tmp_path)
    upload = await store.create("bkt", "key", PutOptions())
    first, second = b"1" * 1000, b"2" * 1000
    gate = asyncio.Event()
    slow = asyncio.create_task(store.write_part(upload, 1, _chunks(first, gate)))
    await asyncio.sleep(0.05)
    fast = await asyncio.wait_for(store.write_part(upload, 1, _chunks(second)), 5)  # not stalled by `slow`
    gate.set()
    done = await asyncio.wait_for(slow, 5)
    parts = await store.parts(upload)
    assert [p.etag for p in parts] == [done.etag] == [hashlib.md5(first).hexdigest()]
    assert fast.etag == hashlib.md5(second).hexdigest()
    assembled = await store.assemble(upload, [(1, done.etag)])
    assert assembled.path.read_bytes() == first
    assert len(list((tmp_path / upload.upload_id).glob("*.data"))) == 1  # the loser's file is gone


async def test_complete_rules_and_etag(tmp_path: Path) -> None:
    store = MultipartStore(tmp_path)
    upload = await store.create("bkt", "key", PutOptions(content_type="text/plain"))
    rng = random.Random(4)
    big, small = rng.randbytes(MIN_PART_BYTES), rng.randbytes(10)
    p1 = await store.write_part(upload, 1, _chunks(big))
    p2 = await store.write_part(upload, 2, _chunks(small))
    with pytest.raises(InvalidPartOrder):
        await store.assemble(upload, [(2, p2.etag), (1, p1.etag)])
    with pytest.raises(InvalidPart):
        await store.assemble(upload, [(1, p1.etag), (2, "0" * 32)])
    p3 = await store.write_part(upload, 3, _chunks(small))
    with pytest.raises(EntityTooSmall):
        await store.assemble(upload, [(2, p2.etag), (3, p3.etag)])
    result = await store.assemble(upload, [(1, p1.etag), (2, p2.etag)])
    expected = hashlib.md5(bytes.fromhex(p1.etag) + bytes.fromhex(p2.etag)).hexdigest() + "-2"
    assert result.etag == expected and result.size == len(big) + len(small)
    assert result.path.read_bytes() == big + small
    again = await store.get("bkt", "key", upload.upload_id)
    assert again.options.content_type == "text/plain"
    await store.abort(upload.upload_id)
    with pytest.raises(NoSuchUpload):
        await store.get("bkt", "key", upload.upload_id)


async def test_bad_md5_and_unknown_ids(tmp_path: Path) -> None:
    store = MultipartStore(tmp_path)
    upload = await store.create("bkt", "key", PutOptions())
    with pytest.raises(BadDigest):
        await store.write_part(upload, 1, _chunks(b"abc"), content_md5="0" * 32)
    assert not list((tmp_path / upload.upload_id).glob("*.data"))
    for bad in ("../../etc", "0" * 32, ""):
        with pytest.raises(NoSuchUpload):
            await store.get("bkt", "key", bad)
    with pytest.raises(NoSuchUpload):
        await store.get("other", "key", upload.upload_id)


async def test_purge_drops_only_stale_uploads(tmp_path: Path) -> None:
    from datetime import UTC, datetime, timedelta

    store = MultipartStore(tmp_path)
    old = await store.create("bkt", "old", PutOptions())
    await store.write_part(old, 1, _chunks(b"abc"))
    cutoff = datetime.now(UTC) + timedelta(microseconds=1)
    await asyncio.sleep(0.01)
    fresh = await store.create("bkt", "fresh", PutOptions())
    assert await store.purge(cutoff) == 1
    assert [u.key for u in await store.uploads("bkt")] == ["fresh"]
    assert (await store.get("bkt", "fresh", fresh.upload_id)).key == "fresh"
    with pytest.raises(NoSuchUpload):
        await store.get("bkt", "old", old.upload_id)
