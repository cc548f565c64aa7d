"""A real S3 gateway for client tests: the daemon's object service (filesystem origin, piece store,
task manager, write-back queue) and `gateway.app.create_app`, served by aiohttp on 127.0.0.1:<free>
from a background thread, so synchronous clients (boto3, minio, subprocess CLIs) can drive it."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from pydantic import SecretStr

from dfstore.core.fs import FilesystemBackend
from dfstore.core.service import ObjectService
from dfstore.core.source import BackendSource
from dfstore.core.writeback import WriteBackQueue
from gateway.app import RUNNER_KWARGS, create_app
from gateway.config import GatewayConfig
from p2p.daemon.store import PieceStore
from p2p.daemon.tasks import TaskManager
from p2p.source import SourceRouter

REGION = "us-east-1"


@dataclass(frozen=True)
class Gateway:
    endpoint: str
    access_key: str
    secret_key: str
    region: str
    origin: Path
    staging: Path

    @property
    def port(self) -> int:
        return int(self.endpoint.rsplit(":", 1)[1])


async def _serve(workdir: Path, config: GatewayConfig, stack: AsyncExitStack) -> int:
    store = PieceStore(workdir / "storage", quota_bytes=0, ttl_s=0, gc_interval_s=60)
    await store.start()
    stack.push_async_callback(store.close)
    backend = FilesystemBackend(workdir / "origin")
    stack.push_async_callback(backend.close)
    tasks = TaskManager(store, SourceRouter({"dfs": BackendSource(backend)}))
    stack.push_async_callback(tasks.close)
    writeback = WriteBackQueue(workdir / "writeback", backend, retry_initial_s=0.5, retry_max_s=5, workers=2)
    await writeback.start()
    stack.push_async_callback(writeback.close)
    service = ObjectService(backend, tasks, spool_dir=workdir / "spool", writeback=writeback)
    stack.push_async_callback(service.close)
    app = create_app(service, config, staging_dir=workdir / "multipart")
    runner = web.AppRunner(app, **RUNNER_KWARGS)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    server = site._server
    assert isinstance(server, asyncio.base_events.Server)
    return int(server.sockets[0].getsockname()[1])


@contextmanager
def running_gateway(workdir: Path, *, auth: bool = True, domain: str = "") -> Iterator[Gateway]:
    """Serve a gateway until the block ends; the loop and every resource close on exit."""
    access_key = "DFLY" + secrets.token_hex(8).upper() if auth else ""
    secret_key = secrets.token_urlsafe(30) if auth else ""
    config = GatewayConfig(
        port=0, region=REGION, domain=domain, access_key=access_key,
        secret_key=SecretStr(secret_key) if auth else None,
    )
    (workdir / "origin").mkdir(parents=True, exist_ok=True)
    loop = asyncio.new_event_loop()
    started: asyncio.Future[int] = loop.create_future()
    stop = asyncio.Event()

    async def main() -> None:
        async with AsyncExitStack() as stack:
            try:
                port = await _serve(workdir, config, stack)
            except BaseException as exc:
                started.set_exception(exc)
                raise
            started.set_result(port)
            await stop.wait()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(main())
        except BaseException:  # reported through `started`
            pass
        finally:
            leftovers = asyncio.all_tasks(loop)  # connection handlers the runner left behind
            for task in leftovers:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
            loop.close()

    thread = threading.Thread(target=run, name="gateway", daemon=True)
    thread.start()
    port = asyncio.run_coroutine_threadsafe(asyncio.wait_for(asyncio.shield(started), 20), loop).result(30)
    try:
        yield Gateway(
            f"http://127.0.0.1:{port}", access_key, secret_key, REGION, workdir / "origin", workdir / "multipart"
        )
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(30)
