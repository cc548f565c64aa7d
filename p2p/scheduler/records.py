"""Download records: one JSON line per finished peer, appended to a size-rotated file.

`buffer_size: 0` writes every record as it arrives (Dragonfly lost buffered records on exit); with a
buffer, `aclose()` flushes what is left.
"""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

from p2p.scheduler.config import RecordsSection


class RecordWriter:
    def __init__(self, section: RecordsSection) -> None:
        self.path = Path(section.path)
        self._section = section
        self._buffer: list[str] = []
        self._lock = asyncio.Lock()

    async def write(self, record: dict[str, Any]) -> None:
        self._buffer.append(json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n")
        if len(self._buffer) > self._section.buffer_size:
            await self.flush()

    async def flush(self) -> None:
        async with self._lock:
            lines, self._buffer = self._buffer, []
            if lines:
                await asyncio.to_thread(self._append, "".join(lines))

    async def aclose(self) -> None:
        await self.flush()

    def _append(self, text: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(text) > self._section.max_size_bytes:
            self._rotate()
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(text)
            f.flush()

    def _rotate(self) -> None:
        """records.jsonl -> records.jsonl.1 -> ... -> .N; the oldest beyond max_backups is dropped."""
        keep = self._section.max_backups
        if keep == 0:
            self.path.unlink(missing_ok=True)
            return
        oldest = self.path.with_name(f"{self.path.name}.{keep}")
        oldest.unlink(missing_ok=True)
        for i in range(keep - 1, 0, -1):
            src = self.path.with_name(f"{self.path.name}.{i}")
            if src.exists():
                os.replace(src, self.path.with_name(f"{self.path.name}.{i + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
