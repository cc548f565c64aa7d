"""The manager's gRPC service for components (`p2p/proto/manager.proto`): schedulers and seed peers
register and keep alive, schedulers take their preheat runs and report results, daemons list their
schedulers. Each call converts the message to the same request body the REST layer binds
(`schemas.*`) and calls the same service method, in a worker thread, so every rule lives in one place.

Auth: with `auth.component_token` set, every call needs metadata `authorization: Bearer <token>`;
missing or wrong -> UNAUTHENTICATED (the token is never logged). Errors: ManagerError -> its status
(`STATUS`), a body that does not validate -> INVALID_ARGUMENT, anything else -> INTERNAL (logged).
"""
# ruff: noqa: N802  (servicer method names are fixed by the generated base class)

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import grpc
from grpc import aio
from pydantic import ValidationError

from p2p.manager import errors
from p2p.manager import schemas as s
from p2p.manager.routes import Services
from p2p.proto import manager_pb2 as mpb
from p2p.proto import manager_pb2_grpc as mpb_grpc

log = logging.getLogger(__name__)

T = TypeVar("T")

STATUS: dict[type[errors.ManagerError], grpc.StatusCode] = {
    errors.Invalid: grpc.StatusCode.INVALID_ARGUMENT,
    errors.Unauthorized: grpc.StatusCode.UNAUTHENTICATED,
    errors.Forbidden: grpc.StatusCode.PERMISSION_DENIED,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.Conflict: grpc.StatusCode.ALREADY_EXISTS,
}


def scheduler_pb(row: dict[str, Any]) -> mpb.Scheduler:
    return mpb.Scheduler(
        id=row["id"], hostname=row["host_name"], idc=row["idc"], location=row["location"], ip=row["ip"],
        port=row["port"], state=row["state"], scheduler_cluster_id=row["scheduler_cluster_id"],
        features=row["features"], cluster_score=row.get("cluster_score", 0.0),
    )


def seed_peer_pb(row: dict[str, Any]) -> mpb.SeedPeer:
    return mpb.SeedPeer(
        id=row["id"], hostname=row["host_name"], type=row["type"], idc=row["idc"], location=row["location"],
        ip=row["ip"], port=row["port"], download_port=row["download_port"],
        object_storage_port=row["object_storage_port"], state=row["state"],
        seed_peer_cluster_id=row["seed_peer_cluster_id"],
    )


def preheat_job_pb(job: dict[str, Any]) -> mpb.PreheatJob:
    args = job["args"]
    return mpb.PreheatJob(
        id=job["id"], type=job["type"], scheduler_cluster_id=job["scheduler_cluster_id"], url=args["url"],
        tag=args.get("tag", ""), filter=args.get("filter", ""), headers=args.get("headers") or {},
        range=args.get("range", ""),
    )


def _snapshot_body(m: mpb.KeepAliveRequest) -> s.KeepAlive:
    if not m.HasField("snapshot"):
        return s.KeepAlive()
    snap = m.snapshot
    return s.KeepAlive(
        tasks=[s.TaskSummary(id=t.id, url=t.url, state=t.state, content_length=t.content_length,
                             peer_count=t.peer_count) for t in snap.tasks],
        peers=[s.PeerSummary(id=p.id, task_id=p.task_id, host_name=p.host_name, ip=p.ip, state=p.state)
               for p in snap.peers],
        topology=[s.EdgeSummary(
            src_host_id=e.src_host_id, src_host_name=e.src_host_name, src_address=e.src_address,
            dest_host_id=e.dest_host_id, dest_host_name=e.dest_host_name, dest_address=e.dest_address,
            average_rtt_ns=e.average_rtt_ns, probe_count=e.probe_count, updated_at_ns=e.updated_at_ns,
        ) for e in snap.topology],
    )


