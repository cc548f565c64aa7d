"""The manager's config (`manager.yaml`): REST listener and TLS, gRPC listener, database, auth,
keepalive, jobs.

Keys follow Dragonfly's manager YAML where it has one (`server.rest.tls.{cert,key}`,
`database.type`, `objectStorage` as `object_storage`); units are in the names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from p2p.common.config import Section, load_config

ENV_PREFIX = "DFLY_MANAGER"


class TLSSection(Section):
    cert: str = ""  # PEM certificate chain file; both empty = plain HTTP
    key: str = ""  # PEM private key file

    @property
    def enabled(self) -> bool:
        return bool(self.cert)

    @model_validator(mode="after")
    def _both(self) -> TLSSection:
        if bool(self.cert) != bool(self.key):
            raise ValueError("server.rest.tls needs both cert and key")
        return self


class RestSection(Section):
    listen: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)  # 0 = any free port (see --ready-file)
    tls: TLSSection = TLSSection()


class GrpcSection(Section):
    """The component API (schedulers, seed peers, daemons). TLS: the REST cert and key, when set."""

    listen: str = "127.0.0.1"
    port: int = Field(default=65003, ge=0, le=65535)  # 0 = any free port (see --ready-file)
    # What components are told to dial (NAT, container ports): empty/0 = the listen address/port.
    advertise_ip: str = ""
    advertise_port: int = Field(default=0, ge=0, le=65535)


class ServerSection(Section):
    work_home: str = ""  # empty: ~/.dfly/manager; holds the SQLite file by default
    rest: RestSection = RestSection()
    grpc: GrpcSection = GrpcSection()


class SqliteSection(Section):
    path: str = ""  # empty: <work_home>/manager.db


class PostgresSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=5432, ge=1, le=65535)
    user: str = "postgres"
    password: SecretStr = SecretStr("")
    dbname: str = "manager"
    schema_name: str = ""  # empty: the server's search_path (public)
    sslmode: str = "disable"


class MysqlSection(Section):
    host: str = "127.0.0.1"
    port: int = Field(default=3306, ge=1, le=65535)
    user: str = "root"
    password: SecretStr = SecretStr("")
    dbname: str = "manager"


class DatabaseSection(Section):
    type: Literal["sqlite", "postgres", "mysql", "mariadb"] = "sqlite"
    sqlite: SqliteSection = SqliteSection()
    postgres: PostgresSection = PostgresSection()
    mysql: MysqlSection = MysqlSection()  # also used for type: mariadb
    # How long a migration waits for a lock another connection holds, then fails the start.
    migration_lock_wait_s: int = Field(default=60, ge=1)


class AuthSection(Section):
    root_password: SecretStr | None = None  # None: generated on first start and reported once
    session_ttl_s: float = Field(default=48 * 3600, gt=0)  # console sign-in lifetime (Dragonfly's JWT timeout)
    # When set, every call of the gRPC component API (registration, keepalive, scheduler lists, job
    # results) needs metadata `authorization: Bearer <component_token>`; when unset it is open, like
    # Dragonfly's manager gRPC.
    component_token: SecretStr | None = None


class KeepAliveSection(Section):
    timeout_s: float = Field(default=30.0, gt=0)  # no keepalive for this long -> inactive
    sweep_interval_s: float = Field(default=2.0, gt=0)


class JobSection(Section):
    timeout_s: float = Field(default=20 * 60, gt=0)  # a preheat run not reported by then fails


class ObjectStorageSection(Section):
    enable: bool = False
    name: Literal["s3"] = "s3"
    endpoint: str = ""
    region: str = "us-east-1"
    access_key: SecretStr = SecretStr("")
    secret_key: SecretStr = SecretStr("")
    s3_force_path_style: bool = True


class ManagerConfig(Section):
    server: ServerSection = ServerSection()
    database: DatabaseSection = DatabaseSection()
    auth: AuthSection = AuthSection()
    keepalive: KeepAliveSection = KeepAliveSection()
    job: JobSection = JobSection()
    object_storage: ObjectStorageSection = ObjectStorageSection()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    def work_home(self) -> Path:
        return Path(self.server.work_home or Path.home() / ".dfly" / "manager")


def load_manager_config(path: str | Path | None = None) -> ManagerConfig:
    """defaults < YAML file < DFLY_MANAGER__* environment (e.g. DFLY_MANAGER__SERVER__REST__PORT=9000)."""
    return load_config(ManagerConfig, path, env_prefix=ENV_PREFIX)
