"""AsyncWriteBack: an acknowledged write survives an origin outage and a SIGKILL of the process (the
object service in a child process, and the real `dfly daemon` over the dfstore HTTP API)."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from dfstore.core.fs import FilesystemBackend
from dfstore.core.s3 import S3Backend
from dfstore.core.writeback import WriteBackQueue
from dfstore.errors import NoSuchKey
from dfstore.models import ObjectMeta, PutOptions
from tests.cluster import start_daemon
from tests.fixtures.rclone import RcloneS3

B = "bkt"
REPO = Path(__file__).resolve().parents[2]

# A node with an S3 origin that is down: it accepts one AsyncWriteBack PUT, says so, keeps retrying.
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from dfstore.core.s3 import S3Backend
    from dfstore.core.service import ObjectService
    from dfstore.core.source import BackendSource
    from dfstore.core.writeback import WriteBackQueue
    from dfstore.models import PutMode, PutOptions
    from p2p.daemon.store import PieceStore
    from p2p.daemon.tasks import TaskManager
    from p2p.source import SourceRouter

    async def main(home: Path, endpoint: str, access: str, secret: str, src: Path) -> None:
        backend = S3Backend(endpoint, "us-east-1", access, secret)
        journal = WriteBackQueue(home / "journal", backend, retry_initial_s=0.05, retry_max_s=0.2)
        store = PieceStore(home / "cache", gc_interval_s=0)
        await store.start()
        tasks = TaskManager(store, SourceRouter({"dfs": BackendSource(backend, journal)}))
        await journal.start()
        service = ObjectService(backend, tasks, spool_dir=home / "spool", writeback=journal)

        async def body():
            with open(src, "rb") as f:
                while chunk := f.read(1 << 20):
                    yield chunk

        meta = await service.put_object("bkt", "dir/object.bin", body(), mode=PutMode.ASYNC_WRITE_BACK,
                                         options=PutOptions(content_type="application/x-test"))
        print("ACK", meta.etag, flush=True)
        await asyncio.sleep(120)

    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], Path(sys.argv[5])))
    """
)


@pytest.mark.slow
async def test_acknowledged_write_survives_origin_down_and_sigkill(tmp_path: Path) -> None:
    origin = RcloneS3(tmp_path / "s3root")  # not started: the origin is down
    (origin.root / B).mkdir(parents=True)  # rclone serves top-level directories as buckets
    data = random.Random(5).randbytes(3 * 1024 * 1024 + 11)
    src = tmp_path / "payload"
    src.write_bytes(data)
    home = tmp_path / "node"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(home), origin.endpoint, origin.access_key, origin.secret_key, str(src)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline().decode()  # blocks until the PUT is acknowledged
        assert line.startswith("ACK "), child.stderr.read().decode() if child.stderr else line
        assert line.split()[1] == hashlib.md5(data).hexdigest()
        time.sleep(0.5)  # let it fail against the dead origin a few times
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(10)
    assert child.returncode == -signal.SIGKILL
    assert not (origin.root / B / "dir").exists()

    origin.start()
    try:
        backend = S3Backend(origin.endpoint, "us-east-1", origin.access_key, origin.secret_key)
        journal = WriteBackQueue(home / "journal", backend, retry_initial_s=0.05, retry_max_s=0.2)
        await journal.start()
        assert await journal.drain(30)
        await journal.close()
        meta = await backend.head_object(B, "dir/object.bin")
        assert (meta.size, meta.etag) == (len(data), hashlib.md5(data).hexdigest())
        assert meta.content_type == "application/x-test"
        got = b"".join([c async for c in backend.read_object(B, "dir/object.bin", 0, len(data))])
        assert got == data
        assert list((home / "journal").iterdir()) == []
        await backend.close()
    finally:
        origin.stop()