class ManagerServicer(mpb_grpc.ManagerServicer):
    def __init__(self, services: Services, component_token: str | None) -> None:
        self.svc = services
        self._token = f"Bearer {component_token}".encode() if component_token else None

    async def _authorize(self, context: aio.ServicerContext) -> None:
        if self._token is None:
            return
        given = dict(context.invocation_metadata() or ()).get("authorization", "")
        if not isinstance(given, str) or not hmac.compare_digest(given.encode(), self._token):
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "component token missing or wrong")

    async def _call(self, context: aio.ServicerContext, fn: Callable[..., T], *args: Any) -> T:
        """Run one service method in a worker thread; its errors become the call's status."""
        try:
            return await asyncio.to_thread(fn, *args)
        except errors.ManagerError as exc:
            await _abort(context, exc)

    async def _bind(self, context: aio.ServicerContext, model: Callable[..., T], **fields: Any) -> T:
        try:
            return model(**fields)
        except ValidationError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, _validation_message(exc))
            raise  # not reached: abort raises

    async def UpdateScheduler(self, request: mpb.UpdateSchedulerRequest, context: aio.ServicerContext) -> mpb.Scheduler:
        await self._authorize(context)
        body = await self._bind(
            context, s.SchedulerRegister, host_name=request.hostname, ip=request.ip, port=request.port,
            idc=request.idc, location=request.location, scheduler_cluster_id=request.scheduler_cluster_id or 1,
            features=list(request.features.names) if request.HasField("features") else None,
        )
        return scheduler_pb(await self._call(context, self.svc.clusters.register_scheduler, body))

    async def UpdateSeedPeer(self, request: mpb.UpdateSeedPeerRequest, context: aio.ServicerContext) -> mpb.SeedPeer:
        await self._authorize(context)
        body = await self._bind(
            context, s.SeedPeerRegister, host_name=request.hostname, ip=request.ip, port=request.port,
            idc=request.idc, location=request.location, type=request.type or "super",
            download_port=request.download_port, object_storage_port=request.object_storage_port,
            seed_peer_cluster_id=request.seed_peer_cluster_id or 1,
        )
        return seed_peer_pb(await self._call(context, self.svc.clusters.register_seed_peer, body))

    async def ListSchedulers(
        self, request: mpb.ListSchedulersRequest, context: aio.ServicerContext
    ) -> mpb.ListSchedulersResponse:
        await self._authorize(context)
        info = request.host_info
        rows = await self._call(context, self.svc.clusters.discover_schedulers, request.ip, info.get("idc", ""),
                                info.get("location", ""))
        return mpb.ListSchedulersResponse(schedulers=[scheduler_pb(r) for r in rows])

    async def KeepAlive(
        self, request_iterator: AsyncIterator[mpb.KeepAliveRequest], context: aio.ServicerContext
    ) -> AsyncIterator[mpb.KeepAliveResponse]:
        async for request in request_iterator:
            # Checked per message, after reading it: refused before its first message, the stream ends
            # while the client is still writing, and the client sees INTERNAL instead of UNAUTHENTICATED.
            await self._authorize(context)
            if request.source_type == mpb.SCHEDULER_SOURCE:
                body = await self._bind(context, _snapshot_body, m=request)
                row = await self._call(context, self.svc.clusters.keepalive_scheduler, request.id, body)
                jobs = await self._call(context, self.svc.jobs.claim, request.id)
                yield mpb.KeepAliveResponse(scheduler=scheduler_pb(row), jobs=[preheat_job_pb(j) for j in jobs])
            elif request.source_type == mpb.SEED_PEER_SOURCE:
                row = await self._call(context, self.svc.clusters.keepalive_seed_peer, request.id)
                yield mpb.KeepAliveResponse(seed_peer=seed_peer_pb(row))
            else:
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "only schedulers and seed peers keep alive")

    async def ReportJobResult(
        self, request: mpb.ReportJobResultRequest, context: aio.ServicerContext
    ) -> mpb.ReportJobResultResponse:
        await self._authorize(context)
        body = await self._bind(context, s.JobResult, scheduler_id=request.scheduler_id, state=request.state,
                                message=request.message)
        job = await self._call(context, self.svc.jobs.report, request.job_id, body)
        return mpb.ReportJobResultResponse(state=job["state"])


async def _abort(context: aio.ServicerContext, exc: errors.ManagerError) -> NoReturn:
    code = next((c for cls, c in STATUS.items() if isinstance(exc, cls)), None)
    if code is None:
        log.error("manager error in a component call: %s", exc.message)
        code = grpc.StatusCode.INTERNAL
    await context.abort(code, exc.message)
    raise AssertionError("abort returned")  # not reached


def _validation_message(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())[:1024]


@dataclass
class RunningGrpc:
    server: aio.Server
    port: int


async def start_grpc(
    services: Services, listen: str, port: int, *, component_token: str | None,
    tls: tuple[bytes, bytes] | None = None,
) -> RunningGrpc:
    """Serve the component API on listen:port (0 = any free port); `tls` = (cert chain PEM, key PEM)."""
    server = aio.server()
    mpb_grpc.add_ManagerServicer_to_server(ManagerServicer(services, component_token), server)
    address = f"{listen}:{port}"
    if tls is not None:
        creds = grpc.ssl_server_credentials([(tls[1], tls[0])])
        bound = server.add_secure_port(address, creds)
    else:
        bound = server.add_insecure_port(address)
    if not bound:
        raise OSError(f"cannot bind the manager's gRPC service to {address}")
    await server.start()
    return RunningGrpc(server, bound)
