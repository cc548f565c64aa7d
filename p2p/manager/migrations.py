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
