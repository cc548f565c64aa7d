"""Piece store / task manager / upload server numbers on this machine.

    python benchmarks/piece_store.py [--size-mib 1024] [--workdir DIR]

1. back-to-source: an aiohttp origin on 127.0.0.1 serves a file (sendfile); one TaskManager reader
   pulls it through HTTPSource into the PieceStore. Reports MB/s and this process's peak RSS growth.
2. cached serve: the piece upload server sends the completed task with sendfile to `curl`, compared
   with aiohttp's own FileResponse serving the same file, same client.
3. first serve after a restart (every piece verified against its digest) through the upload server.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from aiohttp import web

from p2p.daemon.httpsource import HTTPSource
from p2p.daemon.store import PieceStore
from p2p.daemon.tasks import TaskManager
from p2p.daemon.upload import upload_app
from p2p.source import SourceRouter
from p2p.types import MiB


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    return runner, f"http://127.0.0.1:{runner.addresses[0][1]}"


async def curl_mbps(url: str, headers: list[str], size: int) -> float:
    args = ["curl", "-sf", "-o", "/dev/null", "-w", "%{size_download}", url]
    for h in headers:
        args += ["-H", h]
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(*args, stdout=subprocess.PIPE)
    out, _ = await proc.communicate()
    elapsed = time.perf_counter() - started
    assert proc.returncode == 0 and int(out) == size, (proc.returncode, out)
    return size / elapsed / 1e6


def make_object(src: Path, size: int) -> None:
    with open(src, "wb") as f:
        block = os.urandom(MiB)
        for i in range(size // MiB):
            f.write(block[i % 7 :] + block[: i % 7])


async def main(size: int, workdir: Path) -> None:
    src = workdir / "object.bin"
    make_object(src, size)
    origin_app = web.Application()

    async def object_handler(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(src, headers={"ETag": '"bench"'})

    origin_app.router.add_route("*", "/object", object_handler)
    origin_runner, origin = await serve(origin_app)

    http = HTTPSource()
    store = PieceStore(workdir / "store", gc_interval_s=0)
    await store.start()
    tasks = TaskManager(store, SourceRouter({"http": http}))
    rss_before = rss_mib()
    started = time.perf_counter()
    reader = await tasks.open(f"{origin}/object")
    async with reader:
        async for _ in reader.regions():
            pass
    elapsed = time.perf_counter() - started
    print(f"back-to-source {size / MiB:.0f} MiB: {size / elapsed / 1e6:.0f} MB/s, "
          f"peak RSS growth {rss_mib() - rss_before:.0f} MiB (peak RSS {rss_mib():.0f} MiB)")
    task = store.get(reader.task_id)
    assert task is not None
    await task.finish()  # the reader may end before the task's metadata is saved

    upload_runner, upload = await serve(upload_app(store))
    url = f"{upload}/download/{task.task_id[:3]}/{task.task_id}"
    rng = [f"Range: bytes=0-{size - 1}"]
    for _ in range(2):  # warm, then measure
        ours = await curl_mbps(url, rng, size)
        theirs = await curl_mbps(f"{origin}/object", rng, size)
    print(f"cached serve: upload server {ours:.0f} MB/s, aiohttp FileResponse {theirs:.0f} MB/s, "
          f"ratio {ours / theirs:.2f}")

    await upload_runner.cleanup()
    await tasks.close()
    await store.close()
    store = PieceStore(workdir / "store", gc_interval_s=0)
    await store.start()
    upload_runner, upload = await serve(upload_app(store))
    url = f"{upload}/download/{task.task_id[:3]}/{task.task_id}"
    print(f"first serve after restart (verifies every piece): {await curl_mbps(url, rng, size):.0f} MB/s")
    await upload_runner.cleanup()
    await store.close()
    await http.close()
    await origin_runner.cleanup()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        asyncio.run(main(args.size_mib * MiB, Path(tmp)))
