"""S3 gateway throughput against nginx serving the same file, with the same client (curl).

    python benchmarks/gateway_throughput.py [--size-mib 1024] [--rounds 3] [--small-requests 2000]
                                            [--put-checksum crc32,crc32c,crc64nvme]

A daemon (`dfly daemon`: object service, piece cache, directory origin, S3 gateway) and
nginx (Debian package `nginx`, own config in a temp dir) listen on 127.0.0.1; nginx's root is the
gateway's origin bucket directory, so both serve the very same files. curl reads the gateway through
SigV4 presigned URLs (so every request is authenticated) and nginx through plain URLs.

1. GET of a cached --size-mib object: 1 stream (median of --rounds) and 4 parallel streams
   (aggregate MB/s), each alternating gateway and nginx; the gateway is warmed first (back-to-source
   fills the piece cache) and nginx's file is in the page cache. Target: gateway >= 0.8 x nginx
   for the single stream.
2. 4 KiB GETs per second: --small-requests GETs of one cached 4 KiB object over one keep-alive
   connection, then over 4 parallel connections.
3. PUT of a --size-mib object (curl -T with a presigned PUT URL: WRITE_BACK to the origin), then
   once more for each algorithm in --put-checksum with its `x-amz-checksum-<algorithm>` header
   (computed here beforehand, signed into the presigned URL), which the gateway verifies, and a
   last time without a checksum (the baseline for those later PUTs).

MB/s are 10^6 bytes/s. CPU seconds per GiB are the server's user+system time (daemon process;
nginx master and workers) divided by GiB moved. Everything lives in a temp dir removed at the end.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import yaml
from botocore.config import Config

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from reference import nginx, small_gets  # benchmarks/reference.py (scripts run from this folder)

from dfly.procs import Child, spawn
from gateway.checksums import ALGORITHMS, new_checksum

MiB = 1024 * 1024
GiB = 1024 * MiB
BUCKET = "bench"
TICKS = os.sysconf("SC_CLK_TCK")


def write_object(path: Path, size: int) -> None:
    """Pseudo-random 8 MiB blocks that all differ, never more than one block in memory."""
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


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                continue
    return found


@contextmanager
def gateway(workdir: Path, origin: Path, access_key: str, secret_key: str) -> Iterator[Child]:
    """A `dfly daemon` with a directory origin whose S3 gateway listens on a free loopback port."""
    home = workdir / "daemon"
    home.mkdir(parents=True, exist_ok=True)
    config = {
        "home": str(home),
        "daemon": {"name": "bench-gw", "upload": {"listen": "127.0.0.1", "port": 0},
                   "rpc": {"listen": "127.0.0.1", "port": 0}},
        "dfstore": {"listen": "127.0.0.1", "port": 0, "origin": {"kind": "fs", "path": str(origin)}},
        "gateway": {"listen": "127.0.0.1", "port": 0, "access_key": access_key, "secret_key": secret_key},
    }  # fmt: skip
    path = home / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    child = spawn(
        "bench-gw", ["dfly", "daemon", "--config", str(path)], ready_file=home / "ready.json",
        log_path=home / "daemon.log",
    )  # fmt: skip
    try:
        yield child
    finally:
        child.stop()


def file_checksum(path: Path, algorithm: str) -> str:
    """The x-amz-checksum-<algorithm> value of a file, read in 8 MiB blocks."""
    checksum = new_checksum(algorithm)
    with open(path, "rb") as f:
        while block := f.read(8 * MiB):
            checksum.update(block)
    return checksum.b64()


def curl_put(url: str, path: Path, headers: dict[str, str]) -> float:
    """Seconds one `curl -T` of the file took; fails unless the gateway answers 200."""
    args = ["curl", "-sS", "--fail", "-o", "/dev/null", "-T", str(path)]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    start = time.monotonic()
    subprocess.run([*args, url], check=True, timeout=900)
    return time.monotonic() - start


def curl_get(url: str, size: int) -> float:
    """MB/s of one GET to /dev/null; fails unless 200 with every byte."""
    out = subprocess.run(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download} %{speed_download}", url],
        check=True, capture_output=True, text=True, timeout=600,
    ).stdout.split()  # fmt: skip
    if out[0] != "200" or int(out[1]) != size:
        raise SystemExit(f"GET {url[:80]}: status {out[0]}, {out[1]} of {size} bytes")
    return float(out[2]) / 1e6


def parallel_get(url: str, size: int, streams: int) -> float:
    """Aggregate MB/s of `streams` concurrent curls reading the whole object."""
    start = time.monotonic()
    procs = [
        subprocess.Popen(["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", url],
                         stdout=subprocess.PIPE, text=True)
        for _ in range(streams)
    ]  # fmt: skip
    for p in procs:
        status, got = (p.communicate(timeout=600)[0] or "0 0").split()
        if status != "200" or int(got) != size:
            raise SystemExit(f"parallel GET: status {status}, {got} of {size} bytes")
    return streams * size / (time.monotonic() - start) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--small-requests", type=int, default=2000)
    parser.add_argument("--put-checksum", default="", metavar="ALG[,ALG...]",
                        help=f"also PUT with each of these flexible checksums ({', '.join(ALGORITHMS)})")
    args = parser.parse_args()
    put_checksums = [a.strip().lower() for a in args.put_checksum.split(",") if a.strip()]
    for algorithm in put_checksums:
        if algorithm not in ALGORITHMS:
            parser.error(f"--put-checksum: unknown algorithm {algorithm!r}")
    size = args.size_mib * MiB
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    workdir.chmod(0o755)  # nginx workers may run as another user
    origin = workdir / "origin"
    access_key, secret_key = "BENCH" + secrets.token_hex(6).upper(), secrets.token_urlsafe(24)
    try:
        with gateway(workdir, origin, access_key, secret_key) as gw:
            s3 = boto3.client(
                "s3", endpoint_url=gw.ready["s3"], aws_access_key_id=access_key,
                aws_secret_access_key=secret_key, region_name="us-east-1",
                config=Config(signature_version="s3v4"),
            )  # fmt: skip
            s3.create_bucket(Bucket=BUCKET)
            write_object(origin / BUCKET / "obj.bin", size)
            s3.put_object(Bucket=BUCKET, Key="small.bin", Body=os.urandom(4096))

            def presign(method: str, key: str, **params: str) -> str:
                return str(s3.generate_presigned_url(
                    method, Params={"Bucket": BUCKET, "Key": key, **params}, ExpiresIn=3600))

            gw_pids = [gw.proc.pid]
            with nginx(workdir, origin / BUCKET) as (ng_base, ng_proc):
                ng_pids = [ng_proc.pid, *children_of(ng_proc.pid)]
                gw_url, ng_url = presign("get_object", "obj.bin"), f"{ng_base}/obj.bin"
                warm = curl_get(gw_url, size)
                curl_get(ng_url, size)
                gw_runs, ng_runs = [], []
                gw_cpu = ng_cpu = 0.0
                for _ in range(args.rounds):
                    before = cpu_seconds(gw_pids)
                    gw_runs.append(curl_get(gw_url, size))
                    gw_cpu += cpu_seconds(gw_pids) - before
                    before = cpu_seconds(ng_pids)
                    ng_runs.append(curl_get(ng_url, size))
                    ng_cpu += cpu_seconds(ng_pids) - before
                gw_par = [parallel_get(gw_url, size, 4) for _ in range(2)]
                ng_par = [parallel_get(ng_url, size, 4) for _ in range(2)]
                small_gw, small_ng = presign("get_object", "small.bin"), f"{ng_base}/small.bin"
                small_gets(workdir, small_gw, 50, 1)
                rps = {
                    (name, par): small_gets(workdir, url, args.small_requests, par)
                    for par in (1, 4)
                    for name, url in (("gateway", small_gw), ("nginx", small_ng))
                }
            upload = workdir / "upload.bin"
            write_object(upload, size)
            # With checksums, a last PUT without one: the baseline in the state the checksummed PUTs
            # ran in (a PUT after earlier 1 GiB PUTs costs more CPU than the first, checksum or not).
            puts: list[tuple[str, float, float]] = []  # (algorithm or "", MB/s, CPU s/GiB)
            for i, algorithm in enumerate(["", *put_checksums, *([""] if put_checksums else [])]):
                key = f"uploaded-{i}-{algorithm or 'plain'}.bin"
                headers, params = {}, {}
                if algorithm:
                    value = file_checksum(upload, algorithm)
                    headers[f"x-amz-checksum-{algorithm}"] = value
                    params[f"Checksum{algorithm.upper()}"] = value  # boto3 signs it as that header
                put_url = presign("put_object", key, **params)
                before = cpu_seconds(gw_pids)
                seconds = curl_put(put_url, upload, headers)
                puts.append((algorithm, size / seconds / 1e6, (cpu_seconds(gw_pids) - before) / (size / GiB)))
                if s3.head_object(Bucket=BUCKET, Key=key)["ContentLength"] != size:
                    raise SystemExit(f"PUT {key} stored the wrong size")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    gib_read = args.rounds * size / GiB
    g1, n1 = statistics.median(gw_runs), statistics.median(ng_runs)
    g4, n4 = statistics.median(gw_par), statistics.median(ng_par)
    print(f"object {args.size_mib} MiB, curl to /dev/null, {args.rounds} rounds (median), MB/s = 10^6 B/s")
    print(f"gateway uncached GET (warm-up)    {warm:9.1f} MB/s")
    print(f"GET 1 stream   gateway {g1:9.1f} MB/s  nginx {n1:9.1f} MB/s  ratio {g1 / n1:5.2f}  (target >= 0.8)")
    print(f"GET 4 streams  gateway {g4:9.1f} MB/s  nginx {n4:9.1f} MB/s  ratio {g4 / n4:5.2f}")
    print(f"CPU s/GiB (1 stream GET)  gateway {gw_cpu / gib_read:6.2f}  nginx {ng_cpu / gib_read:6.2f}")
    for par in (1, 4):
        gr, nr = rps[("gateway", par)], rps[("nginx", par)]
        print(f"4 KiB GETs/s, {par} conn  gateway {gr:8.0f}  nginx {nr:8.0f}  ratio {gr / nr:5.2f}")
    for i, (algorithm, put_mbs, put_cpu) in enumerate(puts):
        label = f" x-amz-checksum-{algorithm}" if algorithm else " no checksum, after the others" if i else ""
        print(f"PUT {args.size_mib} MiB (WRITE_BACK){label}  {put_mbs:9.1f} MB/s  gateway CPU {put_cpu:6.2f} s/GiB")


if __name__ == "__main__":
    main()
