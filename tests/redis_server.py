"""The Redis the development and CI machines run at 127.0.0.1:6379: tests that need it skip when it is
not there, except on CI (CI=true), where a missing Redis is a failure."""

from __future__ import annotations

import os
import socket

import pytest

REDIS_ADDR = "127.0.0.1:6379"


def require_redis() -> str:
    """The address of the local Redis; skips (or fails on CI) when nothing answers there."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            sock.settimeout(1.0)
            if not sock.recv(16).startswith((b"+PONG", b"-NOAUTH")):
                raise OSError("not a Redis")
    except OSError as exc:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"Redis at {REDIS_ADDR} is required on CI: {exc}")
        pytest.skip(f"no Redis at {REDIS_ADDR}: {exc}")
    return REDIS_ADDR
