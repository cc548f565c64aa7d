"""A real S3 gateway for client tests: a `dfly daemon` process (directory origin, piece cache, task
manager, object service) whose gateway listens on 127.0.0.1:<free>, as `dfly up` runs it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster import S3_ACCESS_KEY, S3_SECRET_KEY, fs_origin, running_daemon

REGION = "us-east-1"


@dataclass(frozen=True)
class Gateway:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    origin: Path
    dfstore: str = ""  # the same daemon's dfstore API

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])


@contextmanager
def running_gateway(workdir: Path, *, domain: str = "", origin: dict[str, Any] | None = None) -> Iterator[Gateway]:
    """One daemon serving the gateway until the block ends (SIGTERM, then SIGKILL)."""
    origin = origin or fs_origin(workdir)
    extra = {"gateway": {"domain": domain, "region": REGION}}
    with running_daemon(workdir, origin, extra=extra) as child:
        endpoint = child.ready["s3"]
        assert endpoint, f"the daemon serves no S3 gateway:\n{child.log_tail()}"
        yield Gateway(endpoint, S3_ACCESS_KEY, S3_SECRET_KEY, REGION, Path(origin.get("path", "")),
                      str(child.ready["dfstore"]))
