"""Real processes for tests: daemons started with `python -m dfly daemon` on 127.0.0.1, port 0,
addresses read from their ready files; torn down with SIGTERM, then SIGKILL."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.config import Config

from dfly.procs import Child, spawn

_names = itertools.count()

# Gateway credentials of every test daemon.
S3_ACCESS_KEY = "dflytestaccesskey"
S3_SECRET_KEY = "dflytestsecretkey0123456789"


def s3_client(
    endpoint: str, *, access_key: str = S3_ACCESS_KEY, secret_key: str = S3_SECRET_KEY, region: str = "us-east-1",
    **config: Any,
) -> Any:
    """A boto3 S3 client for `endpoint` (a gateway, or an S3 origin); `config`: botocore Config options."""
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
                        region_name=region, config=Config(**config) if config else None)


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def node_config(workdir: Path, name: str, origin: dict[str, Any], extra: dict[str, Any] | None = None) -> Path:
    """Write a daemon config that binds only free loopback ports."""
    data: dict[str, Any] = {
        "home": str(workdir / name),
        "daemon": {
            "name": name,
            "upload": {"listen": "127.0.0.1", "port": 0},
            "rpc": {"listen": "127.0.0.1", "port": 0},
        },
        "dfstore": {"listen": "127.0.0.1", "port": 0, "origin": origin},
        "gateway": {"listen": "127.0.0.1", "port": 0, "access_key": S3_ACCESS_KEY, "secret_key": S3_SECRET_KEY},
    }
    data = merge(data, extra or {})
    (workdir / name).mkdir(parents=True, exist_ok=True)
    path = workdir / name / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def start_daemon(
    workdir: Path,
    origin: dict[str, Any],
    *,
    name: str | None = None,
    extra: dict[str, Any] | None = None,
    env: dict[str, str] | None = None,
) -> Child:
    name = name or f"peer-{next(_names)}"
    config = node_config(workdir, name, origin, extra)
    return spawn(
        name,
        ["dfly", "daemon", "--config", str(config)],
        ready_file=workdir / name / "ready.json",
        log_path=workdir / name / "daemon.log",
        env=env,
    )


@contextmanager
def running_daemon(workdir: Path, origin: dict[str, Any], **kw: Any) -> Iterator[Child]:
    child = start_daemon(workdir, origin, **kw)
    try:
        yield child
    finally:
        child.stop()


def fs_origin(workdir: Path) -> dict[str, Any]:
    path = workdir / "origin"
    path.mkdir(parents=True, exist_ok=True)
    return {"kind": "fs", "path": str(path)}


@contextmanager
def dfly_up(home: Path, origin: str, env: dict[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """Run `dfly up` (the user's one command) and yield its cluster.json; SIGTERM at the end."""
    log = home.parent / f"{home.name}-up.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dfly", "up", "--home", str(home), "--origin", origin],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env={**os.environ, **(env or {})},
        )  # fmt: skip
    try:
        cluster = home / "cluster.json"
        deadline = time.monotonic() + 60
        while not cluster.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"dfly up did not come up:\n{log.read_text(errors='replace')}")
            time.sleep(0.05)
        yield json.loads(cluster.read_text())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
