"""Scheduler -> daemon calls: asking a seed peer to fetch a task (Daemon.TriggerTask)."""

from __future__ import annotations

from grpc import aio

from p2p.clients.interceptor import error_from_rpc
from p2p.proto import convert
from p2p.proto import scheduler_pb2_grpc as pb_grpc
from p2p.proto.values import HostInfo, PreheatResult, PreheatSpec, TaskSpec
from p2p.types import PeerID, TaskID

TRIGGER_TIMEOUT_S = 10.0


class DaemonTrigger:
    """One channel per daemon address, created on first use, closed by `aclose()`."""

    def __init__(self, timeout_s: float = TRIGGER_TIMEOUT_S) -> None:
        self._timeout_s = timeout_s
        self._channels: dict[str, aio.Channel] = {}

    def _stub(self, address: str) -> pb_grpc.DaemonStub:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = aio.insecure_channel(address)
        return pb_grpc.DaemonStub(channel)

    async def trigger(self, host: HostInfo, task_id: TaskID, spec: TaskSpec) -> None:
        await self.trigger_at(f"{host.ip}:{host.rpc_port}", task_id, spec)

    async def trigger_at(self, address: str, task_id: TaskID, spec: TaskSpec) -> PeerID:
        try:
            reply = await self._stub(address).TriggerTask(convert.trigger_to_pb(task_id, spec), timeout=self._timeout_s)
        except aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc
        return PeerID(reply.peer_id)

    async def preheat_at(self, address: str, spec: PreheatSpec, timeout_s: float) -> PreheatResult:
        """Have the seed peer at `address` fetch `spec`; answers when the whole task is on its disk."""
        try:
            reply = await self._stub(address).PreheatTask(convert.preheat_to_pb(spec), timeout=timeout_s)
        except aio.AioRpcError as exc:
            raise error_from_rpc(exc) from exc
        return convert.preheat_result_from_pb(reply)

    async def aclose(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()
