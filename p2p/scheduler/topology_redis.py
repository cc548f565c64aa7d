"""`TopologyStore` in Redis (`database.redis.network_topology_db`), Dragonfly's key layout:

- `scheduler:network-topology:<src>:<dest>` (hash): `createdAt` (RFC3339Nano, set once),
  `averageRTT` (int ns), `updatedAt` (RFC3339Nano of the latest probe);
- `scheduler:probes:<src>:<dest>` (list, oldest first):
  JSON `{"host": {"id": dest}, "rtt": ns, "createdAt": RFC3339Nano}`;
- `scheduler:probed-count:<host>` (string int): probes of the host as a destination (INCR).

Host ids are hex digests, so the `:` separators are unambiguous. Needs the `redis` package
(`pip install dfly-p2p[redis]`); it is imported only when Redis is configured.
"""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from p2p.proto.values import ProbeResult, TopologyEdge
from p2p.scheduler.config import RedisSection
from p2p.scheduler.topology import moving_average
from p2p.types import HostID

if TYPE_CHECKING:
    from redis.asyncio import Redis

EDGE_PREFIX = "scheduler:network-topology:"
PROBES_PREFIX = "scheduler:probes:"
COUNT_PREFIX = "scheduler:probed-count:"
SCAN_BATCH = 500
CONNECT_TIMEOUT_S = 2.0
SOCKET_TIMEOUT_S = 5.0


def edge_key(src: str, dest: str) -> str:
    return f"{EDGE_PREFIX}{src}:{dest}"


def probes_key(src: str, dest: str) -> str:
    return f"{PROBES_PREFIX}{src}:{dest}"


def count_key(host: str) -> str:
    return f"{COUNT_PREFIX}{host}"


def rfc3339nano(ns: int) -> str:
    """Go's time.RFC3339Nano in UTC: trailing zeros of the fraction dropped."""
    secs, nanos = divmod(ns, 1_000_000_000)
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
    frac = f"{nanos:09d}".rstrip("0")
    return f"{base}.{frac}Z" if frac else f"{base}Z"


def parse_rfc3339nano(text: str) -> int:
    """The inverse of `rfc3339nano` (UTC `Z` only, which is all this store writes); 0 if unreadable."""
    if not text.endswith("Z"):
        return 0
    base, _, frac = text[:-1].partition(".")
    try:
        secs = calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S"))
        return secs * 1_000_000_000 + int((frac or "0").ljust(9, "0")[:9])
    except ValueError:
        return 0


def redis_client(config: RedisSection, db: int) -> Redis:
    """A client for one DB: through Sentinel when `master_name` is set, else the first address."""
    try:
        from redis.asyncio import Redis, Sentinel
        from redis.asyncio.retry import Retry
        from redis.backoff import ExponentialBackoff
    except ImportError as exc:  # an optional dependency
        raise RuntimeError("database.redis is configured but the `redis` package is missing") from exc
    if not config.addrs:
        raise ValueError("database.redis.addrs is empty")
    password = config.password.get_secret_value() if config.password is not None else None
    username = config.username or None
    nodes: list[tuple[str, int]] = []
    for addr in config.addrs:
        name, _, port = addr.rpartition(":")
        nodes.append((name, int(port)) if name else (addr, 6379))
    # A few quick retries: an RPC waiting on a Redis that is down should fail in about a second.
    options: dict[str, Any] = {
        "db": db,
        "username": username,
        "password": password,
        "socket_connect_timeout": CONNECT_TIMEOUT_S,
        "socket_timeout": SOCKET_TIMEOUT_S,
        "retry": Retry(ExponentialBackoff(cap=0.5, base=0.05), 2),
    }
    if config.master_name:
        sentinel = Sentinel(nodes, sentinel_kwargs={"username": username, "password": password})
        return sentinel.master_for(config.master_name, **options)
    return Redis(host=nodes[0][0], port=nodes[0][1], **options)


