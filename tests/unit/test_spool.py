"""spool_body: the bytes, MD5 and size of a PUT body, whatever its chunking; errors end it cleanly."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from dfstore.core.spool import FLUSH_BYTES, spool_body


async def chunks(data: bytes, sizes: list[int]) -> AsyncIterator[bytes]:
    pos, i = 0, 0
    while pos < len(data):
        n = sizes[i % len(sizes)]
        yield data[pos : pos + n]
        pos += n
        i += 1
        await asyncio.sleep(0)


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.parametrize(
    ("size", "sizes"),
    [
        (0, [1]),
        (1, [1]),
        (FLUSH_BYTES - 1, [65536]),
        (FLUSH_BYTES, [FLUSH_BYTES]),
        (3 * FLUSH_BYTES + 7, [300_000, FLUSH_BYTES, 2 * FLUSH_BYTES + 5, 1]),
    ],
)
async def test_spool_writes_every_byte_in_order(tmp_path: Path, size: int, sizes: list[int]) -> None:
    data = random.Random(size).randbytes(size)
    path = tmp_path / "body.spool"
    digest, got = await spool_body(chunks(data, sizes), path)
    assert got == size
    assert digest.hexdigest() == hashlib.md5(data).hexdigest()
    assert path.read_bytes() == data


async def test_the_spool_file_gets_the_usual_mode(tmp_path: Path) -> None:
    """The directory origin links the spool in as the object: it must be readable as any file
    written by open() is (a web server may serve the origin directory)."""
    await spool_body(chunks(b"abc", [3]), tmp_path / "mode.spool")
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "mode.spool").stat().st_mode & 0o777 == 0o666 & ~umask


async def test_a_failing_body_closes_the_file(tmp_path: Path) -> None:
    async def broken() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"x" * FLUSH_BYTES  # a write is in flight when the body fails
        raise ConnectionResetError("client went away")

    before = open_fds()
    with pytest.raises(ConnectionResetError):
        await spool_body(broken(), tmp_path / "broken.spool")
    assert open_fds() == before
    assert (tmp_path / "broken.spool").stat().st_size >= FLUSH_BYTES  # the writes before it landed


async def test_a_cancelled_spool_waits_for_its_write_and_closes(tmp_path: Path) -> None:
    started = asyncio.Event()

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"y" * FLUSH_BYTES
            started.set()

    before = open_fds()
    job = asyncio.create_task(spool_body(endless(), tmp_path / "endless.spool"))
    await asyncio.wait_for(started.wait(), 10)
    await asyncio.sleep(0.05)
    job.cancel()
    with pytest.raises(asyncio.CancelledError):
        await job
    assert open_fds() == before
