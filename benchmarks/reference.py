"""The reference server the throughput benchmarks compare against: nginx (Debian package) serving a
directory on 127.0.0.1 with sendfile, one worker, its own config in a temp dir; and the small-GET
load both are measured with (curl, keep-alive)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def nginx(workdir: Path, root: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Yields nginx's base URL and its master process."""
    nginx_bin = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(nginx_bin):
        sys.exit("nginx is not installed (Debian: apt-get install -y nginx)")
    prefix = workdir / "nginx"
    prefix.mkdir()
    port = free_port()
    temps = " ".join(
        f"{kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    # Started as root, nginx would drop its worker to `nobody`, which cannot read a 0700 temp dir.
    user = "user root;\n" if os.geteuid() == 0 else ""
    (prefix / "nginx.conf").write_text(
        f"""{user}worker_processes 1;
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;
events {{ worker_connections 64; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 100000;
    default_type application/octet-stream;
    {temps}
    server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
"""
    )
    proc = subprocess.Popen(
        [nginx_bin, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    sys.exit(f"nginx did not start: {(prefix / 'error.log').read_text(errors='replace')}")
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", proc
    finally:
        proc.terminate()
        proc.wait(10)


def small_gets(workdir: Path, url: str, count: int, parallel: int) -> float:
    """GETs per second of `count` requests for one small object, keep-alive, `parallel` connections."""
    config = workdir / f"curl-{parallel}.cfg"
    config.write_text("".join(f'url = "{url}"\noutput = "/dev/null"\n' for _ in range(count)))
    args = ["curl", "-sS", "--no-progress-meter", "--fail", "-K", str(config)]
    if parallel > 1:
        args += ["-Z", "--parallel-max", str(parallel)]
    start = time.monotonic()
    subprocess.run(args, check=True, timeout=600)
    return count / (time.monotonic() - start)
