"""Async gRPC client for the manager's component API (`p2p/proto/manager.proto`), used by schedulers,
seed peers and daemons.

    async with ManagerClient("127.0.0.1:65003", token=component_token) as m:
        me = await m.register_scheduler(host_name="s1", ip="10.0.0.1", port=8002, scheduler_cluster_id=1)
        reply = await m.keepalive_scheduler(me.id)      # features + preheat runs handed to it
        await m.report_job(run.job_id, scheduler_id=me.id, state="SUCCESS")

Keepalives go over one long-lived `KeepAlive` stream per scheduler or seed peer (opened again after
an error); each call writes one request and reads its answer. A scheduler enforces its own features
from `KeepAliveReply.features` (refuse preheat without `preheat`); `SchedulerDirectory` keeps a
daemon's last good scheduler list while the manager is down.
Errors: `ManagerUnavailable` (unreachable, timeout, INTERNAL/UNAVAILABLE) and `ManagerRequestError`
(the manager refused the call; `status` is the REST equivalent: 401 UNAUTHENTICATED, 403
PERMISSION_DENIED, 404 NOT_FOUND, 409 ALREADY_EXISTS/FAILED_PRECONDITION, 422 INVALID_ARGUMENT).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc
from grpc import aio

from p2p.errors import P2PError
from p2p.proto import manager_pb2 as mpb
from p2p.proto import manager_pb2_grpc as mpb_grpc


class ManagerUnavailable(P2PError):  # noqa: N818 - named like p2p.errors.SchedulerUnavailable
    """The manager could not be reached or answered 5xx."""


class ManagerRequestError(P2PError):
    def __init__(self, status: int, message: str, code: grpc.StatusCode | None = None) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.code = code


SNAPSHOT_LIMIT = 1000  # the manager keeps at most this many tasks, peers and edges per keepalive

_REQUEST_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 422,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.OUT_OF_RANGE: 422,
    grpc.StatusCode.UNIMPLEMENTED: 501,
}


def _error(code: grpc.StatusCode, details: str, target: str) -> P2PError:
    status = _REQUEST_STATUS.get(code)
    if status is None:
        return ManagerUnavailable(f"manager {target} unavailable: {code.name} {details}")
    return ManagerRequestError(status, details or code.name, code)


@dataclass(frozen=True)
class SchedulerRecord:
    id: int
    host_name: str
    ip: str
    port: int
    scheduler_cluster_id: int
    state: str
    features: frozenset[str]

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.port}"

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SchedulerRecord:
        return cls(
            d["id"],
            d["host_name"],
            d["ip"],
            int(d["port"]),
            int(d["scheduler_cluster_id"]),
            d["state"],
            frozenset(d.get("features") or ()),
        )

    @classmethod
    def from_pb(cls, m: mpb.Scheduler) -> SchedulerRecord:
        return cls(m.id, m.hostname, m.ip, m.port, m.scheduler_cluster_id, m.state, frozenset(m.features))


@dataclass(frozen=True)
class SeedPeerRecord:
    id: int
    host_name: str
    ip: str
    port: int
    download_port: int
    seed_peer_cluster_id: int
    state: str

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> SeedPeerRecord:
        return cls(
            d["id"],
            d["host_name"],
            d["ip"],
            int(d["port"]),
            int(d.get("download_port") or 0),
            int(d["seed_peer_cluster_id"]),
            d["state"],
        )

    @classmethod
    def from_pb(cls, m: mpb.SeedPeer) -> SeedPeerRecord:
        return cls(m.id, m.hostname, m.ip, m.port, m.download_port, m.seed_peer_cluster_id, m.state)


@dataclass(frozen=True)
class PreheatRun:
    """One preheat the manager handed to this scheduler. Report it with `report_job(job_id, ...)`."""

    job_id: int
    scheduler_cluster_id: int
    url: str
    tag: str = ""
    filter: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    range: str = ""


@dataclass(frozen=True)
class KeepAliveReply:
    scheduler: SchedulerRecord
    jobs: tuple[PreheatRun, ...]

    @property
    def features(self) -> frozenset[str]:
        return self.scheduler.features


class ManagerClient:
    """`target` is the manager's gRPC address, `host:port`. TLS is on when `root_certificates` (PEM of
    the CAs to trust) is given, when `tls` is set, or when the target says `https://` or `grpcs://`
    (then gRPC's bundled roots are trusted)."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        timeout_s: float = 10.0,
        root_certificates: bytes | None = None,
        tls: bool = False,
    ) -> None:
        scheme, _, rest = target.rpartition("://")
        self.target = rest.rstrip("/")
        self._tls = tls or root_certificates is not None or scheme in ("https", "grpcs")
        self._metadata = (("authorization", f"Bearer {token}"),) if token else ()
        self._timeout_s = timeout_s
        self._root_certificates = root_certificates
        self._channel: aio.Channel | None = None
        self._stub: mpb_grpc.ManagerStub | None = None
        # One KeepAlive stream per (source, id), and a lock so requests and answers stay paired.
        self._streams: dict[tuple[int, int], aio.StreamStreamCall] = {}
        self._stream_locks: dict[tuple[int, int], asyncio.Lock] = {}

    @classmethod
    def connect(cls, target: str, *, token: str | None, ca_file: str = "", timeout_s: float = 10.0) -> ManagerClient:
        """A client as a component's config describes it: `ca_file` (PEM) set means TLS trusting it."""
        roots = Path(ca_file).read_bytes() if ca_file else None
        return cls(target, token=token, timeout_s=timeout_s, root_certificates=roots)

    async def __aenter__(self) -> ManagerClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for call in self._streams.values():
            call.cancel()
        self._streams.clear()
        if self._channel is not None:
            await self._channel.close()
            self._channel, self._stub = None, None

    def _manager(self) -> mpb_grpc.ManagerStub:
        if self._stub is None:
            if self._tls:
                creds = grpc.ssl_channel_credentials(root_certificates=self._root_certificates)
                self._channel = aio.secure_channel(self.target, creds)
            else:
                self._channel = aio.insecure_channel(self.target)
            self._stub = mpb_grpc.ManagerStub(self._channel)
        return self._stub

    async def _unary(self, method: str, request: Any) -> Any:
        rpc = getattr(self._manager(), method)
        try:
            return await rpc(request, timeout=self._timeout_s, metadata=self._metadata)
        except aio.AioRpcError as exc:
            raise _error(exc.code(), exc.details() or "", self.target) from exc

    async def _keepalive(self, key: tuple[int, int], request: mpb.KeepAliveRequest) -> mpb.KeepAliveResponse:
        lock = self._stream_locks.setdefault(key, asyncio.Lock())
        async with lock:
            call = self._streams.get(key)
            if call is None or call.done():
                call = self._streams[key] = self._manager().KeepAlive(metadata=self._metadata)
            try:
                async with asyncio.timeout(self._timeout_s):
                    await call.write(request)
                    answer = await call.read()
            except aio.AioRpcError as exc:
                self._drop(key)
                raise _error(exc.code(), exc.details() or "", self.target) from exc
            except (TimeoutError, asyncio.InvalidStateError) as exc:
                self._drop(key)
                code = await call.code() if call.done() else grpc.StatusCode.DEADLINE_EXCEEDED
                details = (await call.details() if call.done() else "") or repr(exc)
                raise _error(code, details, self.target) from exc
            if answer is aio.EOF:
                self._drop(key)
                raise _error(await call.code(), await call.details() or "stream ended", self.target)
            assert isinstance(answer, mpb.KeepAliveResponse)
            return answer

    def _drop(self, key: tuple[int, int]) -> None:
        call = self._streams.pop(key, None)
        if call is not None:
            call.cancel()

    # --- schedulers ---------------------------------------------------------------------------

    async def register_scheduler(
        self,
        *,
        host_name: str,
        ip: str,
        port: int,
        scheduler_cluster_id: int = 1,
        idc: str = "",
        location: str = "",
        features: list[str] | None = None,
    ) -> SchedulerRecord:
        """UpdateScheduler. `ip`/`port` are the advertised address peers dial, which may differ from the
        listen one. `features` None keeps what the manager has."""
        request = mpb.UpdateSchedulerRequest(
            source_type=mpb.SCHEDULER_SOURCE, hostname=host_name, ip=ip, port=port, idc=idc, location=location,
            scheduler_cluster_id=scheduler_cluster_id,
        )
        if features is not None:
            request.features.names.extend(features)
        return SchedulerRecord.from_pb(await self._unary("UpdateScheduler", request))

    async def keepalive_scheduler(
        self,
        scheduler_id: int,
        *,
        tasks: list[dict[str, Any]] | None = None,
        peers: list[dict[str, Any]] | None = None,
        topology: list[dict[str, Any]] | None = None,
    ) -> KeepAliveReply:
        request = mpb.KeepAliveRequest(source_type=mpb.SCHEDULER_SOURCE, id=scheduler_id)
        if tasks is not None or peers is not None or topology is not None:
            request.snapshot.SetInParent()
            request.snapshot.tasks.extend(mpb.TaskSummary(**t) for t in (tasks or [])[:SNAPSHOT_LIMIT])
            request.snapshot.peers.extend(mpb.PeerSummary(**p) for p in (peers or [])[:SNAPSHOT_LIMIT])
            request.snapshot.topology.extend(mpb.EdgeSummary(**e) for e in (topology or [])[:SNAPSHOT_LIMIT])
        answer = await self._keepalive((mpb.SCHEDULER_SOURCE, scheduler_id), request)
        jobs = tuple(
            PreheatRun(
                job_id=j.id, scheduler_cluster_id=j.scheduler_cluster_id, url=j.url, tag=j.tag, filter=j.filter,
                headers=dict(j.headers), range=j.range,
            )
            for j in answer.jobs
            if j.type == "preheat"
        )
        return KeepAliveReply(SchedulerRecord.from_pb(answer.scheduler), jobs)

    async def report_job(self, job_id: int, *, scheduler_id: int, state: str, message: str = "") -> str:
        """state: RUNNING | SUCCESS | FAILURE. Returns the job's overall state."""
        request = mpb.ReportJobResultRequest(job_id=job_id, scheduler_id=scheduler_id, state=state,
                                             message=message[:2048])
        return str((await self._unary("ReportJobResult", request)).state)

    # --- seed peers and daemons -----------------------------------------------------------------

    async def register_seed_peer(
        self,
        *,
        host_name: str,
        ip: str,
        port: int,
        download_port: int = 0,
        object_storage_port: int = 0,
        seed_peer_cluster_id: int = 1,
        type: str = "super",
        idc: str = "",
        location: str = "",
    ) -> SeedPeerRecord:
        request = mpb.UpdateSeedPeerRequest(
            source_type=mpb.SEED_PEER_SOURCE, hostname=host_name, ip=ip, port=port, download_port=download_port,
            object_storage_port=object_storage_port, seed_peer_cluster_id=seed_peer_cluster_id, type=type,
            idc=idc, location=location,
        )
        return SeedPeerRecord.from_pb(await self._unary("UpdateSeedPeer", request))

    async def keepalive_seed_peer(self, seed_peer_id: int) -> SeedPeerRecord:
        request = mpb.KeepAliveRequest(source_type=mpb.SEED_PEER_SOURCE, id=seed_peer_id)
        answer = await self._keepalive((mpb.SEED_PEER_SOURCE, seed_peer_id), request)
        return SeedPeerRecord.from_pb(answer.seed_peer)

    async def list_schedulers(
        self, *, host_name: str = "", ip: str = "", idc: str = "", location: str = ""
    ) -> list[SchedulerRecord]:
        """Schedulers for a peer: active, with `schedule`, best-matching cluster first."""
        host_info = {k: v for k, v in (("idc", idc), ("location", location)) if v}
        request = mpb.ListSchedulersRequest(source_type=mpb.PEER_SOURCE, hostname=host_name, ip=ip,
                                            host_info=host_info)
        answer = await self._unary("ListSchedulers", request)
        return [SchedulerRecord.from_pb(m) for m in answer.schedulers]


