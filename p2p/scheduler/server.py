"""The scheduler's gRPC servicer: convert, call SchedulerService, convert back. Plus the health service."""
# ruff: noqa: N802  (servicer method names are fixed by the generated base class)

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from p2p.clients.interceptor import ExceptionToStatusInterceptor
from p2p.errors import FeatureDisabled
from p2p.proto import convert
from p2p.proto import scheduler_pb2 as pb
from p2p.proto import scheduler_pb2_grpc as pb_grpc
from p2p.proto.values import Code, PeerPacket, ReportKind
from p2p.scheduler.preheat import Preheater
from p2p.scheduler.service import SchedulerService
from p2p.scheduler.state import Peer
from p2p.types import HostID, PeerID, TaskID

log = logging.getLogger(__name__)

SERVICE_NAME = "dfly.p2p.v1.Scheduler"
OUTBOX_LIMIT = 64  # packets queued for one peer; more means the peer stopped reading


class SchedulerServicer(pb_grpc.SchedulerServicer):
    def __init__(self, service: SchedulerService, preheater: Preheater | None = None) -> None:
        self.service = service
        self.preheater = preheater

    async def AnnounceHost(self, request: pb.AnnounceHostRequest, context: aio.ServicerContext) -> pb.Empty:
        self.service.announce_host(convert.host_from_pb(request.host))
        return pb.Empty()

    async def LeaveHost(self, request: pb.LeaveHostRequest, context: aio.ServicerContext) -> pb.Empty:
        self.service.leave_host(HostID(request.host_id))
        return pb.Empty()

    async def RegisterPeer(
        self, request: pb.RegisterPeerRequest, context: aio.ServicerContext
    ) -> pb.RegisterPeerResponse:
        reg = convert.registration_from_pb(request)
        return convert.register_result_to_pb(reg.task_id, self.service.register_peer(reg))

    async def ReportPieces(
        self, request_iterator: AsyncIterator[pb.PieceResult], context: aio.ServicerContext
    ) -> AsyncIterator[pb.PeerPacket]:
        # Unbounded so the end marker always fits; `send` itself refuses to grow it past OUTBOX_LIMIT.
        outbox: asyncio.Queue[PeerPacket | None] = asyncio.Queue()

        def send(packet: PeerPacket) -> None:
            if outbox.qsize() >= OUTBOX_LIMIT:
                log.warning("peer %s is not reading its packets; dropping one", packet.peer_id)
                return
            outbox.put_nowait(packet)

        async def read() -> None:
            peer: Peer | None = None
            try:
                async for msg in request_iterator:
                    report = convert.report_from_pb(msg)
                    if peer is None or report.kind is ReportKind.BEGIN:
                        peer = self.service.attach(report.peer_id, send)
                    try:
                        code = self.service.handle_report(report)
                    except Exception:  # one bad report must not end the peer's stream
                        log.exception("report %s of peer %s failed", report.kind.name, report.peer_id)
                        continue
                    if code is Code.REREGISTER:
                        send(PeerPacket(task_id=report.task_id, peer_id=report.peer_id, code=code))
                    if report.kind is ReportKind.END:
                        break
            finally:
                if peer is not None:
                    self.service.detach(peer, send)
                outbox.put_nowait(None)

        reader = asyncio.get_running_loop().create_task(read())
        try:
            while (packet := await outbox.get()) is not None:
                yield convert.packet_to_pb(packet)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def ReportPeerResult(self, request: pb.PeerResult, context: aio.ServicerContext) -> pb.Empty:
        await self.service.report_peer_result(convert.result_from_pb(request))
        return pb.Empty()

    async def LeavePeer(self, request: pb.LeavePeerRequest, context: aio.ServicerContext) -> pb.Empty:
        self.service.leave_peer(TaskID(request.task_id), PeerID(request.peer_id))
        return pb.Empty()

    async def SourceDigests(
        self, request: pb.SourceDigestsRequest, context: aio.ServicerContext
    ) -> pb.SourceDigestsResponse:
        pieces = self.service.source_digests(TaskID(request.task_id))
        return pb.SourceDigestsResponse(pieces=[convert.piece_to_pb(p) for p in pieces])

    async def StatTask(self, request: pb.StatTaskRequest, context: aio.ServicerContext) -> pb.TaskStat:
        return convert.task_stat_to_pb(self.service.stat_task(TaskID(request.task_id)))

    async def Preheat(self, request: pb.PreheatRequest, context: aio.ServicerContext) -> pb.PreheatResponse:
        if self.preheater is None:
            raise FeatureDisabled("this scheduler has no preheat")
        return convert.preheat_result_to_pb(await self.preheater.preheat(convert.preheat_from_pb(request)))

    async def _need_topology(self, context: aio.ServicerContext) -> None:
        if self.service.topology is None:  # as Dragonfly: the feature is off, so is the RPC
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "network topology is disabled on this scheduler")

    async def SyncProbes(self, request: pb.SyncProbesRequest, context: aio.ServicerContext) -> pb.SyncProbesResponse:
        await self._need_topology(context)
        hosts = await self.service.sync_probes(convert.host_from_pb(request.host))
        return pb.SyncProbesResponse(hosts=[convert.host_to_pb(h) for h in hosts])

    async def ReportProbes(self, request: pb.ReportProbesRequest, context: aio.ServicerContext) -> pb.Empty:
        await self._need_topology(context)
        await self.service.report_probes(*convert.probes_from_pb(request))
        return pb.Empty()

    async def StatTopology(
        self, request: pb.StatTopologyRequest, context: aio.ServicerContext
    ) -> pb.StatTopologyResponse:
        await self._need_topology(context)
        edges = await self.service.topology_edges(HostID(request.host_id) if request.host_id else None)
        return pb.StatTopologyResponse(edges=[convert.edge_to_pb(e) for e in edges])


@dataclass
class RunningServer:
    server: aio.Server
    port: int
    health: health.aio.HealthServicer


async def start_server(
    service: SchedulerService, listen: str, port: int, *, preheater: Preheater | None = None
) -> RunningServer:
    server = aio.server(interceptors=[ExceptionToStatusInterceptor()])
    pb_grpc.add_SchedulerServicer_to_server(SchedulerServicer(service, preheater), server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    bound = server.add_insecure_port(f"{listen}:{port}")
    if bound == 0:
        raise OSError(f"cannot bind the scheduler to {listen}:{port}")
    await server.start()
    for name in ("", SERVICE_NAME):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    return RunningServer(server=server, port=bound, health=health_servicer)


async def stop_server(running: RunningServer, grace_s: float = 2.0) -> None:
    await running.health.enter_graceful_shutdown()
    await running.server.stop(grace_s)
