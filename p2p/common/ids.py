"""Task, peer and host ids."""

from __future__ import annotations

import hashlib
import os
import socket
import uuid

from p2p.types import ByteRange, HostID, PeerID, TaskID


def sha256_of(*parts: str) -> str:
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def task_id(url: str, version: str, byte_range: ByteRange | None = None) -> TaskID:
    """One task per object version (and range): an overwritten object never maps to old pieces.

    Unlike Dragonfly's TaskIDV1 the origin version is always part of the id, and a separator keeps
    the parts from running into each other.
    """
    parts = [url, "\n", version]
    if byte_range is not None:
        parts += ["\n", byte_range.header_value()]
    return TaskID(sha256_of(*parts))


def host_id(ip: str, hostname: str) -> HostID:
    """Dragonfly's HostIDV2: sha256(ip + hostname)."""
    return HostID(sha256_of(ip, hostname))


def peer_id(ip: str, *, seed: bool = False) -> PeerID:
    """Dragonfly's PeerIDV1: `<ip>-<pid>-<uuid4>`, with `_Seed` for seed peers."""
    pid = f"{ip}-{os.getpid()}-{uuid.uuid4()}"
    return PeerID(pid + "_Seed" if seed else pid)


def local_hostname() -> str:
    return socket.gethostname()