class SchedulerDirectory:
    """A daemon's view of its schedulers: refreshed from the manager, the last good list kept on failure."""

    def __init__(
        self,
        client: ManagerClient,
        *,
        host_name: str = "",
        ip: str = "",
        idc: str = "",
        location: str = "",
        fallback: list[str] | None = None,
    ) -> None:
        self._client = client
        self._query = {"host_name": host_name, "ip": ip, "idc": idc, "location": location}
        self._addresses: list[str] = list(fallback or [])
        self.last_error: Exception | None = None

    @property
    def addresses(self) -> list[str]:
        return list(self._addresses)

    async def refresh(self) -> list[str]:
        try:
            found = await self._client.list_schedulers(**self._query)
        except (ManagerUnavailable, ManagerRequestError) as exc:
            self.last_error = exc  # keep serving the last list
            return self.addresses
        self.last_error = None
        if found:  # an empty answer (e.g. all schedulers restarting) does not wipe a working list
            self._addresses = [r.address for r in found]
        return self.addresses

    async def run(self, interval_s: float) -> None:
        """Refresh forever; the caller owns the task and cancels it on shutdown."""
        while True:
            await self.refresh()
            await asyncio.sleep(interval_s)


PreheatHandler = Callable[[PreheatRun], Awaitable[str]]
SnapshotSource = Callable[[], tuple[list[dict[str, Any]], list[dict[str, Any]]]]
TopologySource = Callable[[], list[dict[str, Any]]]  # network topology edges, as the keepalive's `topology`


