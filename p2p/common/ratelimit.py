"""A token bucket for byte rates (upload and download limits), shared by every stream it governs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from p2p.types import MiB


class TokenBucket:
    """`acquire(n)` returns once `n` bytes fit the rate. Callers are served in arrival order.

    The bucket holds up to `burst_bytes` (default: one second of rate, at least 1 MiB), so short
    bursts pass at once and a long stream settles at `rate_bps` bytes per second.
    """

    def __init__(
        self, rate_bps: float, *, burst_bytes: int | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate_bps <= 0:
            raise ValueError("rate_bps must be > 0")
        self.rate_bps = float(rate_bps)
        self.burst_bytes = burst_bytes if burst_bytes is not None else max(int(rate_bps), MiB)
        self._clock = clock
        self._tokens = float(self.burst_bytes)
        self._stamp = clock()
        self._lock = asyncio.Lock()

    async def acquire(self, n: int) -> None:
        async with self._lock:
            now = self._clock()
            self._tokens = min(float(self.burst_bytes), self._tokens + (now - self._stamp) * self.rate_bps)
            self._stamp = now
            self._tokens -= n  # may go negative: the debt is paid by waiting
            if self._tokens < 0:
                await asyncio.sleep(-self._tokens / self.rate_bps)
