"""Start a real manager process (`python -m p2p.manager`) for tests, on one of three databases.

`database_config(kind)` creates a private PostgreSQL schema or MariaDB database (a unique name, so
parallel runs never collide) and drops it afterwards; it skips when the server is unreachable,
unless CI=true, where it fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

ROOT_PASSWORD = "root-Pa55word"
# A manager start is Python start-up and imports (~1 s idle, 10-15 s on a starved 2-core machine),
# then migrations and the root password's scrypt: 20 s was not enough under load.
START_TIMEOUT_S = float(os.environ.get("DFLY_TEST_START_TIMEOUT_S", "90"))
REPO = Path(__file__).resolve().parents[2]


def _unreachable(what: str, exc: Exception) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{what} unreachable under CI: {exc}")
    pytest.skip(f"{what} unreachable: {exc}")


@contextmanager
def database_config(kind: str, tmp: Path) -> Iterator[dict[str, Any]]:
    name = f"dfly_mgr_{uuid.uuid4().hex[:10]}"
    if kind == "sqlite":
        yield {"type": "sqlite", "sqlite": {"path": str(tmp / "manager.db")}}
        return
    if kind == "postgresql":
        import psycopg

        conn = None
        for user in ("postgres", "root"):
            try:
                conn = psycopg.connect(host="127.0.0.1", port=5432, user=user, dbname="test", autocommit=True,
                                       connect_timeout=3)
                break
            except psycopg.OperationalError as exc:
                error: Exception = exc
        if conn is None:
            _unreachable("PostgreSQL at 127.0.0.1:5432", error)
            return
        with conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
            try:
                yield {"type": "postgres", "postgres": {"user": conn.info.user, "dbname": "test", "schema_name": name}}
            finally:
                conn.execute(f'DROP SCHEMA "{name}" CASCADE')
        return
    import pymysql

    try:
        my = pymysql.connect(host="127.0.0.1", port=3306, user="root", password="", database="test",
                             connect_timeout=3, autocommit=True)
    except pymysql.err.OperationalError as exc:
        _unreachable("MariaDB at 127.0.0.1:3306", exc)
        return
    try:
        with my.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
        try:
            yield {"type": "mariadb", "mysql": {"user": "root", "dbname": name}}
        finally:
            with my.cursor() as cur:
                cur.execute(f"DROP DATABASE `{name}`")
    finally:
        my.close()


@dataclass
class ManagerProc:
    url: str  # REST
    log_file: Path
    proc: subprocess.Popen[bytes]
    ready: dict[str, Any]

    @property
    def grpc(self) -> str:
        """The gRPC component API's advertised address, host:port."""
        return str(self.ready["grpc"])

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""


@contextmanager
def manager_process(tmp: Path, database: dict[str, Any], **overrides: Any) -> Iterator[ManagerProc]:
    config: dict[str, Any] = {
        "server": {"work_home": str(tmp / "home"), "rest": {"port": 0}, "grpc": {"port": 0}},
        "database": database,
        "auth": {"root_password": ROOT_PASSWORD},
        "keepalive": {"timeout_s": 3, "sweep_interval_s": 0.5},
        "job": {"timeout_s": 30},
        "log_level": "DEBUG",
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    cfg_path, ready, log_file = tmp / "manager.yaml", tmp / "ready.json", tmp / "manager.log"
    cfg_path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith("DFLY_MANAGER")}
    proc = subprocess.Popen(
        # faulthandler: a start that times out is asked (SIGABRT) where every thread stands.
        [sys.executable, "-X", "faulthandler", "-m", "p2p.manager", "--config", str(cfg_path),
         "--ready-file", str(ready), "--log-file", str(log_file)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        started = time.monotonic()
        while not ready.exists():
            if proc.poll() is not None or time.monotonic() > started + START_TIMEOUT_S:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGABRT)  # the tracebacks go to stderr
                    proc.wait(10)
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                log = log_file.read_text() if log_file.exists() else ""
                pytest.fail(f"manager did not start in {time.monotonic() - started:.1f}s (rc={proc.poll()}):"
                            f"\n{err}\n{log}")
            time.sleep(0.05)
        info = json.loads(ready.read_text())
        yield ManagerProc(info["url"], log_file, proc, info)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr:
            proc.stderr.close()


@dataclass
class Api:
    """A tiny test client: every call returns (status, json-or-None, headers)."""

    url: str
    session: aiohttp.ClientSession
    token: str = ""

    async def call(self, method: str, path: str, body: Any = None, *, token: str | None = None,
                   headers: dict[str, str] | None = None) -> tuple[int, Any, Any]:
        hdrs = dict(headers or {})
        tok = self.token if token is None else token
        if tok:
            hdrs["Authorization"] = f"Bearer {tok}"
        async with self.session.request(method, self.url + path, json=body, headers=hdrs) as resp:
            raw = await resp.read()
            data = json.loads(raw) if raw and resp.content_type == "application/json" else None
            return resp.status, data, resp.headers

    async def sign_in(self, name: str = "root", password: str = ROOT_PASSWORD) -> str:
        status, data, _ = await self.call("POST", "/api/v1/users/signin", {"name": name, "password": password},
                                          token="")
        assert status == 200, data
        self.token = data["token"]
        return self.token
