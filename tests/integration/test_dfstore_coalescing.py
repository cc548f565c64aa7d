"""32 concurrent GETs of one uncached 128 MiB object on one daemon read the origin once (issue 2).

The origin is a real S3 server (`rclone serve s3`) behind a TCP proxy that counts the bytes the
origin sends, so "one origin read" is measured on the wire, not taken from the daemon's word.
Every body is compared by hash while it streams; no copy of the object is held in memory.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import xxhash

from tests.cluster import running_daemon
from tests.fixtures.rclone import RcloneS3, rclone_s3  # noqa: F401  (fixture)

MiB = 1024 * 1024
SIZE = 128 * MiB
READERS = 32


class CountingProxy:
    """A loopback TCP relay in its own thread and loop; counts bytes flowing back from the target."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.bytes_from_target = 0
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._stopped: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="counting-proxy", daemon=True)

    def __enter__(self) -> CountingProxy:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("proxy did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        stopped = self._stopped
        if stopped is not None:
            self._loop.call_soon_threadsafe(stopped.set)
        self._thread.join(10)

    def _run(self) -> None:
        self._loop.run_until_complete(self._serve())
        self._loop.close()

    async def _serve(self) -> None:
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        async with server:
            await self._stopped.wait()
        # Relays still open (keep-alive connections of a stopped daemon) are cancelled, not leaked.
        pending = asyncio.all_tasks() - {asyncio.current_task()}
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        target_r, target_w = await asyncio.open_connection("127.0.0.1", self.target_port)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, counted: bool) -> None:
            try:
                while data := await src.read(MiB):
                    if counted:
                        self.bytes_from_target += len(data)
                    dst.write(data)
                    await dst.drain()
                if dst.can_write_eof():
                    dst.write_eof()
            except OSError:
                dst.close()

        await asyncio.gather(pipe(client_r, target_w, False), pipe(target_r, client_w, True))
        client_w.close()
        target_w.close()


def write_object(path: Path, size: int) -> str:
    """Write `size` pseudo-random bytes in 8 MiB steps; return their xxh3-128 hex digest."""
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = xxhash.xxh3_128()
    block = os.urandom(8 * MiB)
    with open(path, "wb") as f:
        for i, start in enumerate(range(0, size, len(block))):
            chunk = (i.to_bytes(8, "big") + block[8:])[: size - start]  # every block differs
            digest.update(chunk)
            f.write(chunk)
    return digest.hexdigest()


@pytest.fixture
def origin_behind_proxy(rclone_s3: RcloneS3) -> Iterator[tuple[RcloneS3, CountingProxy]]:  # noqa: F811
    with CountingProxy(rclone_s3.port) as proxy:
        yield rclone_s3, proxy


@pytest.mark.slow
async def test_32_concurrent_gets_read_the_origin_once(
    tmp_path: Path, origin_behind_proxy: tuple[RcloneS3, CountingProxy]
) -> None:
    rclone, proxy = origin_behind_proxy
    bucket = f"c-{uuid.uuid4().hex[:10]}"
    expected = await asyncio.to_thread(write_object, rclone.root / bucket / "big.bin", SIZE)
    origin = {
        "kind": "s3",
        "endpoint": f"http://127.0.0.1:{proxy.port}",
        "access_key": rclone.access_key,
        "secret_key": rclone.secret_key,
    }
    with running_daemon(tmp_path, origin) as daemon:
        url = f"{daemon.ready['dfstore']}/buckets/{bucket}/objects/big.bin"
        before = proxy.bytes_from_target
        started = time.monotonic()

        async def read_one(session: aiohttp.ClientSession) -> tuple[int, int, str]:
            digest, size = xxhash.xxh3_128(), 0
            async with session.get(url, headers={"Range": ""}) as response:
                async for chunk in response.content.iter_chunked(MiB):
                    digest.update(chunk)
                    size += len(chunk)
                return response.status, size, digest.hexdigest()

        timeout = aiohttp.ClientTimeout(total=100)
        async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=READERS)) as session:
            results = await asyncio.gather(*(read_one(session) for _ in range(READERS)))
        elapsed = time.monotonic() - started
        origin_bytes = proxy.bytes_from_target - before

    assert results == [(200, SIZE, expected)] * READERS
    # One read of the object plus HTTP framing of the ranged origin GETs and the HEADs.
    assert SIZE <= origin_bytes < SIZE + 2 * MiB, f"origin sent {origin_bytes} bytes for a {SIZE} byte object"
    print(f"{READERS} readers x {SIZE // MiB} MiB in {elapsed:.1f}s; origin sent {origin_bytes / MiB:.2f} MiB")
