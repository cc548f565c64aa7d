"""A token bucket for byte rates (the daemon's total download limit)."""

from __future__ import annotations

import asyncio
import time


class RateLimiter:
    """`await acquire(n)` returns once n bytes fit in the rate; rate 0 means unlimited.

    Bursts up to one second of traffic; a request larger than that waits for its share and goes.
    """

    def __init__(self, rate_bps: int) -> None:
        self.rate_bps = rate_bps
        self._tokens = float(rate_bps)
        self._stamp = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self, n: int) -> None:
        if self.rate_bps <= 0:
            return
        async with self._lock:
            now = time.monotonic()
            self._tokens = min(float(self.rate_bps), self._tokens + (now - self._stamp) * self.rate_bps)
            self._stamp = now
            self._tokens -= n
            if self._tokens < 0:
                await asyncio.sleep(-self._tokens / self.rate_bps)
