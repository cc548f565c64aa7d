"""Download throughput of a cached object with the Python SDK (sync and async) against curl, on the
same dfstore endpoint in the same run.

    python benchmarks/sdk_download.py [--size-mib 1024] [--rounds 3] [--chunk-mib 1] [--endpoint URL]

Without --endpoint a daemon (`dfly daemon`, directory origin, 127.0.0.1) is started in a temp dir.
The object is uploaded with `Client.upload_file` (write-back), read once with curl so the daemon's piece
cache holds it, then read --rounds times by each reader in turn (curl, sync Client, AsyncClient),
every reader discarding the bytes (curl to /dev/null; the SDK iterates chunks of --chunk-mib). Prints
the median MB/s (10^6 bytes/s) of each reader, the SDK/curl ratios (target >= 0.8), and the CPU seconds
each reader itself spent per GiB, a figure that other load on the machine disturbs much less.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sdk
from dfly.procs import spawn

MiB = 1024 * 1024


def write_object(path: Path, size: int) -> None:
    """Pseudo-random bytes in 8 MiB blocks that all differ, one block in memory at a time."""
    block = bytearray(os.urandom(8 * MiB))
    with open(path, "wb") as out:
        left, i = size, 0
        while left > 0:
            block[:8] = i.to_bytes(8, "big")
            n = min(left, len(block))
            out.write(block[:n])
            left -= n
            i += 1


@contextmanager
def local_daemon(workdir: Path) -> Iterator[str]:
    """A daemon over a directory origin; yields its dfstore URL."""
    home = workdir / "peer"
    origin = workdir / "origin"
    home.mkdir(parents=True)
    origin.mkdir()
    config = {
        "home": str(home),
        "daemon": {"name": "bench-sdk", "upload": {"listen": "127.0.0.1", "port": 0}},
        "dfstore": {"listen": "127.0.0.1", "port": 0, "origin": {"kind": "fs", "path": str(origin)}},
    }
    path = home / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    child = spawn(
        "bench-sdk",
        ["dfly", "daemon", "--config", str(path)],
        ready_file=home / "ready.json",
        log_path=home / "daemon.log",
    )
    try:
        yield str(child.ready["dfstore"])
    finally:
        child.stop()


def cpu_children_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def curl_read(url: str, size: int) -> float:
    out = subprocess.run(
        ["curl", "-sS", "--fail", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    got, seconds = out.stdout.split()
    assert int(got) == size, f"curl read {got} bytes, expected {size}"
    return size / float(seconds)


def sync_read(client: sdk.Client, bucket: str, key: str, size: int, chunk: int) -> float:
    started = time.perf_counter()
    got = 0
    with client.get_object(bucket, key) as body:
        for piece in body.iter_chunks(chunk):
            got += len(piece)
    elapsed = time.perf_counter() - started
    assert got == size, f"sync read {got} bytes, expected {size}"
    return size / elapsed


def async_read(
    loop: asyncio.AbstractEventLoop, client: sdk.AsyncClient, bucket: str, key: str, size: int, chunk: int
) -> float:
    async def go() -> float:
        started = time.perf_counter()
        got = 0
        async with client.get_object(bucket, key) as body:
            async for piece in body.aiter_chunks(chunk):
                got += len(piece)
        elapsed = time.perf_counter() - started
        assert got == size, f"async read {got} bytes, expected {size}"
        return size / elapsed

    return loop.run_until_complete(go())


def run(
    endpoint: str, workdir: Path, size: int, rounds: int, chunk: int
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    """Per reader: MB/s of each round, and the reader's CPU seconds per GiB of each round."""
    bucket, key = f"bench-{uuid.uuid4().hex[:8]}", "sdk/object.bin"
    source = workdir / "object.bin"
    write_object(source, size)
    loop = asyncio.new_event_loop()
    with sdk.Client(endpoint) as client:
        aclient = sdk.AsyncClient(endpoint)
        try:
            client.create_bucket(bucket)
            client.upload_file(bucket, key, source, mode=sdk.PutMode.WRITE_BACK)
            source.unlink()
            url = f"{endpoint}/buckets/{bucket}/objects/{key}"
            curl_read(url, size)  # warm-up: the daemon fetches the object into its piece cache
            readers: dict[str, Callable[[], float]] = {
                "curl": lambda: curl_read(url, size),
                "sdk sync": lambda: sync_read(client, bucket, key, size, chunk),
                "sdk async": lambda: async_read(loop, aclient, bucket, key, size, chunk),
            }
            results: dict[str, list[float]] = {name: [] for name in readers}
            cpu: dict[str, list[float]] = {name: [] for name in readers}
            for n in range(rounds):
                for name, read in readers.items():
                    # CPU seconds the reader itself spent (curl: a child; the SDK: this process)
                    before = cpu_children_s() if name == "curl" else time.process_time()
                    rate = read()
                    spent = (cpu_children_s() if name == "curl" else time.process_time()) - before
                    results[name].append(rate)
                    cpu[name].append(spent / (size / 2**30))
                    print(
                        f"round {n + 1}: {name:<9} {rate / 1e6:8.1f} MB/s  {cpu[name][-1]:5.2f} CPU s/GiB", flush=True
                    )
            client.delete_object(bucket, key)
            return results, cpu
        finally:
            loop.run_until_complete(aclient.aclose())
            loop.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--chunk-mib", type=int, default=1)
    parser.add_argument("--endpoint", default="", help="an existing dfstore endpoint (default: start a daemon)")
    args = parser.parse_args()
    if shutil.which("curl") is None:
        print("curl is required", file=sys.stderr)
        return 2
    size, chunk = args.size_mib * MiB, args.chunk_mib * MiB
    workdir = Path(tempfile.mkdtemp(prefix="sdk-bench-"))
    try:
        if args.endpoint:
            results, cpu = run(args.endpoint, workdir, size, args.rounds, chunk)
        else:
            with local_daemon(workdir) as endpoint:
                results, cpu = run(endpoint, workdir, size, args.rounds, chunk)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    medians = {name: statistics.median(rates) for name, rates in results.items()}
    print(f"\ncached {args.size_mib} MiB object, median of {args.rounds} rounds (MB/s = 10^6 bytes/s):")
    for name, rate in medians.items():
        ratio = rate / medians["curl"]
        cpu_s = statistics.median(cpu[name])
        print(f"  {name:<9} {rate / 1e6:8.1f} MB/s   {ratio:5.2f} x curl   {cpu_s:5.2f} CPU s/GiB")
    worst = min(medians["sdk sync"], medians["sdk async"]) / medians["curl"]
    print(f"target >= 0.80 x curl: {'met' if worst >= 0.8 else 'NOT met'} (worst {worst:.2f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
