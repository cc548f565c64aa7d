"""`python -m p2p.scheduler --config FILE`: the scheduler's one frozen config (env prefix DFLY_SCHEDULER)."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import Field, SecretStr, model_validator

from p2p.common.config import OptionalFile, Section

ENV_PREFIX = "DFLY_SCHEDULER"

log = logging.getLogger(__name__)


class ServerSection(Section):
    listen: str = "127.0.0.1"
    port: int = Field(default=8002, ge=0, le=65535, description="0 = any free port")
    # What daemons are told to dial; NAT and container ports may differ from the listen ones.
    advertise_ip: str = Field(default="", description="empty: the listen address")
    advertise_port: int = Field(default=0, ge=0, le=65535, description="0: the bound port")


class SchedulingSection(Section):
    candidate_parent_limit: int = Field(default=4, ge=1, le=20)
    filter_parent_limit: int = Field(default=40, ge=1, le=1000, description="peers sampled before filtering")
    parallel_count: int = Field(default=4, ge=1, le=50, description="piece fetches in flight per peer")
    back_to_source_count: int = Field(default=3, ge=0, description="peers per task allowed at the origin")
    retry_back_to_source_limit: int = Field(default=5, ge=0)
    retry_limit: int = Field(default=10, ge=1)
    retry_interval_s: float = Field(default=0.05, ge=0)
    seed_trigger_wait_s: float = Field(default=5.0, ge=0, description="how long peers wait for a seed peer")
    normal_upload_limit: int = Field(default=50, ge=1)
    seed_upload_limit: int = Field(default=300, ge=1)
    seed_task_children: int = Field(
        default=2,
        ge=0,
        description="children of one task a seed peer serves while it still reads the origin (0 = only the "
        "host's upload limit): the seed feeds a few peers and the rest pipeline behind them",
    )

    @model_validator(mode="after")
    def _limits(self) -> SchedulingSection:
        if self.retry_back_to_source_limit > self.retry_limit:
            raise ValueError("scheduling.retry_back_to_source_limit must not exceed scheduling.retry_limit")
        return self


class GCSection(Section):
    peer_gc_interval_s: float = Field(default=10, gt=0)
    task_gc_interval_s: float = Field(default=1800, gt=0)
    host_gc_interval_s: float = Field(default=6 * 3600, gt=0)
    piece_download_timeout_s: float = Field(default=1800, gt=0)
    peer_ttl_s: float = Field(default=24 * 3600, gt=0)
    host_ttl_s: float = Field(default=3600, gt=0)


class RecordsSection(Section):
    path: str = Field(default="", description="download records file (JSON lines); empty = off")
    max_size_bytes: int = Field(default=100 * 1024 * 1024, ge=1)
    max_backups: int = Field(default=10, ge=0)
    buffer_size: int = Field(default=100, ge=0, description="records held before a write; 0 = write each")


class ManagerSection(Section):
    """The manager this scheduler registers with (empty `address`: standalone, every feature on)."""

    address: str = Field(default="", description="the manager's gRPC address, e.g. 127.0.0.1:65003")
    scheduler_cluster_id: int = Field(default=1, ge=1)
    component_token: SecretStr | None = None  # the manager's auth.component_token, when it has one
    ca_file: OptionalFile = Field(
        default="", description="PEM of the CAs to trust for the manager's TLS; set (or an https:// address): TLS"
    )
    host_name: str = Field(default="", description="name registered with the manager; empty: the hostname")
    idc: str = ""
    location: str = ""
    keepalive_interval_s: float = Field(default=5, gt=0)
    preheat_timeout_s: float = Field(default=1200, gt=0, description="one seed peer fetching one object")


class RedisSection(Section):
    """Redis, where several schedulers share data (network topology; the job queue DBs are reserved)."""

    addrs: list[str] = Field(default_factory=list, description="host:port; empty = no Redis")
    master_name: str = Field(default="", description="Sentinel master name; then `addrs` are sentinels")
    username: str = ""
    password: SecretStr | None = None
    broker_db: int = Field(default=1, ge=0)
    backend_db: int = Field(default=2, ge=0)
    network_topology_db: int = Field(default=3, ge=0)


class DatabaseSection(Section):
    redis: RedisSection = RedisSection()


class ProbeSection(Section):
    queue_length: int = Field(default=5, ge=1, description="probes kept per edge for the moving average")
    count: int = Field(default=5, ge=1, description="hosts handed to a prober per round")


class NetworkTopologySection(Section):
    """RTT probing between daemons, stored in memory or (with `database.redis.addrs`) in Redis."""

    enable: bool = False
    # Dragonfly snapshots the edges to a CSV for its trainer at this interval; we have no trainer, so
    # it is how often this scheduler reloads every edge from the store (other schedulers' probes).
    collect_interval_s: float = Field(default=60, gt=0)
    probe: ProbeSection = ProbeSection()


# Dragonfly's pre-v2.1 key names in a top-level `redis:` section -> ours.
_LEGACY_REDIS_KEYS = {
    "masterName": "master_name",
    "brokerDB": "broker_db",
    "backendDB": "backend_db",
    "networkTopologyDB": "network_topology_db",
}


def _legacy_redis(old: Any) -> dict[str, Any]:
    if not isinstance(old, dict):
        raise ValueError("redis: must be a mapping")
    new: dict[str, Any] = {}
    for key, value in old.items():
        name = _LEGACY_REDIS_KEYS.get(str(key), str(key))
        if name not in ("host", "port", "db"):
            new[name] = value
    if "host" in old and "addrs" not in new:  # the oldest layout: one host and port
        new["addrs"] = [f"{old['host']}:{old.get('port', 6379)}"]
    if "db" in old:
        log.warning("config: redis.db has no meaning for the scheduler (it uses database.redis.*_db); ignored")
    return new


class SchedulerConfig(Section):
    server: ServerSection = ServerSection()
    scheduling: SchedulingSection = SchedulingSection()
    gc: GCSection = GCSection()
    records: RecordsSection = RecordsSection()
    manager: ManagerSection = ManagerSection()
    seed_peer_enable: bool = True
    database: DatabaseSection = DatabaseSection()
    network_topology: NetworkTopologySection = NetworkTopologySection()

    @model_validator(mode="before")
    @classmethod
    def _move_legacy_redis(cls, data: Any) -> Any:
        """Accept the old top-level `redis:` section (moved under `database:` in v2.1)."""
        if not isinstance(data, dict) or "redis" not in data:
            return data
        data = dict(data)
        moved = _legacy_redis(data.pop("redis"))
        database = dict(data.get("database") or {})
        # Keys set under database.redis win over the legacy section.
        database["redis"] = moved | dict(database.get("redis") or {})
        data["database"] = database
        log.warning("config: the top-level `redis:` section is deprecated; move it to `database.redis:`")
        return data
