"""Async REST client for the manager, used by schedulers and seed peers/daemons.

    async with ManagerClient("http://127.0.0.1:8080") as m:
        me = await m.register_scheduler(host_name="s1", ip="10.0.0.1", port=8002, scheduler_cluster_id=1)
        reply = await m.keepalive_scheduler(me.id)      # features + preheat runs handed to it
        await m.report_job(run.job_id, scheduler_id=me.id, state="SUCCESS")

A scheduler enforces its own features from `KeepAliveReply.features` (refuse preheat without
`preheat`); `SchedulerDirectory` keeps a daemon's last good scheduler list while the manager is down.
Errors: `ManagerUnavailable` (connection, timeout, 5xx) and `ManagerRequestError` (4xx, with status).
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import aiohttp

from p2p.errors import P2PError


class ManagerUnavailable(P2PError):  # noqa: N818 - named like p2p.errors.SchedulerUnavailable
    """The manager could not be reached or answered 5xx."""


class ManagerRequestError(P2PError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status


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
    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        if "://" not in self.base_url:
            self.base_url = "http://" + self.base_url
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._ssl: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> ManagerClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, params: dict[str, str] | None = None
    ) -> Any:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers=self._headers)
        try:
            async with self._session.request(
                method, self.base_url + path, json=body, params=params, ssl=self._ssl
            ) as resp:
                data = await resp.json(content_type=None) if resp.status != 204 else None
                if resp.status >= 500:
                    raise ManagerUnavailable(f"manager answered {resp.status}")
                if resp.status >= 400:
                    message = data.get("message", "") if isinstance(data, dict) else ""
                    raise ManagerRequestError(resp.status, message)
                return data
        except (TimeoutError, aiohttp.ClientError, ValueError) as exc:
            raise ManagerUnavailable(f"manager {self.base_url} unreachable: {exc!r}") from exc

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
        """`ip`/`port` are the advertised address peers dial, which may differ from the listen one."""
        body: dict[str, Any] = {
            "host_name": host_name,
            "ip": ip,
            "port": port,
            "idc": idc,
            "location": location,
            "scheduler_cluster_id": scheduler_cluster_id,
        }
        if features is not None:
            body["features"] = features
        return SchedulerRecord.from_json(await self._call("POST", "/api/v1/schedulers/register", body))

    async def keepalive_scheduler(
        self,
        scheduler_id: int,
        *,
        tasks: list[dict[str, Any]] | None = None,
        peers: list[dict[str, Any]] | None = None,
        topology: list[dict[str, Any]] | None = None,
    ) -> KeepAliveReply:
        body: dict[str, Any] = {}
        if tasks is not None:
            body["tasks"] = tasks[:1000]
        if peers is not None:
            body["peers"] = peers[:1000]
        if topology is not None:
            body["topology"] = topology[:1000]
        data = await self._call("POST", f"/api/v1/schedulers/{scheduler_id}/keepalive", body)
        jobs = tuple(
            PreheatRun(
                job_id=j["id"],
                scheduler_cluster_id=j["scheduler_cluster_id"],
                url=j["args"]["url"],
                tag=j["args"].get("tag", ""),
                filter=j["args"].get("filter", ""),
                headers=dict(j["args"].get("headers") or {}),
                range=j["args"].get("range", ""),
            )
            for j in data.get("jobs", [])
            if j.get("type") == "preheat"
        )
        return KeepAliveReply(SchedulerRecord.from_json(data), jobs)

    async def scheduler_features(self, scheduler_id: int) -> frozenset[str]:
        data = await self._call("GET", f"/api/v1/schedulers/{scheduler_id}/features")
        return frozenset(data["features"])

    async def report_job(self, job_id: int, *, scheduler_id: int, state: str, message: str = "") -> str:
        """state: RUNNING | SUCCESS | FAILURE. Returns the job's overall state."""
        data = await self._call(
            "POST",
            f"/api/v1/jobs/{job_id}/results",
            {"scheduler_id": scheduler_id, "state": state, "message": message[:2048]},
        )
        return str(data["state"])

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
        body = {
            "host_name": host_name,
            "ip": ip,
            "port": port,
            "download_port": download_port,
            "object_storage_port": object_storage_port,
            "seed_peer_cluster_id": seed_peer_cluster_id,
            "type": type,
            "idc": idc,
            "location": location,
        }
        return SeedPeerRecord.from_json(await self._call("POST", "/api/v1/seed-peers/register", body))

    async def keepalive_seed_peer(self, seed_peer_id: int) -> SeedPeerRecord:
        return SeedPeerRecord.from_json(
            await self._call("POST", f"/api/v1/seed-peers/{seed_peer_id}/keepalive", {})
        )

    async def list_schedulers(
        self, *, host_name: str = "", ip: str = "", idc: str = "", location: str = ""
    ) -> list[SchedulerRecord]:
        """Schedulers for a peer: active, with `schedule`, best-matching cluster first."""
        params = {"host_name": host_name, "ip": ip, "idc": idc, "location": location}
        data = await self._call(
            "GET", "/api/v1/schedulers/discovery", params={k: v for k, v in params.items() if v}
        )
        return [SchedulerRecord.from_json(d) for d in data]


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
