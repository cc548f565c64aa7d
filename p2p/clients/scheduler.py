"""Daemon -> scheduler client: consistent hashing of task ids over the healthy schedulers.

Schedulers are checked with the gRPC health service in the background, so a daemon starts with none
reachable (it goes to the origin) and joins P2P as soon as one answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence

from grpc import aio
from grpc_health.v1 import health_pb2, health_pb2_grpc

from p2p.clients.hashring import HashRing
from p2p.clients.interceptor import error_from_rpc
from p2p.errors import SchedulerUnavailable
from p2p.proto import convert
from p2p.proto import scheduler_pb2 as pb
from p2p.proto import scheduler_pb2_grpc as pb_grpc
from p2p.proto.values import (
    HostInfo,
    PeerPacket,
    PeerResult,
    PieceReport,
    ProbeResult,
    RegisterResult,
    Registration,
    TaskStat,
    TopologyEdge,
)
from p2p.types import HostID, PeerID, TaskID

log = logging.getLogger(__name__)

SCHEDULER_SERVICE = "dfly.p2p.v1.Scheduler"
UNARY_TIMEOUT_S = 10.0
# gRPC backs off reconnecting up to 120 s by default; a scheduler that comes back must be seen soon.
CHANNEL_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class ReportStream:
    """One peer's ReportPieces stream: `send()` reports, `packets()` yields the scheduler's packets."""

    def __init__(self, call: aio.StreamStreamCall) -> None:
        self._call = call
        self._closed = False
        # gRPC allows one write in flight per call; several piece workers report at once.
        self._write_lock = asyncio.Lock()

    async def send(self, report: PieceReport) -> None:
        if self._closed:
            return
        try:
            async with self._write_lock:
                if self._closed:
                    return
                await self._call.write(convert.report_to_pb(report))
        except (aio.AioRpcError, asyncio.InvalidStateError) as exc:
            self._closed = True
            raise SchedulerUnavailable(f"report stream broke: {exc}") from exc

    async def packets(self) -> AsyncIterator[PeerPacket]:
        try:
            async for msg in self._call:
                yield convert.packet_from_pb(msg)
        except aio.AioRpcError as exc:
            if exc.code().name != "CANCELLED":
                raise SchedulerUnavailable(f"report stream broke: {exc.details()}") from exc

    async def close(self) -> None:
        if not self._closed:
            async with self._write_lock:
                self._closed = True
                with contextlib.suppress(aio.AioRpcError, asyncio.InvalidStateError):
                    await self._call.done_writing()

    def cancel(self) -> None:
        self._closed = True
        self._call.cancel()


class SchedulerClient:
    def __init__(self, addresses: Sequence[str], *, health_interval_s: float = 2.0) -> None:
        self.addresses = list(addresses)
        self._channels = {a: aio.insecure_channel(a, options=CHANNEL_OPTIONS) for a in self.addresses}
        self._healthy: set[str] = set()
        self._ring = HashRing([])
        self._health_interval_s = health_interval_s
        self._changed = asyncio.Event()

    @property
    def healthy(self) -> list[str]:
        return sorted(self._healthy)

    def pick(self, task_id: TaskID) -> str | None:
        return self._ring.pick(task_id)

    def _stub(self, address: str) -> pb_grpc.SchedulerStub:
        channel = self._channels.get(address)
        if channel is None:  # dropped from the list (manager discovery) since it was picked
            raise SchedulerUnavailable(f"scheduler {address} is no longer in the list")
        return pb_grpc.SchedulerStub(channel)

    def _stub_for(self, task_id: TaskID) -> tuple[str, pb_grpc.SchedulerStub]:
        address = self.pick(task_id)
        if address is None:
            raise SchedulerUnavailable("no scheduler is reachable")
        return address, self._stub(address)

    def mark_unhealthy(self, address: str) -> None:
        if address in self._healthy:
            self._healthy.discard(address)
            self._ring = HashRing(self._healthy)

    async def check_health(self) -> list[str]:
        """Ask every scheduler's health service once; returns the healthy ones."""

        async def one(address: str) -> bool:
            channel = self._channels.get(address)
            if channel is None:
                return False
            stub = health_pb2_grpc.HealthStub(channel)
            try:
                reply = await stub.Check(health_pb2.HealthCheckRequest(service=SCHEDULER_SERVICE), timeout=1.0)
            except (aio.AioRpcError, aio.UsageError):  # UsageError: its channel was closed meanwhile
                return False
            return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)

        addresses = list(self.addresses)  # the list may change (set_addresses) while we wait
        results = await asyncio.gather(*(one(a) for a in addresses))
        healthy = {a for a, ok in zip(addresses, results, strict=True) if ok} & set(self.addresses)
        if healthy != self._healthy:
            log.info("healthy schedulers: %s", sorted(healthy) or "none (back-to-source only)")
            self._healthy = healthy
            self._ring = HashRing(healthy)
            self._changed.set()
        return sorted(healthy)

    async def set_addresses(self, addresses: Sequence[str]) -> None:
        """Follow a new scheduler list (manager discovery): dial new ones, drop and close departed ones.

        A new address joins the ring at its first good health check; a departed one leaves at once.
        """
        wanted = list(dict.fromkeys(addresses))
        if wanted == self.addresses:
            return
        gone = [a for a in self.addresses if a not in wanted]
        for address in wanted:
            if address not in self._channels:
                self._channels[address] = aio.insecure_channel(address, options=CHANNEL_OPTIONS)
        self.addresses = wanted
        if self._healthy & set(gone):
            self._healthy -= set(gone)
            self._ring = HashRing(self._healthy)
            self._changed.set()
        log.info("scheduler list: %s", wanted or "empty")
        for address in gone:
            # Calls in flight on a departed scheduler fail and their downloads fall back as usual.
            await self._channels.pop(address).close(grace=1.0)

    async def wait_changed(self) -> None:
        """Until the set of healthy schedulers changes."""
        await self._changed.wait()
        self._changed.clear()

    async def watch_health(self) -> None:
        """Runs until cancelled."""
        while True:
            await self.check_health()
            await asyncio.sleep(self._health_interval_s)

    async def _unary(self, address: str, call: aio.UnaryUnaryMultiCallable, request: object) -> object:
        try:
            return await call(request, timeout=UNARY_TIMEOUT_S)
        except aio.AioRpcError as exc:
            if exc.code().name in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                self.mark_unhealthy(address)
            raise error_from_rpc(exc) from exc

    async def announce_host(self, host: HostInfo) -> None:
        """To every healthy scheduler: any of them may schedule this host's peers."""
        request = pb.AnnounceHostRequest(host=convert.host_to_pb(host))
        for address in list(self._healthy):
            with contextlib.suppress(Exception):
                await self._unary(address, self._stub(address).AnnounceHost, request)

    async def leave_host(self, host_id: HostID) -> None:
        request = pb.LeaveHostRequest(host_id=host_id)
        for address in list(self._healthy):
            with contextlib.suppress(Exception):
                await self._unary(address, self._stub(address).LeaveHost, request)

    async def register(self, reg: Registration) -> tuple[str, RegisterResult]:
        address, stub = self._stub_for(reg.task_id)
        reply = await self._unary(address, stub.RegisterPeer, convert.registration_to_pb(reg))
        assert isinstance(reply, pb.RegisterPeerResponse)
        return address, convert.register_result_from_pb(reply)

    def open_reports(self, address: str) -> ReportStream:
        return ReportStream(self._stub(address).ReportPieces())

    async def report_result(self, address: str, result: PeerResult) -> None:
        await self._unary(address, self._stub(address).ReportPeerResult, convert.result_to_pb(result))

    async def leave_peer(self, address: str, task_id: TaskID, peer_id: PeerID) -> None:
        request = pb.LeavePeerRequest(task_id=task_id, peer_id=peer_id)
        await self._unary(address, self._stub(address).LeavePeer, request)

    async def source_digests(self, address: str, task_id: TaskID) -> dict[int, str]:
        """Piece number -> digest as the task's origin reader reported it (those known so far)."""
        request = pb.SourceDigestsRequest(task_id=task_id)
        reply = await self._unary(address, self._stub(address).SourceDigests, request)
        assert isinstance(reply, pb.SourceDigestsResponse)
        return {p.number: p.digest for p in reply.pieces}

    async def stat_task(self, task_id: TaskID) -> TaskStat:
        address, stub = self._stub_for(task_id)
        reply = await self._unary(address, stub.StatTask, pb.StatTaskRequest(task_id=task_id))
        assert isinstance(reply, pb.TaskStat)
        return convert.task_stat_from_pb(reply)

    # ---- network topology: one scheduler per host (the ring picks it by host id) -------------------

    def _stub_for_host(self, host_id: HostID, address: str | None) -> tuple[str, pb_grpc.SchedulerStub]:
        if address is not None:
            return address, self._stub(address)
        return self._stub_for(TaskID(host_id))

    async def sync_probes(self, host: HostInfo, *, address: str | None = None) -> tuple[str, list[HostInfo]]:
        """The hosts to probe now, and the scheduler that chose them (report to the same one)."""
        address, stub = self._stub_for_host(host.id, address)
        reply = await self._unary(address, stub.SyncProbes, pb.SyncProbesRequest(host=convert.host_to_pb(host)))
        assert isinstance(reply, pb.SyncProbesResponse)
        return address, [convert.host_from_pb(h) for h in reply.hosts]

    async def report_probes(self, address: str, host_id: HostID, probes: list[ProbeResult]) -> None:
        await self._unary(address, self._stub(address).ReportProbes, convert.probes_to_pb(host_id, probes))

    async def stat_topology(self, address: str, host_id: HostID | None = None) -> list[TopologyEdge]:
        request = pb.StatTopologyRequest(host_id=host_id or "")
        reply = await self._unary(address, self._stub(address).StatTopology, request)
        assert isinstance(reply, pb.StatTopologyResponse)
        return [convert.edge_from_pb(e) for e in reply.edges]

    async def aclose(self) -> None:
        for channel in self._channels.values():
            await channel.close()
