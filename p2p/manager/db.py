"""Engine construction for the three supported databases, and the transaction helper.

The engine is synchronous; the REST layer runs every service call in `asyncio.to_thread`, so the
event loop never blocks on the database (house rule 8.7.6).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine, create_engine, event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from p2p.manager.config import DatabaseSection
from p2p.manager.errors import Conflict


def database_url(db: DatabaseSection, work_home: Path) -> URL:
    if db.type == "sqlite":
        path = Path(db.sqlite.path) if db.sqlite.path else work_home / "manager.db"
        return URL.create("sqlite+pysqlite", database=str(path))
    if db.type == "postgres":
        pg = db.postgres
        query = {"sslmode": pg.sslmode}
        if pg.schema_name:
            query["options"] = f"-csearch_path={pg.schema_name}"
        return URL.create(
            "postgresql+psycopg",
            username=pg.user,
            password=pg.password.get_secret_value() or None,
            host=pg.host,
            port=pg.port,
            database=pg.dbname,
            query=query,
        )
    my = db.mysql
    return URL.create(
        "mysql+pymysql",
        username=my.user,
        password=my.password.get_secret_value() or None,
        host=my.host,
        port=my.port,
        database=my.dbname,
        query={"charset": "utf8mb4"},
    )


def make_engine(db: DatabaseSection, work_home: Path) -> Engine:
    url = database_url(db, work_home)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if db.type == "sqlite":
        Path(url.database or "").parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
    engine = create_engine(url, **kwargs)
    if db.type == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA foreign_keys=ON")  # SQLite ignores FKs unless asked
            cur.execute("PRAGMA journal_mode=WAL")
            cur.close()

    return engine


class Database:
    """Owns the engine; `tx()` is one transaction that maps duplicate keys to Conflict (409)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @contextmanager
    def tx(self) -> Iterator[Session]:
        session = self._sessions()
        try:
            yield session
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise Conflict(_integrity_message(exc)) from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def close(self) -> None:
        self.engine.dispose()


def _integrity_message(exc: IntegrityError) -> str:
    text = str(exc.orig).lower()
    for index in ("uk_scheduler_cluster_name", "uk_seed_peer_cluster_name", "uk_scheduler", "uk_seed_peer",
                  "uk_personal_access_token_name", "uk_personal_access_token", "uk_job_run"):
        if index in text:
            return f"duplicate record ({index})"
    if "foreign key" in text:
        return "record is referenced by or refers to another record"
    return "duplicate record"
