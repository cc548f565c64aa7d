"""Database tables (SQLAlchemy 2, one schema for SQLite, PostgreSQL and MySQL/MariaDB).

Deletes are hard deletes (no `is_del`), so the unique indexes need no soft-delete column.
A Cluster is not a table: it is one scheduler cluster plus the one seed-peer cluster whose
`scheduler_cluster_id` points at it (unique, so the relation is 1:1).
Times are stored as naive UTC (MySQL DATETIME has no zone) and read back as aware UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, ForeignKey, Index, Integer, String, TypeDecorator
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    # Whole seconds: what every database here stores, so a row reads back as it was written.
    return datetime.now(UTC).replace(microsecond=0)


class UTCDateTime(TypeDecorator[datetime]):
    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        # MySQL DATETIME drops microseconds unless declared with fsp; whole seconds everywhere.
        return value.astimezone(UTC).replace(tzinfo=None, microsecond=0)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[str]: JSON, datetime: UTCDateTime}


class Timestamps:
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class User(Timestamps, Base):
    __tablename__ = "users"
    name: Mapped[str] = mapped_column(String(255), unique=True)
    email: Mapped[str] = mapped_column(String(255), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(32), default="guest")  # root | guest
    state: Mapped[str] = mapped_column(String(32), default="enable")


class UserSession(Timestamps, Base):
    """A console sign-in. Only the SHA-256 of the bearer token is stored."""

    __tablename__ = "user_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    expired_at: Mapped[datetime]


class SchedulerCluster(Timestamps, Base):
    __tablename__ = "scheduler_clusters"
    __table_args__ = (Index("uk_scheduler_cluster_name", "name", unique=True),)
    name: Mapped[str] = mapped_column(String(255))
    bio: Mapped[str] = mapped_column(String(1024), default="")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    client_config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    scopes: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_default: Mapped[bool] = mapped_column(default=False)


class SeedPeerCluster(Timestamps, Base):
    __tablename__ = "seed_peer_clusters"
    __table_args__ = (Index("uk_seed_peer_cluster_name", "name", unique=True),)
    name: Mapped[str] = mapped_column(String(255))
    bio: Mapped[str] = mapped_column(String(1024), default="")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The 1:1 link of a Cluster; NULL for a seed-peer cluster not (yet) in a Cluster.
    scheduler_cluster_id: Mapped[int | None] = mapped_column(
        ForeignKey("scheduler_clusters.id"), unique=True, default=None
    )


class Scheduler(Timestamps, Base):
    __tablename__ = "schedulers"
    __table_args__ = (Index("uk_scheduler", "host_name", "ip", "scheduler_cluster_id", unique=True),)
    host_name: Mapped[str] = mapped_column(String(255))
    idc: Mapped[str] = mapped_column(String(255), default="")
    location: Mapped[str] = mapped_column(String(255), default="")
    ip: Mapped[str] = mapped_column(String(64))
    port: Mapped[int]
    state: Mapped[str] = mapped_column(String(32), default="inactive")
    features: Mapped[list[str]] = mapped_column(default=list)
    last_keepalive_at: Mapped[datetime | None] = mapped_column(default=None)
    scheduler_cluster_id: Mapped[int] = mapped_column(ForeignKey("scheduler_clusters.id"))


class SeedPeer(Timestamps, Base):
    __tablename__ = "seed_peers"
    __table_args__ = (Index("uk_seed_peer", "host_name", "ip", "seed_peer_cluster_id", unique=True),)
    host_name: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(32), default="super")
    idc: Mapped[str] = mapped_column(String(255), default="")
    location: Mapped[str] = mapped_column(String(255), default="")
    ip: Mapped[str] = mapped_column(String(64))
    port: Mapped[int]
    download_port: Mapped[int] = mapped_column(default=0)
    object_storage_port: Mapped[int] = mapped_column(default=0)
    state: Mapped[str] = mapped_column(String(32), default="inactive")
    last_keepalive_at: Mapped[datetime | None] = mapped_column(default=None)
    seed_peer_cluster_id: Mapped[int] = mapped_column(ForeignKey("seed_peer_clusters.id"))


class PersonalAccessToken(Timestamps, Base):
    """Only the SHA-256 of the token is stored; the token itself is shown once, on create."""

    __tablename__ = "personal_access_tokens"
    __table_args__ = (
        Index("uk_personal_access_token_name", "name", unique=True),
        Index("uk_personal_access_token", "token_hash", unique=True),
    )
    name: Mapped[str] = mapped_column(String(255))
    bio: Mapped[str] = mapped_column(String(1024), default="")
    token_hash: Mapped[str] = mapped_column(String(64))
    token_hint: Mapped[str] = mapped_column(String(16), default="")  # last characters, to recognise it
    scopes: Mapped[list[str]] = mapped_column(default=list)
    state: Mapped[str] = mapped_column(String(32), default="active")
    expired_at: Mapped[datetime]
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))


class Job(Timestamps, Base):
    __tablename__ = "jobs"
    type: Mapped[str] = mapped_column(String(32))
    bio: Mapped[str] = mapped_column(String(1024), default="")
    state: Mapped[str] = mapped_column(String(32), default="PENDING")  # PENDING|RUNNING|SUCCESS|FAILURE
    args: Mapped[dict[str, Any]] = mapped_column(default=dict)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), default=None)


class JobRun(Timestamps, Base):
    """One job on one scheduler cluster, carried out by one chosen scheduler (the per-cluster result)."""

    __tablename__ = "job_runs"
    __table_args__ = (Index("uk_job_run", "job_id", "scheduler_cluster_id", unique=True),)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    scheduler_cluster_id: Mapped[int] = mapped_column(ForeignKey("scheduler_clusters.id", ondelete="CASCADE"))
    scheduler_id: Mapped[int | None] = mapped_column(
        ForeignKey("schedulers.id", ondelete="SET NULL"), default=None
    )
    state: Mapped[str] = mapped_column(String(32), default="PENDING")
    message: Mapped[str] = mapped_column(String(2048), default="")
    started_at: Mapped[datetime | None] = mapped_column(default=None)
