"""A dfstore PUT with maxReplicas pushes Ephemeral copies to seed peers (dfstore-wire.md §2.2)."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.request
from pathlib import Path

import pytest

from dfstore.core.source import object_url
from p2p.common.ids import task_id
from tests.cluster import fs_origin, running_daemon

pytestmark = pytest.mark.cluster


def _put(base: str, bucket: str, key: str, data: bytes, **fields: str) -> int:
    boundary = "dflyreplicationtestboundary"
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in fields.items()]
    head = "".join(parts) + (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{key}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    body = head.encode() + data + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(
        f"{base}/buckets/{bucket}/objects/{key}",
        data=body,
        method="PUT",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    with urllib.request.urlopen(req) as resp:
        return resp.status


def _pieces(upload: str, tid: str) -> dict:
    try:
        with urllib.request.urlopen(f"{upload}/tasks/{tid}/pieces") as resp:
            return json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return {"status": exc.code}


def _wait_done(upload: str, tid: str, timeout_s: float = 20) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        info = _pieces(upload, tid)
        if info.get("done"):
            return info
        time.sleep(0.2)
    return _pieces(upload, tid)


def test_put_with_max_replicas_seeds_the_seed_peer(tmp_path: Path) -> None:
    origin = fs_origin(tmp_path)
    (Path(origin["path"]) / "bkt").mkdir()
    data = bytes(range(256)) * 40_000  # ~10 MiB: several pieces
    with running_daemon(tmp_path, origin, name="seed", extra={"daemon": {"seed": True}}) as seed:
        dead = "http://127.0.0.1:9"  # nothing listens there: skipped, the next seed is tried
        extra = {"dfstore": {"replica_peers": [dead, seed.ready["dfstore"]]}}
        with running_daemon(tmp_path, origin, name="writer", extra=extra) as writer:
            assert _put(writer.ready["dfstore"], "bkt", "model.bin", data, mode="1", maxReplicas="1") == 200
            tid = task_id(object_url("bkt", "model.bin"), hashlib.md5(data).hexdigest())
            info = _wait_done(seed.ready["upload"], tid)
            assert info.get("done") is True, info
            assert info["content_length"] == len(data)
            # Ephemeral: the seed holds the bytes in its cache only, the origin holds one copy
            assert (Path(origin["path"]) / "bkt" / "model.bin").read_bytes() == data

            # maxReplicas absent and the daemon default (3) > available seeds: still one copy, no error
            assert _put(writer.ready["dfstore"], "bkt", "second.bin", b"x" * 1000, mode="1") == 200
            tid2 = task_id(object_url("bkt", "second.bin"), hashlib.md5(b"x" * 1000).hexdigest())
            assert _wait_done(seed.ready["upload"], tid2).get("done") is True


def test_ephemeral_put_is_not_replicated(tmp_path: Path) -> None:
    origin = fs_origin(tmp_path)
    (Path(origin["path"]) / "bkt").mkdir()
    with running_daemon(tmp_path, origin, name="seed", extra={"daemon": {"seed": True}}) as seed:
        extra = {"dfstore": {"replica_peers": [seed.ready["dfstore"]]}}
        with running_daemon(tmp_path, origin, name="writer", extra=extra) as writer:
            assert _put(writer.ready["dfstore"], "bkt", "tmp.bin", b"abc", mode="2", maxReplicas="1") == 200
            tid = task_id(object_url("bkt", "tmp.bin"), hashlib.md5(b"abc").hexdigest())
            time.sleep(1.0)
            assert _pieces(seed.ready["upload"], tid) == {"status": 404}
            assert not (Path(origin["path"]) / "bkt" / "tmp.bin").exists()
