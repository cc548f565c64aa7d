"""A stand-alone S3 gateway over a local object service (piece cache + directory origin), without
the rest of the daemon. `dfly daemon` is the normal way to run the gateway; this entry point serves
benchmarks and debugging.

    python -m gateway --home DIR [--origin DIR] [--config gateway.yaml] [--ready-file F]

Config: GatewayConfig from the YAML file and DFLY_GATEWAY__* variables (DFLY_GATEWAY__PORT=0,
DFLY_GATEWAY__ACCESS_KEY=..., DFLY_GATEWAY__SECRET_KEY=...). The ready file receives
{"endpoint", "pid"} once the port is bound.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
from contextlib import AsyncExitStack
from pathlib import Path

from aiohttp import web

from dfstore.core.fs import FilesystemBackend
from dfstore.core.service import ObjectService
from dfstore.core.source import BackendSource
from dfstore.core.writeback import WriteBackQueue
from gateway.app import RUNNER_KWARGS, create_app
from gateway.config import GatewayConfig
from p2p.common.config import load_config
from p2p.daemon.store import PieceStore
from p2p.daemon.tasks import TaskManager
from p2p.source import SourceRouter

log = logging.getLogger("gateway")


async def serve(config: GatewayConfig, home: Path, origin: Path, ready_file: Path | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with AsyncExitStack() as stack:
        store = PieceStore(home / "storage", quota_bytes=0, ttl_s=0, gc_interval_s=60)
        await store.start()
        stack.push_async_callback(store.close)
        backend = FilesystemBackend(origin)
        stack.push_async_callback(backend.close)
        tasks = TaskManager(store, SourceRouter({"dfs": BackendSource(backend)}))
        stack.push_async_callback(tasks.close)
        writeback = WriteBackQueue(home / "writeback", backend, retry_initial_s=0.5, retry_max_s=30, workers=2)
        await writeback.start()
        stack.push_async_callback(writeback.close)
        service = ObjectService(backend, tasks, spool_dir=home / "spool", writeback=writeback)
        stack.push_async_callback(service.close)
        staging = Path(config.staging_dir) if config.staging_dir else home / "multipart"
        runner = web.AppRunner(create_app(service, config, staging_dir=staging), access_log=None, **RUNNER_KWARGS)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        site = web.TCPSite(runner, config.listen, config.port)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.base_events.Server)
        port = server.sockets[0].getsockname()[1]
        endpoint = f"http://{config.listen}:{port}"
        log.info("S3 gateway on %s (origin %s)", endpoint, origin)
        if ready_file is not None:
            tmp = ready_file.with_name(ready_file.name + ".tmp")
            tmp.write_text(json.dumps({"endpoint": endpoint, "pid": os.getpid()}))
            os.replace(tmp, ready_file)
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m gateway", description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", required=True, type=Path)
    parser.add_argument("--origin", type=Path, default=None, help="directory origin [default: <home>/origin]")
    parser.add_argument("--config", type=Path, default=None)
    parser.add_argument("--ready-file", type=Path, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(GatewayConfig, args.config, env_prefix="DFLY_GATEWAY")
    origin = args.origin or args.home / "origin"
    origin.mkdir(parents=True, exist_ok=True)
    asyncio.run(serve(config, args.home, origin, args.ready_file))


if __name__ == "__main__":
    main()
