"""A real S3 gateway for client tests: `dfly up` itself (`up_gateway`: manager, scheduler, seed peer and
peer, directory origin, the keys it generated), or one `dfly daemon` process (`running_gateway`: directory
or S3 origin, piece cache, task manager, object service) whose gateway listens on 127.0.0.1:<free>."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.cluster import S3_ACCESS_KEY, S3_SECRET_KEY, dfly_up, fs_origin, running_daemon, s3_client

REGION = "us-east-1"


@dataclass(frozen=True)
class Gateway:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    origin: Path
    dfstore: str = ""  # the same daemon's dfstore API

    def client(self, **config: Any) -> Any:
        """boto3 with this gateway's keys; `config`: botocore Config options."""
        return s3_client(self.endpoint, access_key=self.access_key, secret_key=self.secret_key, region=self.region,
                         **config)

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


@contextmanager
def up_gateway(workdir: Path) -> Iterator[Gateway]:
    """`dfly up --origin DIR` as a user runs it; the S3 endpoint and keys come from its cluster.json."""
    origin = workdir / "origin"
    with dfly_up(workdir / "home", str(origin)) as cluster:
        s3 = cluster["s3"]
        yield Gateway(s3["endpoint"], s3["access_key"], s3["secret_key"], s3["region"], origin,
                      str(cluster["dfstore"]))
