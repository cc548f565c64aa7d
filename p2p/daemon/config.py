"""The peer daemon's config sections (composed into the node config by dfly.config)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from p2p.common.config import OptionalFile, Section


class HostSection(Section):
    """How this host names itself to schedulers and peers."""

    hostname: str = ""  # empty: the machine's hostname
    ip: str = "127.0.0.1"  # address other peers use to reach the upload server
    idc: str = ""
    location: str = ""


class StorageSection(Section):
    dir: str = ""  # empty: <home>/<node name>/storage
    quota_bytes: int = Field(default=0, ge=0, description="GC least recently used tasks above this; 0 = off")
    ttl_s: float = Field(default=6 * 3600, ge=0, description="GC tasks unused this long; 0 = off")
    gc_interval_s: float = Field(default=60, gt=0)
    open_files: int = Field(default=256, ge=1, description="completed tasks' data files kept open for reads")


class DownloadSection(Section):
    source_concurrency: int = Field(default=4, ge=1, description="ranged origin reads in flight per task")
    parent_concurrency: int = Field(default=4, ge=1, description="piece fetches from parents in flight")
    rate_limit_bps: int = Field(default=0, ge=0, description="0 = unlimited")
    piece_timeout_s: float = Field(default=30, gt=0, description="one piece from a parent")
    whole_object_range_bytes: int = Field(
        default=4 * 1024 * 1024,
        ge=0,
        description="a ranged read of an object up to this size fetches (and caches, and shares P2P) the "
        "whole object and serves the range from it; larger objects get a task of the range alone",
    )


class UploadSection(Section):
    listen: str = "127.0.0.1"
    port: int = Field(default=65002, ge=0, le=65535)
    slots: int = Field(default=8, ge=1, description="concurrent piece uploads")
    rate_limit_bps: int = Field(default=0, ge=0, description="0 = unlimited")


class SchedulerSection(Section):
    addresses: list[str] = Field(default_factory=list)  # host:port of schedulers; empty = back-to-source only
    manager: str = ""  # the manager's gRPC address (host:port) to discover schedulers from
    manager_token: SecretStr | None = None  # the manager's auth.component_token, when it has one
    manager_ca_file: OptionalFile = Field(
        default="", description="PEM of the CAs to trust for the manager's TLS; set (or an https:// address): TLS"
    )
    manager_refresh_interval_s: float = Field(default=30, gt=0, description="scheduler list refresh")
    manager_keepalive_interval_s: float = Field(default=5, gt=0, description="seed peers: keepalive")
    seed_peer_cluster_id: int = Field(default=1, ge=1, description="seed peers: the cluster to join")
    schedule_timeout_s: float = Field(default=30, gt=0, description="wait for parents before the origin")
    health_interval_s: float = Field(default=2, gt=0, description="gRPC health checks of the schedulers")
    announce_interval_s: float = Field(default=30, gt=0, description="AnnounceHost to every scheduler")


class RPCSection(Section):
    """The daemon's gRPC server (seed peers: the scheduler's TriggerTask)."""

    listen: str = "127.0.0.1"
    port: int = Field(default=65000, ge=0, le=65535, description="0 = any free port")


class ProbeSection(Section):
    interval_s: float = Field(default=20 * 60, gt=0, description="one probe round every this long")
    timeout_s: float = Field(default=1.0, gt=0, description="one TCP connect to a host's upload port")


class NetworkTopologySection(Section):
    """Measure RTTs to the hosts the scheduler names (p2p/daemon/prober.py); the scheduler needs it on too."""

    enable: bool = False
    probe: ProbeSection = ProbeSection()


class DaemonConfig(Section):
    name: str = "peer-0"
    seed: bool = False
    host: HostSection = HostSection()
    storage: StorageSection = StorageSection()
    download: DownloadSection = DownloadSection()
    upload: UploadSection = UploadSection()
    scheduler: SchedulerSection = SchedulerSection()
    rpc: RPCSection = RPCSection()
    network_topology: NetworkTopologySection = NetworkTopologySection()
