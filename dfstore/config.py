"""The object service's config sections: the dfstore HTTP listener and the origin store."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, model_validator

from p2p.common.config import Section


class OriginSection(Section):
    """Where objects really live. `kind: fs` is a local directory; `kind: s3` any S3 endpoint."""

    kind: Literal["fs", "s3"] = "fs"
    path: str = ""  # fs: the root directory; empty = <home>/origin
    endpoint: str = ""  # s3: http(s)://host:port
    region: str = "us-east-1"
    access_key: SecretStr | None = None  # s3: default from AWS_ACCESS_KEY_ID
    secret_key: SecretStr | None = None  # s3: default from AWS_SECRET_ACCESS_KEY

    @model_validator(mode="after")
    def _check(self) -> OriginSection:
        if self.kind == "s3" and not self.endpoint:
            raise ValueError("origin.endpoint is required when origin.kind is s3")
        return self


class WriteBackSection(Section):
    """AsyncWriteBack: the journal of acknowledged writes not yet on the origin."""

    retry_initial_s: float = Field(default=0.5, gt=0)
    retry_max_s: float = Field(default=30.0, gt=0)
    workers: int = Field(default=2, ge=1)


class DfstoreConfig(Section):
    enable: bool = True
    listen: str = "127.0.0.1"
    port: int = Field(default=65004, ge=0, le=65535)
    filter: str = "Expires&Signature&ns"  # default task-id filter (Dragonfly's)
    max_replicas: int = Field(default=3, ge=0, le=100)
    # dfstore URLs of the seed peers that take Ephemeral copies of PUTs (`maxReplicas`); empty = none
    replica_peers: list[str] = Field(default_factory=list)
    origin: OriginSection = OriginSection()
    writeback: WriteBackSection = WriteBackSection()
