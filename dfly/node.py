"""The daemon process: piece store, task manager, origin backend, object service and the HTTP servers
(piece upload, dfstore API, S3 gateway), all on one event loop sharing one TaskManager."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from dfly.config import NodeConfig
from dfstore.core.backend import build_backend
from dfstore.core.replicate import HTTPReplicator
from dfstore.core.service import ObjectService
from dfstore.core.source import BackendSource
from dfstore.core.writeback import WriteBackQueue
from dfstore.http.app import RUNNER_KWARGS as DFSTORE_RUNNER_KWARGS
from dfstore.http.app import create_app as create_dfstore_app
from gateway.app import RUNNER_KWARGS as GATEWAY_RUNNER_KWARGS
from gateway.app import create_app as create_gateway_app
from p2p.daemon.httpsource import HTTPSource
from p2p.daemon.p2p import P2PNode
from p2p.daemon.store import PieceStore
from p2p.daemon.tasks import TaskManager
from p2p.daemon.upload import upload_app
from p2p.source import SourceRouter

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeEndpoints:
    """What a started daemon tells its parent (`--ready-file`) and cluster.json."""

    name: str
    pid: int
    seed: bool
    dfstore: str
    upload: str
    s3: str  # empty when the gateway is off


async def _start_site(
    stack: AsyncExitStack, app: web.Application, host: str, port: int, *, fallback: bool, **runner_kw: Any
) -> int:
    """Serve `app` on host:port; with `fallback`, a taken port means a free one instead. Returns the port."""
    runner = web.AppRunner(app, access_log=None, **runner_kw)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
    except OSError as exc:
        if not (fallback and exc.errno == errno.EADDRINUSE):
            raise
        log.info("port %s on %s is taken; using a free one", port, host)
        site = web.TCPSite(runner, host, 0)
        await site.start()
    server = site._server
    assert server is not None and isinstance(server, asyncio.base_events.Server)
    return int(server.sockets[0].getsockname()[1])


@contextlib.asynccontextmanager
async def start_node(config: NodeConfig) -> AsyncIterator[NodeEndpoints]:
    home = config.home_path()
    home.mkdir(parents=True, exist_ok=True)
    storage_dir = Path(config.daemon.storage.dir) if config.daemon.storage.dir else home / "storage"
    async with AsyncExitStack() as stack:
        store = PieceStore(
            storage_dir,
            quota_bytes=config.daemon.storage.quota_bytes,
            ttl_s=config.daemon.storage.ttl_s,
            gc_interval_s=config.daemon.storage.gc_interval_s,
            open_files=config.daemon.storage.open_files,
        )
        await store.start()
        stack.push_async_callback(store.close)

        backend = build_backend(config.dfstore.origin, home)
        stack.push_async_callback(backend.close)
        wb = config.dfstore.writeback
        writeback = WriteBackQueue(
            home / "writeback",
            backend,
            retry_initial_s=wb.retry_initial_s,
            retry_max_s=wb.retry_max_s,
            workers=wb.workers,
        )
        await writeback.start()
        stack.push_async_callback(writeback.close)
        http_source = HTTPSource()
        stack.push_async_callback(http_source.close)
        # The journal is a source too: an acknowledged write not yet on the origin is read from it.
        sources = SourceRouter(
            {"dfs": BackendSource(backend, writeback), "http": http_source, "https": http_source}
        )
        p2p_node = P2PNode(config.daemon, sources)
        stack.push_async_callback(p2p_node.aclose)  # closed after the TaskManager's downloads
        tasks = TaskManager(
            store,
            sources,
            source_concurrency=config.daemon.download.source_concurrency,
            whole_object_range_bytes=config.daemon.download.whole_object_range_bytes,
            downloader_factory=p2p_node.downloader_factory,
        )
        stack.push_async_callback(tasks.close)

        own_dfstore_url = ""  # set once the dfstore API is bound; replicas never go to ourselves
        replicator = HTTPReplicator(lambda: config.dfstore.replica_peers, own_url=lambda: own_dfstore_url)
        stack.push_async_callback(replicator.close)
        # Objects written through this daemon are offered to its scheduler as finished tasks.
        service = ObjectService(
            backend, tasks, spool_dir=home / "spool", writeback=writeback, replicator=replicator, offerer=p2p_node
        )
        stack.push_async_callback(service.close)

        host = config.daemon.upload.listen
        upload_port = await _start_site(
            stack,
            upload_app(store, slots=config.daemon.upload.slots, rate_limit_bps=config.daemon.upload.rate_limit_bps),
            host,
            config.daemon.upload.port,
            fallback=config.port_fallback,
        )
        await p2p_node.start(tasks, upload_port=upload_port)
        dfstore_url = ""
        if config.dfstore.enable:
            origin = config.dfstore.origin
            app = create_dfstore_app(
                service,
                default_filter=config.dfstore.filter,
                max_replicas=config.dfstore.max_replicas,
                region=origin.region,
                endpoint=origin.endpoint,
            )
            port = await _start_site(
                stack,
                app,
                config.dfstore.listen,
                config.dfstore.port,
                fallback=config.port_fallback,
                **DFSTORE_RUNNER_KWARGS,
            )
            dfstore_url = own_dfstore_url = f"http://{_url_host(config.dfstore.listen)}:{port}"
        s3_url = ""
        gw = config.gateway
        if gw.enable and not gw.access_key:
            # SigV4 is not optional: without credentials the gateway stays off rather than open.
            log.warning("S3 gateway disabled: set gateway.access_key and gateway.secret_key to enable it")
        elif gw.enable:
            staging = Path(gw.staging_dir) if gw.staging_dir else home / "multipart"
            port = await _start_site(
                stack,
                create_gateway_app(service, gw, staging_dir=staging),
                gw.listen,
                gw.port,
                fallback=config.port_fallback,
                **GATEWAY_RUNNER_KWARGS,
            )
            s3_url = f"http://{_url_host(gw.listen)}:{port}"
        yield NodeEndpoints(
            name=config.daemon.name,
            pid=os.getpid(),
            seed=config.daemon.seed,
            dfstore=dfstore_url,
            upload=f"http://{_url_host(host)}:{upload_port}",
            s3=s3_url,
        )


def _url_host(listen: str) -> str:
    if listen in ("0.0.0.0", ""):
        return "127.0.0.1"
    if listen == "::":
        return "[::1]"
    return f"[{listen}]" if ":" in listen else listen


def write_json_atomic(path: Path, data: object) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


async def run_node(config: NodeConfig, ready_file: Path | None = None) -> None:
    """Run until SIGINT/SIGTERM, then shut every server and background task down in order."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with start_node(config) as endpoints:
        log.info("daemon %s serving: dfstore %s, upload %s", endpoints.name, endpoints.dfstore, endpoints.upload)
        if ready_file is not None:
            write_json_atomic(ready_file, asdict(endpoints))
        await stop.wait()
        log.info("daemon %s stopping", endpoints.name)
