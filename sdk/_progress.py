"""The CLI's transfer progress line (bytes, total, rate) and human-readable sizes."""

from __future__ import annotations

import time
from typing import TextIO

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_size(size: float) -> str:
    """1536 → "1.5 KiB"; bytes stay exact ("999 B")."""
    for unit in _UNITS:
        if abs(size) < 1024 or unit == _UNITS[-1]:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class ProgressLine:
    """Redraws one status line on a terminal at most every `interval_s`; silent when `enabled` is false.
    Call it with byte counts as they move; `finish()` clears the line."""

    def __init__(self, stream: TextIO, label: str, total: int | None, *, enabled: bool, interval_s: float = 0.2):
        self.stream = stream
        self.label = label
        self.total = total
        self.enabled = enabled
        self.interval_s = interval_s
        self.done = 0
        self.started = time.monotonic()
        self._drawn = 0.0

    def __call__(self, count: int) -> None:
        self.done += count
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._drawn >= self.interval_s:
            self._drawn = now
            self._draw(now)

    def rate_bps(self) -> float:
        return self.done / max(time.monotonic() - self.started, 1e-6)

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self.started, 1e-6)
        if self.total:
            shown = f"{human_size(self.done)} / {human_size(self.total)} ({100 * self.done / self.total:3.0f}%)"
        else:
            shown = human_size(self.done)
        self.stream.write(f"\r\x1b[K{self.label}  {shown}  {human_size(rate)}/s")
        self.stream.flush()

    def finish(self) -> None:
        if self.enabled and self._drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
