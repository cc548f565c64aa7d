"""One daemon process's config: the sections each package owns, composed."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from dfstore.config import DfstoreConfig
from gateway.config import GatewayConfig
from p2p.common.config import Section
from p2p.daemon.config import DaemonConfig

ENV_PREFIX = "DFLY_NODE"


class NodeConfig(Section):
    """`dfly daemon --config FILE`. Environment overrides: DFLY_NODE__DFSTORE__PORT=9000 (`__` nests)."""

    home: str = Field(default="", description="working directory of this daemon; empty = ~/.dfly/<name>")
    port_fallback: bool = Field(default=False, description="bind a free port when a configured one is taken")
    daemon: DaemonConfig = DaemonConfig()
    dfstore: DfstoreConfig = DfstoreConfig()
    gateway: GatewayConfig = GatewayConfig()

    def home_path(self) -> Path:
        return Path(self.home).expanduser() if self.home else Path.home() / ".dfly" / self.daemon.name
