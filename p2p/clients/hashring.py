"""Consistent hashing of task ids over a set of members (schedulers, seed peers).

Every daemon with the same member list maps a task to the same member, so all peers of a task meet
on one scheduler; removing a member moves only the tasks it owned.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable

import xxhash

REPLICAS = 64


def _point(key: str) -> int:
    return xxhash.xxh3_64_intdigest(key.encode())


class HashRing:
    def __init__(self, members: Iterable[str], replicas: int = REPLICAS) -> None:
        self.members = sorted(set(members))
        self._points: list[tuple[int, str]] = sorted(
            (_point(f"{m}#{i}"), m) for m in self.members for i in range(replicas)
        )
        self._keys = [p for p, _ in self._points]

    def __len__(self) -> int:
        return len(self.members)

    def pick(self, key: str, *, exclude: Iterable[str] = ()) -> str | None:
        """The member owning `key`, skipping excluded ones (walking on clockwise); None if none is left."""
        excluded = set(exclude)
        if not self._points or excluded >= set(self.members):
            return None
        start = bisect.bisect(self._keys, _point(key))
        for i in range(len(self._points)):
            member = self._points[(start + i) % len(self._points)][1]
            if member not in excluded:
                return member
        return None
