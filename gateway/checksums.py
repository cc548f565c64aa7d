"""The flexible checksums S3 clients send (`x-amz-checksum-<algorithm>`, base64 of the big-endian digest).

Every algorithm runs in native code that releases the GIL on large buffers, so `gateway.body` hashes
request bodies in a worker thread: CRC32 with zlib, CRC32C and CRC64NVME with `awscrt.checksums`
(the AWS common runtime, the implementation botocore and the aws cli use for the same checksums;
hardware-accelerated on x86_64 and aarch64), SHA-1 and SHA-256 with hashlib. zlib's CRC32 is kept
because it measured faster than awscrt's on x86_64 (about 6 GB/s against 3 GB/s per core).

A verified full-object checksum of a PutObject is kept with the object, in the reserved user
metadata entry CHECKSUM_META (`<algorithm>:<base64>`, e.g. `crc32:AAAAAA==`), so both origins store
it as they store any metadata (the directory origin's sidecar, an S3 origin's `x-amz-meta-*`) and
the origin HEAD every read already does brings it back. The gateway hides the entry from
`x-amz-meta-*` and answers it as `x-amz-checksum-<algorithm>` when a client asks with
`x-amz-checksum-mode: ENABLED`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import zlib
from collections.abc import Callable, Mapping
from typing import Protocol

from awscrt import checksums as crt

ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
DIGEST_BYTES = {"crc32": 4, "crc32c": 4, "crc64nvme": 8, "sha1": 20, "sha256": 32}
CHECKSUM_META = "dfly-checksum"


class Checksum(Protocol):
    def update(self, data: bytes) -> None: ...

    def b64(self) -> str: ...


class _Crc:
    """A running CRC: `fn(data, previous) -> value` as zlib.crc32 and awscrt's functions have it."""

    def __init__(self, fn: Callable[[bytes, int], int], size_bytes: int) -> None:
        self._fn = fn
        self._size_bytes = size_bytes
        self._value = 0

    def update(self, data: bytes) -> None:
        self._value = self._fn(data, self._value)

    def b64(self) -> str:
        return base64.b64encode(self._value.to_bytes(self._size_bytes, "big")).decode()


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
        return _Crc(zlib.crc32, 4)
    if algorithm == "crc32c":
        return _Crc(crt.crc32c, 4)
    if algorithm == "crc64nvme":
        return _Crc(crt.crc64nvme, 8)
    if algorithm in ("sha1", "sha256"):
        return _Hash(algorithm)
    raise ValueError(f"unknown checksum algorithm {algorithm!r}")


def stored_entry(checksums: Mapping[str, str]) -> dict[str, str]:
    """The user metadata that keeps a verified checksum ({} when the request carried none). S3 takes
    one checksum per object: of several, the first in ALGORITHMS order is kept."""
    for name in ALGORITHMS:
        if name in checksums:
            return {CHECKSUM_META: f"{name}:{checksums[name]}"}
    return {}


def stored_checksum(user_meta: Mapping[str, str]) -> tuple[str, str] | None:
    """(algorithm, base64 value) of the kept checksum; None when there is none or it is damaged."""
    name, sep, value = user_meta.get(CHECKSUM_META, "").partition(":")
    if not sep or name not in DIGEST_BYTES:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return (name, value) if len(raw) == DIGEST_BYTES[name] else None
