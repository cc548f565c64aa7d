"""Seed-peer replication (dfstore-wire.md §2.2): after a PUT with `maxReplicas` > 0, push Ephemeral copies
(`mode=2`) of the object to that many seed peers' dfstore APIs, so readers elsewhere find it in the P2P
network without going to the origin. Best effort: a failing seed is logged and the next one tried."""

from __future__ import annotations

import asyncio
import logging
import posixpath
from collections.abc import Callable, Sequence
from pathlib import Path
from urllib.parse import quote

import aiohttp

from dfstore.models import ObjectMeta

log = logging.getLogger(__name__)

REPLICA_TIMEOUT_S = 600.0


class HTTPReplicator:
    """`peers` returns the candidate seeds' dfstore base URLs (this node's own URL is skipped)."""

    def __init__(self, peers: Callable[[], Sequence[str]], *, own_url: Callable[[], str] = lambda: "") -> None:
        self._peers = peers
        self._own_url = own_url
        self._session: aiohttp.ClientSession | None = None

    async def replicate(self, meta: ObjectMeta, path: Path, max_replicas: int) -> None:
        own = self._own_url().rstrip("/")
        done = 0
        for base in dict.fromkeys(p.rstrip("/") for p in self._peers()):
            if done >= max_replicas:
                break
            if base == own:
                continue
            try:
                await self._push(base, meta, path)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                log.warning("replica of bucket=%s key=%r to %s failed: %s", meta.bucket, meta.key, base, exc)
                continue
            done += 1
        log.info("bucket=%s key=%r replicated to %d seed peer(s)", meta.bucket, meta.key, done)

    async def _push(self, base: str, meta: ObjectMeta, path: Path) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REPLICA_TIMEOUT_S))
        url = f"{base}/buckets/{quote(meta.bucket, safe='')}/objects/{quote(meta.key, safe='/')}"
        body = await asyncio.to_thread(open, path, "rb")
        try:  # aiohttp streams the file part in chunks
            form = aiohttp.FormData()
            form.add_field("mode", "2")
            form.add_field(
                "file", body, filename=posixpath.basename(meta.key) or "object", content_type=meta.content_type
            )
            async with self._session.put(url, data=form) as resp:
                if resp.status != 200:
                    raise aiohttp.ClientResponseError(
                        resp.request_info, resp.history, status=resp.status, message=(await resp.text())[:200]
                    )
        finally:
            await asyncio.to_thread(body.close)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