class RedisTopologyStore:
    def __init__(self, client: Redis, queue_length: int) -> None:
        self._redis = client
        self._queue_length = queue_length

    @classmethod
    def from_config(cls, config: RedisSection, queue_length: int) -> RedisTopologyStore:
        return cls(redis_client(config, config.network_topology_db), queue_length)

    async def enqueue(self, src: HostID, probe: ProbeResult) -> TopologyEdge:
        dest = probe.host_id
        created = rfc3339nano(probe.created_at_ns)
        item = json.dumps({"host": {"id": dest}, "rtt": probe.rtt_ns, "createdAt": created})
        pk, ek = probes_key(src, dest), edge_key(src, dest)
        async with self._redis.pipeline(transaction=True) as pipe:
            # RPUSH then keep the newest queue_length: Dragonfly's "LPOP when full, then RPUSH".
            pipe.rpush(pk, item)
            pipe.ltrim(pk, -self._queue_length, -1)
            pipe.lrange(pk, 0, -1)
            pipe.hsetnx(ek, "createdAt", created)
            pipe.incr(count_key(dest))
            _, _, raw, _, _ = await pipe.execute()
        rtts = [int(json.loads(x)["rtt"]) for x in raw]
        average = moving_average(rtts)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(ek, mapping={"averageRTT": average, "updatedAt": created})
            pipe.hget(ek, "createdAt")
            _, first = await pipe.execute()
        return TopologyEdge(
            src_host_id=src,
            dest_host_id=dest,
            average_rtt_ns=average,
            probe_count=len(rtts),
            created_at_ns=parse_rfc3339nano(_text(first)),
            updated_at_ns=probe.created_at_ns,
        )

    async def probed_counts(self, hosts: Sequence[HostID]) -> list[int]:
        if not hosts:
            return []
        values = await self._redis.mget([count_key(h) for h in hosts])
        return [int(v) if v is not None else 0 for v in values]

    async def _scan(self, pattern: str) -> list[str]:
        return [_text(k) async for k in self._redis.scan_iter(match=pattern, count=SCAN_BATCH)]

    async def _edge_keys(self, host: HostID | None) -> list[str]:
        if host is None:
            return await self._scan(EDGE_PREFIX + "*")
        keys = await self._scan(f"{EDGE_PREFIX}{host}:*") + await self._scan(f"{EDGE_PREFIX}*:{host}")
        return list(dict.fromkeys(keys))

    async def edges(self, host: HostID | None = None) -> list[TopologyEdge]:
        keys = await self._edge_keys(host)
        if not keys:
            return []
        pairs = [k[len(EDGE_PREFIX) :].split(":", 1) for k in keys]
        async with self._redis.pipeline(transaction=False) as pipe:
            for key, (src, dest) in zip(keys, pairs, strict=True):
                pipe.hgetall(key)
                pipe.llen(probes_key(src, dest))
            replies = await pipe.execute()
        out = []
        for i, (src, dest) in enumerate(pairs):
            fields = {_text(k): _text(v) for k, v in replies[2 * i].items()}
            if "averageRTT" not in fields:  # deleted between the scan and the read
                continue
            out.append(
                TopologyEdge(
                    src_host_id=HostID(src),
                    dest_host_id=HostID(dest),
                    average_rtt_ns=int(fields["averageRTT"]),
                    probe_count=int(replies[2 * i + 1]),
                    created_at_ns=parse_rfc3339nano(fields.get("createdAt", "")),
                    updated_at_ns=parse_rfc3339nano(fields.get("updatedAt", "")),
                )
            )
        return out

    async def probes(self, src: HostID, dest: HostID) -> list[ProbeResult]:
        raw = await self._redis.lrange(probes_key(src, dest), 0, -1)
        out = []
        for item in raw:
            data = json.loads(item)
            out.append(
                ProbeResult(
                    host_id=HostID(data["host"]["id"]),
                    rtt_ns=int(data["rtt"]),
                    created_at_ns=parse_rfc3339nano(data["createdAt"]),
                )
            )
        return out

    async def delete_host(self, host: HostID) -> None:
        keys = await self._edge_keys(host)
        keys += await self._scan(f"{PROBES_PREFIX}{host}:*") + await self._scan(f"{PROBES_PREFIX}*:{host}")
        keys.append(count_key(host))
        await self._redis.delete(*keys)

    async def aclose(self) -> None:
        await self._redis.aclose()


def _text(value: Any) -> str:
    if value is None:
        return ""
    return value.decode() if isinstance(value, bytes) else str(value)
