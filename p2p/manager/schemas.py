"""Request bodies of the REST API (snake_case, as Dragonfly's) and the JSON shape of each record.

The pydantic models validate input (a failure is 422) and feed the OpenAPI document; `render_*`
turn rows into plain dicts. Unknown keys are rejected so that a typo is not silently ignored.
"""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from p2p.manager import models

FEATURES = ("schedule", "preheat")
SCOPES = ("job", "cluster", "preheat")
Feature = Literal["schedule", "preheat"]
Scope = Literal["job", "cluster", "preheat"]


def _all_features() -> list[Feature]:
    return ["schedule", "preheat"]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- clusters -----------------------------------------------------------------------------------


class Scopes(Body):
    idc: str = ""  # '|'-separated IDCs
    location: str = ""  # '|'-separated location path, e.g. "cn|zj|hz"
    cidrs: list[str] = Field(default_factory=list)

    @field_validator("cidrs")
    @classmethod
    def _cidrs(cls, value: list[str]) -> list[str]:
        for cidr in value:
            ipaddress.ip_network(cidr, strict=False)  # ValueError -> 422
        return value


class SchedulerClusterConfig(Body):
    candidate_parent_limit: int = Field(default=4, ge=1, le=20)
    filter_parent_limit: int = Field(default=40, ge=10, le=1000)


class SeedPeerClusterConfig(Body):
    load_limit: int = Field(default=300, ge=1, le=50000)


class PeerClusterConfig(Body):
    load_limit: int = Field(default=50, ge=1, le=50000)
    concurrent_piece_count: int = Field(default=4, ge=1, le=50)


class ClusterCreate(Body):
    name: str = Field(min_length=1, max_length=255)
    bio: str = Field(default="", max_length=1024)
    scopes: Scopes = Scopes()
    scheduler_cluster_config: SchedulerClusterConfig = SchedulerClusterConfig()
    seed_peer_cluster_config: SeedPeerClusterConfig = SeedPeerClusterConfig()
    peer_cluster_config: PeerClusterConfig = PeerClusterConfig()
    is_default: bool = False


class ClusterUpdate(Body):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    bio: str | None = Field(default=None, max_length=1024)
    scopes: Scopes | None = None
    scheduler_cluster_config: SchedulerClusterConfig | None = None
    seed_peer_cluster_config: SeedPeerClusterConfig | None = None
    peer_cluster_config: PeerClusterConfig | None = None
    is_default: bool | None = None


class SchedulerClusterCreate(Body):
    name: str = Field(min_length=1, max_length=255)
    bio: str = Field(default="", max_length=1024)
    config: SchedulerClusterConfig = SchedulerClusterConfig()
    client_config: PeerClusterConfig = PeerClusterConfig()
    scopes: Scopes = Scopes()
    is_default: bool = False


class SchedulerClusterUpdate(Body):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    bio: str | None = Field(default=None, max_length=1024)
    config: SchedulerClusterConfig | None = None
    client_config: PeerClusterConfig | None = None
    scopes: Scopes | None = None
    is_default: bool | None = None


class SeedPeerClusterCreate(Body):
    name: str = Field(min_length=1, max_length=255)
    bio: str = Field(default="", max_length=1024)
    config: SeedPeerClusterConfig = SeedPeerClusterConfig()


class SeedPeerClusterUpdate(Body):
    name: str | None = Field(default=None, min_length=1, max_length=255)
    bio: str | None = Field(default=None, max_length=1024)
    config: SeedPeerClusterConfig | None = None


# --- schedulers and seed peers ------------------------------------------------------------------


class _Host(Body):
    host_name: str = Field(min_length=1, max_length=255)
    ip: str = Field(min_length=1, max_length=64)  # the advertised address, not necessarily the listen one
    port: int = Field(ge=1, le=65535)  # the advertised port
    idc: str = Field(default="", max_length=255)
    location: str = Field(default="", max_length=255)

    @field_validator("ip")
    @classmethod
    def _ip(cls, value: str) -> str:
        ipaddress.ip_address(value)
        return value


class SchedulerCreate(_Host):
    scheduler_cluster_id: int = Field(ge=1)
    features: list[Feature] = Field(default_factory=_all_features)


