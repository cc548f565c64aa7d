"""The flexible checksums S3 clients send (`x-amz-checksum-<algorithm>`, base64 of the big-endian digest).

CRC32 uses zlib and SHA via hashlib (both release the GIL on large buffers). CRC32C and CRC64NVME
have no fast implementation in the standard library; they are table-driven here, which is slow but
only used when a client asks for them explicitly (boto3's default is CRC32).
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from typing import Protocol

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")


class Checksum(Protocol):
    def update(self, data: bytes) -> None: ...

    def b64(self) -> str: ...


class _Crc32:
    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = zlib.crc32(data, self._value)

    def b64(self) -> str:
        return base64.b64encode(self._value.to_bytes(4, "big")).decode()


def _reflected_table(poly: int, width: int) -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ poly if crc & 1 else crc >> 1
        table.append(crc & ((1 << width) - 1))
    return table


_CRC32C_TABLE = _reflected_table(0x82F63B78, 32)
_CRC64NVME_TABLE = _reflected_table(0x9A6C9329AC4BC9B5, 64)


class _TableCrc:
    def __init__(self, table: list[int], width: int) -> None:
        self._table = table
        self._mask = (1 << width) - 1
        self._width = width
        self._crc = self._mask

    def update(self, data: bytes) -> None:
        crc, table = self._crc, self._table
        for byte in data:
            crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        self._crc = crc

    def b64(self) -> str:
        value = self._crc ^ self._mask
        return base64.b64encode(value.to_bytes(self._width // 8, "big")).decode()


class _Hash:
    def __init__(self, name: str) -> None:
        self._h = hashlib.new(name)

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def b64(self) -> str:
        return base64.b64encode(self._h.digest()).decode()


def new_checksum(algorithm: str) -> Checksum:
    """`algorithm` is one of ALGORITHMS (lowercase)."""
    if algorithm == "crc32":
        return _Crc32()
    if algorithm == "crc32c":
        return _TableCrc(_CRC32C_TABLE, 32)
    if algorithm == "crc64nvme":
        return _TableCrc(_CRC64NVME_TABLE, 64)
    if algorithm in ("sha1", "sha256"):
        return _Hash(algorithm)
    raise ValueError(f"unknown checksum algorithm {algorithm!r}")
