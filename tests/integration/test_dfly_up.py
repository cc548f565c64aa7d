"""`dfly up` as a user runs it: everything starts, cluster.json tells where, both front doors work, and
SIGTERM stops every process. `dfly daemon` rejects a bad config naming the key."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

pytestmark = [pytest.mark.cluster, pytest.mark.slow]


def _dfly(*args: str) -> list[str]:
    return [sys.executable, "-m", "dfly", *args]


def _wait_for(path: Path, proc: subprocess.Popen[bytes], timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            return json.loads(path.read_text())
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            raise AssertionError(f"dfly up exited with {proc.returncode}:\n{out}")
        time.sleep(0.1)
    raise AssertionError("cluster.json did not appear")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_dfly_up_serves_and_stops_cleanly(tmp_path: Path) -> None:
    home = tmp_path / "home"
    proc = subprocess.Popen(_dfly("up", "--home", str(home)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        doc = _wait_for(home / "cluster.json", proc)
        assert oct((home / "cluster.json").stat().st_mode & 0o777) == "0o600"  # it holds the S3 secret
        assert [p["seed"] for p in doc["peers"]] == [True, False]
        assert doc["schedulers"] and doc["manager"]["url"].startswith("http://127.0.0.1:")
        assert doc["manager"]["grpc"].startswith("127.0.0.1:")  # the component API the scheduler and daemons use
        dfstore = doc["dfstore"]

        urllib.request.urlopen(urllib.request.Request(f"{dfstore}/buckets/demo", method="POST")).close()
        s3 = boto3.client(
            "s3",
            endpoint_url=doc["s3"]["endpoint"],
            aws_access_key_id=doc["s3"]["access_key"],
            aws_secret_access_key=doc["s3"]["secret_key"],
            region_name=doc["s3"]["region"],
        )
        s3.put_object(Bucket="demo", Key="dir/hello.txt", Body=b"hello from s3")
        with urllib.request.urlopen(f"{dfstore}/buckets/demo/objects/dir/hello.txt") as resp:
            assert resp.read() == b"hello from s3"
        assert (Path(doc["origin"]) / "demo" / "dir" / "hello.txt").read_bytes() == b"hello from s3"
        _assert_manager_sees_the_cluster(doc["manager"]["url"], home)

        pids = [p["pid"] for p in doc["peers"]]
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0, out.decode(errors="replace")
        assert b"dfly is up." in out
        assert not any(_alive(pid) for pid in pids)
        assert not (home / "cluster.json").exists()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _assert_manager_sees_the_cluster(manager: str, home: Path) -> None:
    """The scheduler and the seed peer registered with the manager; the root password works."""
    password = json.loads((home / "credentials.json").read_text())["manager"]["root_password"]
    signin = urllib.request.Request(
        f"{manager}/api/v1/users/signin",
        data=json.dumps({"name": "root", "password": password}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(signin) as resp:
        token = json.loads(resp.read())["token"]
    deadline = time.monotonic() + 30
    while True:
        found = {}
        for kind in ("schedulers", "seed-peers"):
            req = urllib.request.Request(f"{manager}/api/v1/{kind}", headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req) as resp:
                found[kind] = [r["state"] for r in json.loads(resp.read())]
        if found == {"schedulers": ["active"], "seed-peers": ["active"]} or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert found == {"schedulers": ["active"], "seed-peers": ["active"]}


def test_daemon_config_error_names_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("dfstore:\n  port: 99999\n  origin:\n    kind: ftp\ngateway:\n  bogus: 1\n")
    result = subprocess.run(_dfly("daemon", "--config", str(cfg)), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    for key in ("dfstore.port", "dfstore.origin.kind", "gateway.bogus"):
        assert key in result.stderr, result.stderr


def test_daemon_env_overrides_and_masks_secrets(tmp_path: Path) -> None:
    env = {**os.environ, "DFLY_NODE__DFSTORE__PORT": "9123", "DFLY_NODE__GATEWAY__SECRET_KEY": "0123456789"}
    result = subprocess.run(_dfly("daemon", "--print-config"), capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    cfg = json.loads(result.stdout)
    assert cfg["dfstore"]["port"] == 9123
    assert "0123456789" not in result.stdout