class SchedulerUpdate(Body):
    idc: str | None = Field(default=None, max_length=255)
    location: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    features: list[Feature] | None = None


class SchedulerRegister(_Host):
    """What a scheduler sends at start. `features` None keeps what the manager has (or the default)."""

    scheduler_cluster_id: int = Field(default=1, ge=1)
    features: list[Feature] | None = None


class SeedPeerCreate(_Host):
    type: Literal["super", "strong", "weak"] = "super"
    download_port: int = Field(default=0, ge=0, le=65535)
    object_storage_port: int = Field(default=0, ge=0, le=65535)
    seed_peer_cluster_id: int = Field(ge=1)


class SeedPeerUpdate(Body):
    type: Literal["super", "strong", "weak"] | None = None
    idc: str | None = Field(default=None, max_length=255)
    location: str | None = Field(default=None, max_length=255)
    port: int | None = Field(default=None, ge=1, le=65535)
    download_port: int | None = Field(default=None, ge=0, le=65535)
    object_storage_port: int | None = Field(default=None, ge=0, le=65535)


class SeedPeerRegister(SeedPeerCreate):
    seed_peer_cluster_id: int = Field(default=1, ge=1)


class TaskSummary(Body):
    id: str = Field(max_length=255)
    url: str = Field(default="", max_length=4096)
    state: str = Field(default="", max_length=64)
    content_length: int = -1
    peer_count: int = 0


class PeerSummary(Body):
    id: str = Field(max_length=255)
    task_id: str = Field(default="", max_length=255)
    host_name: str = Field(default="", max_length=255)
    ip: str = Field(default="", max_length=64)
    state: str = Field(default="", max_length=64)


class EdgeSummary(Body):
    """One network topology edge: RTTs the source host measured to the destination host."""

    src_host_id: str = Field(max_length=255)
    src_host_name: str = Field(default="", max_length=255)
    src_address: str = Field(default="", max_length=128)  # ip:upload port
    dest_host_id: str = Field(max_length=255)
    dest_host_name: str = Field(default="", max_length=255)
    dest_address: str = Field(default="", max_length=128)
    average_rtt_ns: int = Field(default=0, ge=0)
    probe_count: int = Field(default=0, ge=0)
    updated_at_ns: int = Field(default=0, ge=0)


class KeepAlive(Body):
    """A keepalive; a scheduler may attach a bounded snapshot of its tasks, peers and network topology
    edges for the console."""

    tasks: list[TaskSummary] | None = Field(default=None, max_length=1000)
    peers: list[PeerSummary] | None = Field(default=None, max_length=1000)
    topology: list[EdgeSummary] | None = Field(default=None, max_length=1000)


# --- users and tokens ---------------------------------------------------------------------------


class SignIn(Body):
    name: str = Field(min_length=1, max_length=255)
    password: str = Field(min_length=1, max_length=1024)


class UserCreate(Body):
    name: str = Field(min_length=1, max_length=255)
    email: str = Field(default="", max_length=255)
    password: str = Field(min_length=8, max_length=1024)
    role: Literal["root", "guest"] = "guest"


class ResetPassword(Body):
    old_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=8, max_length=1024)


class TokenCreate(Body):
    name: str = Field(min_length=1, max_length=255)
    bio: str = Field(default="", max_length=1024)
    scopes: list[Scope] = Field(min_length=1)
    expired_at: datetime


class TokenUpdate(Body):
    bio: str | None = Field(default=None, max_length=1024)
    scopes: list[Scope] | None = Field(default=None, min_length=1)
    state: Literal["active", "inactive"] | None = None
    expired_at: datetime | None = None


# --- jobs ---------------------------------------------------------------------------------------


class PreheatArgs(Body):
    type: Literal["file"] = "file"  # image preheat (registry manifests) is not supported
    url: str = Field(min_length=1, max_length=4096)
    tag: str = Field(default="", max_length=255)
    filter: str = Field(default="", max_length=1024)
    headers: dict[str, str] = Field(default_factory=dict)
    range: str = Field(default="", max_length=255)  # "bytes=a-b" or "a-b"; empty = whole object

    @field_validator("url")
    @classmethod
    def _scheme(cls, value: str) -> str:
        scheme = value.split("://", 1)[0].lower() if "://" in value else ""
        if scheme not in ("http", "https", "dfs", "s3"):
            raise ValueError("url must be http(s)://, dfs://bucket/key or s3://bucket/key")
        return value


