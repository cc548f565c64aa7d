"""The S3 gateway's config section (composed into the node config by the daemon)."""

from __future__ import annotations

from pydantic import Field, SecretStr, model_validator

from p2p.common.config import Section


class GatewayConfig(Section):
    """The S3 REST listener. With an empty `access_key` the gateway accepts unsigned requests."""

    enable: bool = True
    listen: str = "127.0.0.1"
    port: int = Field(default=65005, ge=0, le=65535)
    region: str = "us-east-1"
    domain: str = ""  # virtual-host style: <bucket>.<domain>; empty = path style only
    access_key: str = ""
    secret_key: SecretStr | None = None
    staging_dir: str = ""  # multipart parts; empty = <node dir>/multipart
    max_clock_skew_s: float = Field(default=15 * 60, gt=0)
    multipart_ttl_s: float = Field(default=7 * 24 * 3600, ge=0, description="drop unfinished uploads; 0 = keep")

    @model_validator(mode="after")
    def _check(self) -> GatewayConfig:
        if self.access_key and not (self.secret_key and self.secret_key.get_secret_value()):
            raise ValueError("gateway.secret_key is required when gateway.access_key is set")
        return self

    def secret(self) -> str:
        return self.secret_key.get_secret_value() if self.secret_key else ""
