"""Schema migrations: an ordered list of steps, each applied once and recorded in `schema_migrations`.

A new schema change is a new function appended to MIGRATIONS (never edit an applied one). Step 1
creates the v1 tables from models.py; later steps alter what exists. Every step runs in its own
transaction where the database allows DDL in transactions (SQLite, PostgreSQL; MySQL commits DDL
implicitly, so a step there must be safe to re-run).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy import Column, Connection, DateTime, Engine, Integer, MetaData, String, Table, insert, select

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


def migrate(engine: Engine) -> int:
    """Apply every pending migration; return the schema version now in place."""
    with engine.begin() as conn:
        _meta.create_all(conn)
        done = {row[0] for row in conn.execute(select(schema_migrations.c.version))}
    for version, (name, step) in enumerate(MIGRATIONS, start=1):
        if version in done:
            continue
        with engine.begin() as conn:
            step(conn)
            conn.execute(
                insert(schema_migrations).values(
                    version=version, name=name, applied_at=datetime.now(UTC).replace(tzinfo=None)
                )
            )
        log.info("applied migration %d: %s", version, name)
    return len(MIGRATIONS)