class JobCreate(Body):
    type: Literal["preheat"]
    args: PreheatArgs
    bio: str = Field(default="", max_length=1024)
    scheduler_cluster_ids: list[int] = Field(default_factory=list)


class JobUpdate(Body):
    bio: str = Field(max_length=1024)


class JobResult(Body):
    """What a scheduler reports for the run it was given."""

    scheduler_id: int = Field(ge=1)
    state: Literal["RUNNING", "SUCCESS", "FAILURE"]
    message: str = Field(default="", max_length=2048)


# --- rendering ----------------------------------------------------------------------------------


def _ts(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _base(row: models.Timestamps) -> dict[str, Any]:
    return {"id": row.id, "created_at": _ts(row.created_at), "updated_at": _ts(row.updated_at)}


def render_user(u: models.User) -> dict[str, Any]:
    return {**_base(u), "name": u.name, "email": u.email, "role": u.role, "state": u.state}


def render_scheduler_cluster(c: models.SchedulerCluster, seed_peer_cluster_id: int | None) -> dict[str, Any]:
    return {
        **_base(c), "name": c.name, "bio": c.bio, "config": c.config, "client_config": c.client_config,
        "scopes": c.scopes, "is_default": c.is_default, "seed_peer_cluster_id": seed_peer_cluster_id,
    }


def render_seed_peer_cluster(c: models.SeedPeerCluster) -> dict[str, Any]:
    return {
        **_base(c), "name": c.name, "bio": c.bio, "config": c.config,
        "scheduler_cluster_id": c.scheduler_cluster_id,
    }


def render_cluster(
    sc: models.SchedulerCluster, spc: models.SeedPeerCluster, counts: dict[str, int] | None = None
) -> dict[str, Any]:
    out = {
        **_base(sc),
        "name": sc.name,
        "bio": sc.bio,
        "scopes": sc.scopes,
        "is_default": sc.is_default,
        "scheduler_cluster_id": sc.id,
        "seed_peer_cluster_id": spc.id,
        "scheduler_cluster_config": sc.config,
        "seed_peer_cluster_config": spc.config,
        "peer_cluster_config": sc.client_config,
    }
    if counts is not None:
        out.update(counts)
    return out


def render_scheduler(s: models.Scheduler) -> dict[str, Any]:
    return {
        **_base(s), "host_name": s.host_name, "idc": s.idc, "location": s.location, "ip": s.ip,
        "port": s.port, "state": s.state, "features": list(s.features or []),
        "last_keepalive_at": _ts(s.last_keepalive_at), "scheduler_cluster_id": s.scheduler_cluster_id,
    }


def render_seed_peer(p: models.SeedPeer) -> dict[str, Any]:
    return {
        **_base(p), "host_name": p.host_name, "type": p.type, "idc": p.idc, "location": p.location,
        "ip": p.ip, "port": p.port, "download_port": p.download_port,
        "object_storage_port": p.object_storage_port, "state": p.state,
        "last_keepalive_at": _ts(p.last_keepalive_at), "seed_peer_cluster_id": p.seed_peer_cluster_id,
    }


def render_token(t: models.PersonalAccessToken, *, token: str | None = None) -> dict[str, Any]:
    out = {
        **_base(t), "name": t.name, "bio": t.bio, "scopes": list(t.scopes or []), "state": t.state,
        "expired_at": _ts(t.expired_at), "user_id": t.user_id, "token_hint": t.token_hint,
    }
    if token is not None:
        out["token"] = token  # only in the create response
    return out


def render_job(j: models.Job, runs: list[models.JobRun]) -> dict[str, Any]:
    return {
        **_base(j), "type": j.type, "bio": j.bio, "state": j.state, "args": j.args, "user_id": j.user_id,
        "scheduler_cluster_ids": [r.scheduler_cluster_id for r in runs],
        "result": {
            "scheduler_clusters": [
                {
                    "scheduler_cluster_id": r.scheduler_cluster_id, "scheduler_id": r.scheduler_id,
                    "state": r.state, "message": r.message, "updated_at": _ts(r.updated_at),
                }
                for r in runs
            ]
        },
    }
