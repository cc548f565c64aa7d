"""Piece and task digests: xxh3-64 per piece, xxh3-64 over the concatenated piece digests per task."""

from __future__ import annotations

from collections.abc import Iterable

import xxhash

from p2p.types import MiB

DEFAULT_PIECE_SIZE = 4 * MiB
MAX_PIECE_SIZE = 15 * MiB


def piece_digest(data: bytes | memoryview) -> str:
    return xxhash.xxh3_64_hexdigest(data)


def task_digest(piece_digests: Iterable[str]) -> str:
    return xxhash.xxh3_64_hexdigest("".join(piece_digests).encode())


def piece_size_for(length: int) -> int:
    """Dragonfly v2.1's piece size: 4 MiB up to 200 MiB, +1 MiB per 100 MiB after that, capped at 15 MiB."""
    if length <= 200 * MiB:
        return DEFAULT_PIECE_SIZE
    gap = length // (100 * MiB)
    return min((gap - 2) * MiB + DEFAULT_PIECE_SIZE, MAX_PIECE_SIZE)


def piece_count(length: int, piece_size: int) -> int:
    return -(-length // piece_size)
