"""Cached GET through the dfstore API against nginx serving the same file, and the daemon's peak RSS.

    python benchmarks/dfstore_get.py [--size-mib 1024] [--rss-size-mib 4096] [--rounds 3] [--small-requests 2000]

1. A daemon (`dfly daemon`, directory origin) and nginx (Debian package `nginx`, own config in a
   temp dir, 127.0.0.1) serve one object of --size-mib: nginx straight from the origin directory,
   the daemon through its piece cache after one warm-up GET. The same client (curl to /dev/null)
   reads each --rounds times, alternating; the median MB/s (10^6 bytes/s) of each and their ratio
   are printed (target: dfstore >= 0.8 x nginx).
2. Small GETs per second: --small-requests cached GETs of one 4 KiB object (written through the
   dfstore API, so it is cached), over one keep-alive connection and over 4 parallel connections
   (`curl -K`, `-Z`), against nginx serving the same file; 0 skips this part.
3. A fresh daemon serves an object of --rss-size-mib twice (uncached, then cached); its peak RSS
   (VmHWM from /proc/PID/status) is printed (target: < 300 MiB).

Everything listens on 127.0.0.1 and lives in a temp dir that is removed at the end.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference import nginx, small_gets  # benchmarks/reference.py (scripts run from this folder)

from dfly.procs import Child, spawn

MiB = 1024 * 1024
BUCKET = "bench"


def write_object(path: Path, size: int) -> None:
    """Pseudo-random bytes, 8 MiB blocks that all differ, without holding more than one block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    block = bytearray(os.urandom(8 * MiB))
    with open(path, "wb") as f:
        left, i = size, 0
        while left > 0:
            block[:8] = i.to_bytes(8, "big")
            n = min(left, len(block))
            f.write(block[:n])
            left -= n
            i += 1


@contextmanager
def daemon(workdir: Path, origin: Path, name: str) -> Iterator[Child]:
    home = workdir / name
    home.mkdir(parents=True, exist_ok=True)
    config = {
        "home": str(home),
        "daemon": {"name": name, "upload": {"listen": "127.0.0.1", "port": 0}},
        "dfstore": {"listen": "127.0.0.1", "port": 0, "origin": {"kind": "fs", "path": str(origin)}},
    }
    path = home / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    child = spawn(
        name, ["dfly", "daemon", "--config", str(path)], ready_file=home / "ready.json", log_path=home / "daemon.log"
    )
    try:
        yield child
    finally:
        child.stop()


def curl(method: str, url: str, *args: str) -> str:
    out = subprocess.run(
        ["curl", "-sS", "-X", method, "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{speed_download}",
         *args, url],
        check=True, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    return out.stdout


def timed_get(url: str, size: int) -> float:
    """MB/s of one GET to /dev/null; fails unless 200 with every byte."""
    status, got, speed = curl("GET", url).split()
    if status != "200" or int(got) != size:
        raise SystemExit(f"GET {url}: status {status}, {got} of {size} bytes")
    return float(speed) / 1e6


def create_bucket(dfstore: str) -> None:
    status = curl("POST", f"{dfstore}/buckets/{BUCKET}").split()[0]
    if status != "200":
        raise SystemExit(f"create bucket: status {status}")


def vm_hwm_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise SystemExit("no VmHWM in /proc status")


def throughput(workdir: Path, size: int, rounds: int, small_requests: int) -> None:
    origin = workdir / "origin"
    with daemon(workdir, origin, "bench-get") as child:
        dfstore = child.ready["dfstore"]
        create_bucket(dfstore)
        write_object(origin / BUCKET / "obj.bin", size)
        with nginx(workdir, origin / BUCKET) as (nginx_url, _):
            df_url, ng_url = f"{dfstore}/buckets/{BUCKET}/objects/obj.bin", f"{nginx_url}/obj.bin"
            warm = timed_get(df_url, size)  # back-to-source: fills the piece cache
            timed_get(ng_url, size)  # nginx's file into the page cache
            df, ng = [], []
            for _ in range(rounds):
                df.append(timed_get(df_url, size))
                ng.append(timed_get(ng_url, size))
            rps: dict[tuple[str, int], float] = {}
            if small_requests:
                small = workdir / "small.bin"
                small.write_bytes(os.urandom(4096))
                status = curl("PUT", f"{dfstore}/buckets/{BUCKET}/objects/small.bin", "-F", f"file=@{small}")
                if status.split()[0] != "200":
                    raise SystemExit(f"PUT small.bin: status {status}")
                small_df, small_ng = f"{dfstore}/buckets/{BUCKET}/objects/small.bin", f"{nginx_url}/small.bin"
                if timed_get(small_df, 4096) <= 0 or timed_get(small_ng, 4096) <= 0:
                    raise SystemExit("small GET moved no bytes")
                small_gets(workdir, small_df, 50, 1)  # warm both paths
                small_gets(workdir, small_ng, 50, 1)
                for par in (1, 4):
                    for name, url in (("dfstore", small_df), ("nginx", small_ng)):
                        rps[(name, par)] = small_gets(workdir, url, small_requests, par)
    df_mbs, ng_mbs = statistics.median(df), statistics.median(ng)
    print(f"object: {size / MiB:.0f} MiB, {rounds} rounds, curl to /dev/null, median of each")
    print(f"dfstore uncached GET (warm-up): {warm:8.1f} MB/s")
    print(f"dfstore cached GET:             {df_mbs:8.1f} MB/s  (runs: {', '.join(f'{x:.0f}' for x in df)})")
    print(f"nginx GET:                      {ng_mbs:8.1f} MB/s  (runs: {', '.join(f'{x:.0f}' for x in ng)})")
    print(f"ratio dfstore/nginx:            {df_mbs / ng_mbs:8.2f}  (target >= 0.8)")
    for par in (1, 4) if rps else ():
        dr, nr = rps[("dfstore", par)], rps[("nginx", par)]
        print(f"4 KiB GETs/s, {par} conn:          dfstore {dr:8.0f}  nginx {nr:8.0f}  ratio {dr / nr:5.2f}")


def peak_rss(workdir: Path, size: int) -> None:
    origin = workdir / "origin-rss"
    with daemon(workdir, origin, "bench-rss") as child:
        dfstore = child.ready["dfstore"]
        create_bucket(dfstore)
        write_object(origin / BUCKET / "big.bin", size)
        url = f"{dfstore}/buckets/{BUCKET}/objects/big.bin"
        uncached = timed_get(url, size)
        cached = timed_get(url, size)
        hwm = vm_hwm_mib(child.proc.pid)
    print(f"object: {size / MiB:.0f} MiB; uncached GET {uncached:.1f} MB/s, cached GET {cached:.1f} MB/s")
    print(f"daemon peak RSS (VmHWM):        {hwm:8.1f} MiB  (target < 300 MiB)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rss-size-mib", type=int, default=4096, help="0 skips the RSS run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small-requests", type=int, default=2000, help="0 skips the 4 KiB GET rate")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dfstore-bench-"))
    try:
        throughput(workdir, args.size_mib * MiB, args.rounds, args.small_requests)
        shutil.rmtree(workdir / "bench-get", ignore_errors=True)  # free the disk before the big object
        shutil.rmtree(workdir / "origin", ignore_errors=True)
        if args.rss_size_mib:
            peak_rss(workdir, args.rss_size_mib * MiB)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