class SchedulerAgent:
    """A scheduler's side of the manager contract, in one object the scheduler owns and runs:

    register (retried until the manager answers), keepalive every `interval_s`, keep the latest
    `features` (kept as they were while the manager is down), and run each preheat handed over with
    `on_preheat(run)`, reporting SUCCESS with its return value as message, or FAILURE with the error.
    The scheduler itself must consult `allows("preheat")` before serving any preheat request and
    `allows("schedule")` before accepting peers.
    """

    def __init__(
        self, client: ManagerClient, *, host_name: str, ip: str, port: int, scheduler_cluster_id: int = 1,
        idc: str = "", location: str = "", interval_s: float = 5.0, on_preheat: PreheatHandler | None = None,
        snapshot: SnapshotSource | None = None, initial_features: frozenset[str] = frozenset({"schedule", "preheat"}),
        topology: TopologySource | None = None,
    ) -> None:
        self._client = client
        self._identity = {"host_name": host_name, "ip": ip, "port": port, "idc": idc, "location": location,
                          "scheduler_cluster_id": scheduler_cluster_id}
        self._interval_s = interval_s
        self._on_preheat = on_preheat
        self._snapshot = snapshot
        self._topology = topology
        self.features = initial_features
        self.scheduler_id: int | None = None
        self.registered = asyncio.Event()

    def allows(self, feature: str) -> bool:
        return feature in self.features

    async def run(self) -> None:
        async with asyncio.TaskGroup() as runs:
            while True:
                if self.scheduler_id is None:
                    await self.register()
                await asyncio.sleep(self._interval_s)
                await self.beat(runs)

    async def register(self) -> bool:
        try:
            record = await self._client.register_scheduler(**self._identity)  # type: ignore[arg-type]
        except (ManagerUnavailable, ManagerRequestError):
            return False  # tried again after the next interval; features stay as they were
        self.scheduler_id, self.features = record.id, record.features
        self.registered.set()
        return True

    async def beat(self, runs: asyncio.TaskGroup | None = None) -> KeepAliveReply | None:
        """One keepalive; preheat runs it brings are started in `runs` (or awaited here when None)."""
        if self.scheduler_id is None:
            return None
        tasks, peers = self._snapshot() if self._snapshot else (None, None)
        topology = self._topology() if self._topology else None
        try:
            reply = await self._client.keepalive_scheduler(
                self.scheduler_id, tasks=tasks, peers=peers, topology=topology
            )
        except ManagerRequestError as exc:
            if exc.status == 404:  # deleted in the manager: register again on the next run()
                self.scheduler_id = None
            return None
        except ManagerUnavailable:
            return None
        self.features = reply.features
        for job in reply.jobs:
            if runs is None:
                await self._preheat(job)
            else:
                runs.create_task(self._preheat(job))
        return reply

    async def _preheat(self, job: PreheatRun) -> None:
        assert self.scheduler_id is not None
        try:
            if self._on_preheat is None or not self.allows("preheat"):
                raise P2PError("scheduler has the preheat feature disabled")
            message, state = await self._on_preheat(job), "SUCCESS"
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure of the preheat is the run's result, not the agent's
            message, state = f"{type(exc).__name__}: {exc}", "FAILURE"
        for _attempt in range(3):
            try:
                await self._client.report_job(job.job_id, scheduler_id=self.scheduler_id, state=state,
                                              message=message)
                return
            except ManagerUnavailable:
                await asyncio.sleep(self._interval_s)
            except ManagerRequestError:
                return  # the job was deleted meanwhile


class SeedPeerAgent:
    """A seed peer's registration and keepalive loop (state active while it runs)."""

    def __init__(self, client: ManagerClient, *, host_name: str, ip: str, port: int, download_port: int,
                 seed_peer_cluster_id: int = 1, idc: str = "", location: str = "", interval_s: float = 5.0) -> None:
        self._client = client
        self._identity = {"host_name": host_name, "ip": ip, "port": port, "download_port": download_port,
                          "seed_peer_cluster_id": seed_peer_cluster_id, "idc": idc, "location": location}
        self._interval_s = interval_s
        self.seed_peer_id: int | None = None
        self.registered = asyncio.Event()

    async def run(self) -> None:
        while True:
            try:
                if self.seed_peer_id is None:
                    record = await self._client.register_seed_peer(**self._identity)  # type: ignore[arg-type]
                    self.seed_peer_id = record.id
                    self.registered.set()
                else:
                    await self._client.keepalive_seed_peer(self.seed_peer_id)
            except ManagerRequestError as exc:
                if exc.status == 404:
                    self.seed_peer_id = None
            except ManagerUnavailable:
                pass  # the manager is down; keep trying
            await asyncio.sleep(self._interval_s)
