"""Schema migrations: an ordered list of steps, each applied once and recorded in `schema_migrations`.

Step 1 creates every missing table as models.py defines it *now*, so a fresh database is born
current. Therefore each later step must look before it alters (e.g. add a column only if
`inspect(conn).get_columns(...)` lacks it): on a fresh database it finds the change already made
and does nothing; on an old one it upgrades. That also makes a step safe to re-run on MySQL,
which commits DDL implicitly. Never edit or reorder an applied step; append a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Column, Connection, DateTime, Engine, Integer, MetaData, String, Table, insert, select
from sqlalchemy.exc import OperationalError

from p2p.manager import models

log = logging.getLogger(__name__)

_meta = MetaData()
schema_migrations = Table(
    "schema_migrations",
    _meta,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(255), nullable=False),
    Column("applied_at", DateTime, nullable=False),
)

DEFAULT_CLUSTER = "cluster-1"
# DDL waits for metadata locks held by other connections (an open transaction on a table). MariaDB's
# default wait is a day and PostgreSQL's is forever: the manager would hang at start, silently.
LOCK_WAIT_S = 60


class MigrationError(RuntimeError):
    pass


def _bound_lock_waits(conn: Connection, seconds: int) -> None:
    if conn.dialect.name == "mysql":  # also MariaDB; DDL commits implicitly there, so per session
        conn.exec_driver_sql(f"SET SESSION lock_wait_timeout = {int(seconds)}")
    elif conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{int(seconds)}s'")


def _create_v1_tables(conn: Connection) -> None:
    models.Base.metadata.create_all(conn)


def _default_cluster(conn: Connection) -> None:
    """Dragonfly's bootstrap: cluster 1 with its default scheduler and seed-peer cluster configs."""
    found = conn.execute(select(models.SchedulerCluster.id).where(models.SchedulerCluster.name == DEFAULT_CLUSTER))
    if found.first() is not None:
        return
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    sc_id = conn.execute(
        insert(models.SchedulerCluster).values(
            name=DEFAULT_CLUSTER, bio="default cluster", is_default=True, created_at=now, updated_at=now,
            config={"candidate_parent_limit": 4, "filter_parent_limit": 40},
            client_config={"load_limit": 50, "concurrent_piece_count": 4},
            scopes={"idc": "", "location": "", "cidrs": []},
        )
    ).inserted_primary_key[0]  # type: ignore[index]
    conn.execute(
        insert(models.SeedPeerCluster).values(
            name=DEFAULT_CLUSTER, bio="default cluster", config={"load_limit": 300},
            scheduler_cluster_id=sc_id, created_at=now, updated_at=now,
        )
    )


MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("create v1 tables", _create_v1_tables),
    ("default cluster", _default_cluster),
]


def migrate(engine: Engine, *, lock_wait_s: int = LOCK_WAIT_S) -> int:
    """Apply every pending migration; return the schema version now in place."""
    try:
        with engine.begin() as conn:
            _bound_lock_waits(conn, lock_wait_s)
            _meta.create_all(conn)
            done = {row[0] for row in conn.execute(select(schema_migrations.c.version))}
    except OperationalError as exc:
        raise MigrationError(f"cannot read the schema version: {_first_line(exc)}") from exc
    for version, (name, step) in enumerate(MIGRATIONS, start=1):
        if version in done:
            continue
        try:
            with engine.begin() as conn:
                _bound_lock_waits(conn, lock_wait_s)
                step(conn)
                conn.execute(
                    insert(schema_migrations).values(
                        version=version, name=name, applied_at=datetime.now(UTC).replace(tzinfo=None)
                    )
                )
        except OperationalError as exc:  # e.g. a lock wait timeout: name the step that could not run
            raise MigrationError(f"migration {version} ({name}) failed: {_first_line(exc)}") from exc
        log.info("applied migration %d: %s", version, name)
    return len(MIGRATIONS)


def _first_line(exc: OperationalError) -> str:
    return str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc).splitlines()[0]
