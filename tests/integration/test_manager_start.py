"""Starting the manager: a migration that waits for a lock held by another connection fails the
start after `database.migration_lock_wait_s` with a message saying so, instead of hanging (MariaDB
waits a day by default, PostgreSQL forever); once the lock is gone the manager starts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.integration.manager_proc import REPO, START_TIMEOUT_S, database_config, manager_process

SCHEMA_MIGRATIONS = "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name VARCHAR(255) NOT NULL, " \
    "applied_at TIMESTAMP NOT NULL)"


@contextmanager
def table_locked(kind: str, db: dict[str, Any]) -> Iterator[None]:
    """Another connection holds an exclusive lock on `schema_migrations` (the manager reads it first)."""
    if kind == "mariadb":
        import pymysql

        conn = pymysql.connect(host="127.0.0.1", user="root", password="", database=db["mysql"]["dbname"],
                               autocommit=True)
        with conn.cursor() as cur:
            cur.execute(SCHEMA_MIGRATIONS)
            cur.execute("LOCK TABLES schema_migrations WRITE")
        try:
            yield
        finally:
            conn.close()
        return
    import psycopg

    pg = db["postgres"]
    with psycopg.connect(host="127.0.0.1", user=pg["user"], dbname=pg["dbname"],
                         options=f"-csearch_path={pg['schema_name']}") as conn:
        conn.execute(SCHEMA_MIGRATIONS)
        conn.commit()
        conn.execute("LOCK TABLE schema_migrations IN ACCESS EXCLUSIVE MODE")  # until this transaction ends
        yield
        conn.rollback()


@pytest.mark.parametrize("kind", ["mariadb", "postgresql"])
def test_a_migration_blocked_by_a_lock_fails_the_start_instead_of_hanging(kind: str, tmp_path: Path) -> None:
    with database_config(kind, tmp_path) as db:
        config = {"server": {"work_home": str(tmp_path / "home"), "rest": {"port": 0}},
                  "database": {**db, "migration_lock_wait_s": 2}, "auth": {"root_password": "x-Pa55word-x"}}
        cfg, log = tmp_path / "manager.yaml", tmp_path / "manager.log"
        cfg.write_text(yaml.safe_dump(config))
        env = {k: v for k, v in os.environ.items() if not k.startswith("DFLY_MANAGER")}
        with table_locked(kind, db):
            started = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "p2p.manager", "--config", str(cfg), "--log-file", str(log)],
                                  cwd=REPO, env=env, timeout=START_TIMEOUT_S, capture_output=True)
            elapsed = time.monotonic() - started
        text = log.read_text()
        assert proc.returncode == 1, text
        assert "migrating the" in text and "cannot read the schema version" in text, text
        assert "lock" in text.lower().split("cannot read the schema version", 1)[1], text
        assert elapsed >= 2
        # The lock is gone: the same database migrates and the manager serves.
        with manager_process(tmp_path, {**db, "migration_lock_wait_s": 2}) as mgr:
            assert mgr.url.startswith("http://127.0.0.1:")
            assert "applied migration 1" in mgr.log_text()