@pytest.mark.slow
async def test_daemon_acks_with_origin_down_is_sigkilled_and_its_restart_delivers(tmp_path: Path) -> None:
    """The same promise end to end, through the real `dfly daemon` process and the dfstore HTTP API: an
    AsyncWriteBack PUT (form `mode=0`) answered 200 while the S3 origin is down, the daemon SIGKILLed,
    origin and daemon (same home) started again: the object reaches the origin, byte-exact."""
    origin = RcloneS3(tmp_path / "s3root")  # not started: the origin is down
    (origin.root / B).mkdir(parents=True)
    cfg = {"kind": "s3", "endpoint": origin.endpoint, "access_key": origin.access_key,
           "secret_key": origin.secret_key}
    extra = {"dfstore": {"writeback": {"retry_initial_s": 0.05, "retry_max_s": 0.2}}}
    data = random.Random(7).randbytes(5 * 1024 * 1024 + 3)
    target = origin.root / B / "dir" / "killed.bin"

    daemon = await asyncio.to_thread(start_daemon, tmp_path, cfg, name="wb-node", extra=extra)
    try:
        form = aiohttp.FormData()
        form.add_field("mode", "0")
        form.add_field("file", io.BytesIO(data), filename="killed.bin", content_type="application/octet-stream")
        path = f"/buckets/{B}/objects/dir/killed.bin"
        async with aiohttp.ClientSession() as session, session.put(daemon.ready["dfstore"] + path, data=form) as resp:
            assert resp.status == 200, await resp.text()
        await asyncio.sleep(0.5)  # a few failed attempts against the dead origin
        daemon.kill()  # SIGKILL: no shutdown path runs
        assert daemon.proc.returncode == -signal.SIGKILL
        assert not target.exists()

        origin.start()
        daemon = await asyncio.to_thread(start_daemon, tmp_path, cfg, name="wb-node", extra=extra)
        deadline = time.monotonic() + 30
        while not (target.exists() and target.stat().st_size == len(data)) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert target.read_bytes() == data
        async with aiohttp.ClientSession() as session, session.get(daemon.ready["dfstore"] + path) as resp:
            assert resp.status == 200 and await resp.read() == data
    finally:
        daemon.stop()
        origin.stop()


def meta_for(key: str, data: bytes) -> ObjectMeta:
    return ObjectMeta(bucket=B, key=key, size=len(data), etag=hashlib.md5(data).hexdigest(),
                      last_modified=datetime.now(UTC))


async def test_restart_resumes_only_the_newest_entry_per_key(tmp_path: Path) -> None:
    backend = FilesystemBackend(tmp_path / "origin")
    await backend.create_bucket(B)
    journal_dir = tmp_path / "journal"
    first = WriteBackQueue(journal_dir, backend)  # never started: a process that died
    src = tmp_path / "src"
    src.write_bytes(b"old")
    await first.enqueue(meta_for("k", b"old"), PutOptions(), src, move=False)
    saved = tmp_path / "saved"
    shutil.copytree(journal_dir, saved)
    src.write_bytes(b"new!")
    await first.enqueue(meta_for("k", b"new!"), PutOptions(), src, move=False)
    for path in saved.iterdir():  # as if the old entry's removal never reached the disk
        shutil.copy(path, journal_dir / path.name)
    (journal_dir / "99999999999999999999.data").write_bytes(b"record never written: not acknowledged")
    (journal_dir / "abc.tmp").write_bytes(b"{half a rec")
    (journal_dir / "00000000000000000001.json").write_bytes(b"{damaged")  # kept aside, with its data
    (journal_dir / "00000000000000000001.data").write_bytes(b"maybe acknowledged")
    assert len(list(journal_dir.iterdir())) == 8

    second = WriteBackQueue(journal_dir, backend, retry_initial_s=0.05)
    await second.start()
    assert len(second) == 1 and second.pending(B, "k") is not None
    assert await second.drain(10)
    await second.close()
    assert b"".join([c async for c in backend.read_object(B, "k", 0, 4)]) == b"new!"
    assert sorted(p.name for p in journal_dir.iterdir()) == [
        "00000000000000000001.bad", "00000000000000000001.data"
    ]


@pytest.mark.slow
async def test_origin_outage_is_retried_until_it_accepts(tmp_path: Path) -> None:
    origin = RcloneS3(tmp_path / "s3root")
    (origin.root / B).mkdir(parents=True)
    backend = S3Backend(origin.endpoint, "us-east-1", origin.access_key, origin.secret_key)
    journal = WriteBackQueue(tmp_path / "journal", backend, retry_initial_s=0.05, retry_max_s=0.1, workers=1)
    await journal.start()
    try:
        src = tmp_path / "src"
        for i in range(3):
            src.write_bytes(f"object {i}".encode())
            await journal.enqueue(meta_for(f"o{i}", src.read_bytes()), PutOptions(), src, move=False)
        entry = journal.pending(B, "o0")
        assert entry is not None
        for _ in range(150):  # botocore's own retries make each failed attempt take a while
            if entry.attempts >= 1:
                break
            await asyncio.sleep(0.1)
        assert entry.attempts >= 1 and len(journal) == 3
        origin.start()
        assert await journal.drain(20)
        for i in range(3):
            assert (await backend.head_object(B, f"o{i}")).size == len(f"object {i}")
        with pytest.raises(NoSuchKey):
            await backend.head_object(B, "o3")
    finally:
        await journal.close()
        await backend.close()
        origin.stop()
