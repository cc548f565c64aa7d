"""A P2P cluster as real processes: a scheduler, a seed peer and peers, over a real S3 origin whose
bytes are counted on the wire (`rclone serve s3` behind a counting TCP relay)."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import xxhash
import yaml

from dfly.procs import Child, spawn
from tests.cluster import start_daemon
from tests.fixtures.rclone import RcloneS3, free_port, rclone_s3  # noqa: F401  (fixture)
from tests.integration.test_dfstore_coalescing import write_object

MiB = 1024 * 1024
pytestmark = [pytest.mark.cluster]


def start_scheduler(workdir: Path, extra: dict[str, Any] | None = None, name: str = "scheduler") -> Child:
    cfg: dict[str, Any] = {
        "server": {"listen": "127.0.0.1", "port": 0},
        "scheduling": {"retry_interval_s": 0.05},
        "records": {"path": str(workdir / name / "records.jsonl"), "buffer_size": 0},
    } | (extra or {})
    (workdir / name).mkdir(parents=True, exist_ok=True)
    path = workdir / name / "scheduler.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return spawn(
        name,
        ["p2p.scheduler", "--config", str(path)],
        ready_file=workdir / name / "ready.json",
        log_path=workdir / name / "scheduler.log",
    )


def records(workdir: Path, name: str = "scheduler") -> list[dict[str, Any]]:
    path = workdir / name / "records.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


class CountingRelay:
    """A loopback TCP relay on the test's event loop; counts the bytes the origin sends back."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.bytes_from_target = 0
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def __aenter__(self) -> CountingRelay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        for writer in list(self._writers):
            writer.close()
        await self._server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            target_r, target_w = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            client_w.close()
            return
        self._writers |= {client_w, target_w}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter, counted: bool) -> None:
            try:
                while data := await src.read(MiB):
                    if counted:
                        self.bytes_from_target += len(data)
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        try:
            await asyncio.gather(pipe(client_r, target_w, False), pipe(target_r, client_w, True))
        finally:
            self._writers -= {client_w, target_w}


class Cluster:
    def __init__(self, workdir: Path, rclone: RcloneS3, proxy: CountingRelay) -> None:
        self.workdir = workdir
        self.rclone = rclone
        self.proxy = proxy
        self.origin = {
            "kind": "s3",
            "endpoint": f"http://127.0.0.1:{proxy.port}",
            "access_key": rclone.access_key,
            "secret_key": rclone.secret_key,
        }
        self.stack = ExitStack()
        self.scheduler_address = ""

    def scheduler(self, port: int = 0) -> Child:
        child = start_scheduler(self.workdir, {"server": {"listen": "127.0.0.1", "port": port}})
        self.stack.callback(child.stop)
        self.scheduler_address = child.ready["address"]
        return child

    def daemon(self, name: str, *, seed: bool = False, schedulers: list[str] | None = None, rate_bps: int = 0) -> Child:
        extra = {
            "daemon": {
                "seed": seed,
                "download": {"rate_limit_bps": rate_bps},
                "rpc": {"listen": "127.0.0.1", "port": 0},
                "scheduler": {
                    "addresses": schedulers if schedulers is not None else [self.scheduler_address],
                    "health_interval_s": 0.5,
                    "schedule_timeout_s": 10,
                },
            }
        }
        child = start_daemon(self.workdir, self.origin, name=name, extra=extra)
        self.stack.callback(child.stop)
        return child

    def close(self) -> None:
        self.stack.close()


@pytest.fixture
async def cluster(tmp_path: Path, rclone_s3: RcloneS3) -> AsyncIterator[Cluster]:  # noqa: F811
    async with CountingRelay(rclone_s3.port) as relay:
        c = Cluster(tmp_path, rclone_s3, relay)
        try:
            yield c
        finally:
            await asyncio.to_thread(c.close)


async def read_object(session: aiohttp.ClientSession, url: str) -> tuple[int, int, str]:
    digest, size = xxhash.xxh3_128(), 0
    async with session.get(url, headers={"Range": ""}) as response:
        async for chunk in response.content.iter_chunked(MiB):
            digest.update(chunk)
            size += len(chunk)
        return response.status, size, digest.hexdigest()


async def get_all(urls: list[str], timeout_s: float = 100) -> list[tuple[int, int, str]]:
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        return await asyncio.gather(*(read_object(session, u) for u in urls))


def put_object(cluster: Cluster, size: int) -> tuple[str, str]:
    bucket = f"p-{uuid.uuid4().hex[:10]}"
    return bucket, write_object(cluster.rclone.root / bucket / "obj.bin", size)


def wait_for(predicate: Any, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.1)


@pytest.mark.slow
async def test_four_peers_and_a_seed_read_the_origin_once(cluster: Cluster) -> None:
    size = 64 * MiB
    bucket, expected = await asyncio.to_thread(put_object, cluster, size)
    await asyncio.to_thread(cluster.scheduler)
    await asyncio.to_thread(cluster.daemon, "seed", seed=True)
    peers = [await asyncio.to_thread(cluster.daemon, f"peer-{i}") for i in range(4)]
    await asyncio.sleep(1.0)  # health checks and host announcements
    before = cluster.proxy.bytes_from_target
    started = time.monotonic()
    results = await get_all([f"{p.ready['dfstore']}/buckets/{bucket}/objects/obj.bin" for p in peers])
    elapsed = time.monotonic() - started
    origin_bytes = cluster.proxy.bytes_from_target - before
    assert results == [(200, size, expected)] * 4
    assert origin_bytes <= 1.1 * size, f"origin sent {origin_bytes / MiB:.1f} MiB for {size / MiB:.0f} MiB"
    # Results are reported just after the last piece lands, so give them a moment.
    await asyncio.to_thread(wait_for, lambda: len(records(cluster.workdir)) >= 5)
    done = records(cluster.workdir)
    assert len(done) == 5 and all(r["success"] for r in done)
    from_origin = [r for r in done if r["source_bytes"]]
    # The seed alone read the origin; the peers got every piece from parents.
    assert [r["source_bytes"] for r in from_origin] == [size] and from_origin[0]["peer_id"].endswith("_Seed")
    print(f"4 peers x {size // MiB} MiB in {elapsed:.1f}s; origin sent {origin_bytes / MiB:.2f} MiB")


def object_url(daemon: Child, bucket: str) -> str:
    return f"{daemon.ready['dfstore']}/buckets/{bucket}/objects/obj.bin"


@pytest.mark.slow
async def test_parent_killed_mid_transfer(cluster: Cluster) -> None:
    size = 32 * MiB
    bucket, expected = await asyncio.to_thread(put_object, cluster, size)
    await asyncio.to_thread(cluster.scheduler)
    # Slow links so that the kill lands mid-transfer.
    seed = await asyncio.to_thread(cluster.daemon, "seed", seed=True, rate_bps=8 * MiB)
    peers = [await asyncio.to_thread(cluster.daemon, f"peer-{i}", rate_bps=8 * MiB) for i in range(3)]
    await asyncio.sleep(1.0)
    gets = asyncio.ensure_future(get_all([object_url(p, bucket) for p in peers]))
    await asyncio.sleep(1.5)
    assert not gets.done()
    seed.kill()  # the first parent of every peer
    results = await gets
    assert results == [(200, size, expected)] * 3
    await asyncio.to_thread(wait_for, lambda: len([r for r in records(cluster.workdir) if r["success"]]) >= 3)
    peer_records = [r for r in records(cluster.workdir) if not r["peer_id"].endswith("_Seed")]
    assert len(peer_records) == 3 and all(r["success"] for r in peer_records)


@pytest.mark.slow
async def test_lying_parent_is_caught_by_the_digest(cluster: Cluster) -> None:
    size = 32 * MiB  # more pieces than workers: the child cannot finish from the seed before it sees the liar
    bucket, expected = await asyncio.to_thread(put_object, cluster, size)
    await asyncio.to_thread(cluster.scheduler)
    await asyncio.to_thread(cluster.daemon, "seed", seed=True)
    liar, child = [await asyncio.to_thread(cluster.daemon, f"peer-{i}") for i in range(2)]
    await asyncio.sleep(1.0)
    assert await get_all([object_url(liar, bucket)]) == [(200, size, expected)]
    # Rot the liar's data after it was verified: same inode, size and mtime, so it keeps trusting
    # (and serving) these bytes with the digests it recorded when they were good.
    [data] = list((cluster.workdir / "peer-0" / "storage").rglob("data"))
    st = data.stat()
    with open(data, "r+b") as f:
        f.write(b"\xff" * size)
    os.utime(data, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert await get_all([object_url(child, bucket)]) == [(200, size, expected)]
    await asyncio.to_thread(wait_for, lambda: len(records(cluster.workdir)) >= 3)
    liar_id = next(r["peer_id"] for r in records(cluster.workdir) if r["host_id"] and r["source_bytes"] == 0)
    child_record = records(cluster.workdir)[-1]
    assert child_record["success"] and child_record["source_bytes"] == 0  # completed from the seed
    assert child_record["blocked_parents"] == [liar_id]


@pytest.mark.slow
async def test_daemons_serve_without_schedulers_and_rejoin(cluster: Cluster) -> None:
    size = 8 * MiB
    port = free_port()
    address = f"127.0.0.1:{port}"
    # Objects are written up front: the S3 origin caches its bucket list once it is read.
    (bucket1, expected1), (bucket2, expected2), (bucket3, expected3) = [
        await asyncio.to_thread(put_object, cluster, size) for _ in range(3)
    ]
    a, b = [await asyncio.to_thread(cluster.daemon, f"peer-{i}", schedulers=[address]) for i in range(2)]
    # No scheduler yet: straight to the origin.
    before = cluster.proxy.bytes_from_target
    assert await get_all([object_url(a, bucket1), object_url(b, bucket1)]) == [(200, size, expected1)] * 2
    assert cluster.proxy.bytes_from_target - before >= 2 * size  # each read the origin itself

    scheduler = await asyncio.to_thread(cluster.scheduler, port)
    await asyncio.sleep(1.5)  # health checks (0.5 s) notice it
    before = cluster.proxy.bytes_from_target
    assert await get_all([object_url(a, bucket2)]) == [(200, size, expected2)]
    assert await get_all([object_url(b, bucket2)]) == [(200, size, expected2)]
    assert cluster.proxy.bytes_from_target - before < 1.1 * size  # b got it from a
    await asyncio.to_thread(wait_for, lambda: len(records(cluster.workdir)) >= 2)
    assert sorted(r["source_bytes"] for r in records(cluster.workdir)) == [0, size]

    await asyncio.to_thread(scheduler.stop)
    await asyncio.sleep(1.5)
    assert await get_all([object_url(b, bucket3)]) == [(200, size, expected3)]


@pytest.mark.slow
async def test_ranged_reads_go_p2p_through_the_seed(cluster: Cluster) -> None:
    """A ranged GET of an uncached object is its own task; the seed fetches that same range."""
    size = 16 * MiB
    bucket, _ = await asyncio.to_thread(put_object, cluster, size)
    data = (cluster.rclone.root / bucket / "obj.bin").read_bytes()
    await asyncio.to_thread(cluster.scheduler)
    await asyncio.to_thread(cluster.daemon, "seed", seed=True)
    a, b = [await asyncio.to_thread(cluster.daemon, f"peer-{i}") for i in range(2)]
    await asyncio.sleep(1.0)
    start, end = 3 * MiB + 5, 11 * MiB  # inclusive end: 8 MiB - 4 bytes
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for peer in (a, b):
            async with session.get(object_url(peer, bucket), headers={"Range": f"bytes={start}-{end}"}) as resp:
                assert resp.status in (200, 206)  # the dfstore wire answers a range with 200
                assert await resp.read() == data[start : end + 1]
    await asyncio.to_thread(wait_for, lambda: len(records(cluster.workdir)) >= 3)
    done = records(cluster.workdir)
    assert {r["task_id"] for r in done} == {done[0]["task_id"]}  # one ranged task, seed included
    assert [r["source_bytes"] for r in done if r["peer_id"].endswith("_Seed")] == [end + 1 - start]
    assert all(r["source_bytes"] == 0 for r in done if not r["peer_id"].endswith("_Seed"))


@pytest.mark.slow
async def test_small_and_tiny_objects_skip_scheduling_once_a_peer_has_them(cluster: Cluster) -> None:
    """One piece (SMALL): the registration names the finished parent. At most 128 bytes (TINY): the
    registration carries the content. Either way no scheduling round and no origin read."""
    (small, small_expected), (tiny, tiny_expected) = [
        await asyncio.to_thread(put_object, cluster, size) for size in (MiB + 3, 100)
    ]
    await asyncio.to_thread(cluster.scheduler)
    a, b, c = [await asyncio.to_thread(cluster.daemon, f"peer-{i}") for i in range(3)]
    await asyncio.sleep(1.0)
    for n, (bucket, size, expected) in enumerate(((small, MiB + 3, small_expected), (tiny, 100, tiny_expected))):
        assert await get_all([object_url(a, bucket)]) == [(200, size, expected)]
        # The task has succeeded at the scheduler (a's result is in) before the others ask.
        await asyncio.to_thread(wait_for, lambda: len(records(cluster.workdir)) >= 3 * n + 1)  # noqa: B023
        before = cluster.proxy.bytes_from_target
        assert await get_all([object_url(b, bucket), object_url(c, bucket)]) == [(200, size, expected)] * 2
        assert cluster.proxy.bytes_from_target - before < 4096  # HEADs only, no object bytes
    await asyncio.to_thread(wait_for, lambda: len(records(cluster.workdir)) >= 6)
    done = records(cluster.workdir)
    assert all(r["success"] for r in done)
    finished = {(r["task_id"], r["peer_id"]) for r in done}
    followers = [r for r in done if not r["source_bytes"]]
    assert sorted(r["size_scope"] for r in followers) == ["SMALL", "SMALL", "TINY", "TINY"]
    for r in followers:  # SMALL: piece 0 from a peer that had finished; TINY: no parent at all
        [(parent, count)] = r["pieces_from"].items()
        assert count == 1
        if r["size_scope"] == "SMALL":
            assert (r["task_id"], parent) in finished and parent != r["peer_id"]
        else:
            assert parent == ""


@pytest.mark.slow
async def test_seed_holding_the_task_serves_after_a_scheduler_restart(cluster: Cluster) -> None:
    """The scheduler forgot everything; the seed already has the object: triggered, it announces it."""
    size = 8 * MiB
    bucket, expected = await asyncio.to_thread(put_object, cluster, size)
    port = free_port()
    scheduler = await asyncio.to_thread(cluster.scheduler, port)
    await asyncio.to_thread(cluster.daemon, "seed", seed=True)
    a, b = [await asyncio.to_thread(cluster.daemon, f"peer-{i}") for i in range(2)]
    await asyncio.sleep(1.0)
    assert await get_all([object_url(a, bucket)]) == [(200, size, expected)]
    await asyncio.to_thread(wait_for, lambda: len(records(cluster.workdir)) >= 2)

    await asyncio.to_thread(scheduler.stop)
    await asyncio.to_thread(cluster.scheduler, port)
    await asyncio.sleep(2.0)  # health checks and host announcements reach the new scheduler
    before = cluster.proxy.bytes_from_target
    assert await get_all([object_url(b, bucket)]) == [(200, size, expected)]
    assert cluster.proxy.bytes_from_target - before < MiB  # only the HEAD went to the origin
    await asyncio.to_thread(wait_for, lambda: len(records(cluster.workdir)) >= 4)
    seed_record, b_record = records(cluster.workdir)[2:4]
    assert seed_record["peer_id"].endswith("_Seed") and seed_record["success"]
    assert b_record["source_bytes"] == 0 and b_record["pieces_from"] == {seed_record["peer_id"]: 2}


@pytest.mark.slow
async def test_a_restarted_daemon_offers_what_it_holds_on_disk(cluster: Cluster) -> None:
    """Daemon and scheduler restart: the daemon reloads its complete task and offers it, so the
    next peer reads it from that daemon, not from the origin."""
    size = 8 * MiB
    bucket, expected = await asyncio.to_thread(put_object, cluster, size)
    port = free_port()
    scheduler = await asyncio.to_thread(cluster.scheduler, port)
    a = await asyncio.to_thread(cluster.daemon, "peer-a")
    await asyncio.sleep(1.0)
    assert await get_all([object_url(a, bucket)]) == [(200, size, expected)]
    await asyncio.to_thread(wait_for, lambda: len(records(cluster.workdir)) >= 1)
    await asyncio.to_thread(a.stop)
    await asyncio.to_thread(scheduler.stop)  # it forgets every task and peer
    (cluster.workdir / "scheduler" / "records.jsonl").unlink()
    await asyncio.to_thread(cluster.scheduler, port)
    a = await asyncio.to_thread(cluster.daemon, "peer-a")  # same home: the task is on disk
    b = await asyncio.to_thread(cluster.daemon, "peer-b")
    await asyncio.to_thread(
        wait_for, lambda: "offered 1 stored tasks" in (cluster.workdir / "peer-a" / "daemon.log").read_text()
    )
    before = cluster.proxy.bytes_from_target
    assert await get_all([object_url(b, bucket)]) == [(200, size, expected)]
    assert cluster.proxy.bytes_from_target - before < 64 * 1024  # a HEAD, not the object
    await asyncio.to_thread(
        wait_for, lambda: any(r["source_bytes"] == 0 and r["pieces_from"] for r in records(cluster.workdir))
    )
    [reader] = [r for r in records(cluster.workdir) if r["pieces_from"]]
    assert reader["source_bytes"] == 0 and sum(reader["pieces_from"].values()) == 2  # 8 MiB: two pieces


@pytest.mark.slow
async def test_ranges_of_a_block_cross_the_origin_once(cluster: Cluster) -> None:
    """JuiceFS reads its 4 MiB blocks in ranges: the first range fetches the whole block, and ranges
    on other peers come from that task, not from the origin."""
    size = 4 * MiB
    bucket, _ = await asyncio.to_thread(put_object, cluster, size)
    data = (cluster.rclone.root / bucket / "obj.bin").read_bytes()
    await asyncio.to_thread(cluster.scheduler)
    peers = [await asyncio.to_thread(cluster.daemon, f"peer-{i}") for i in range(3)]
    await asyncio.sleep(1.0)
    before = cluster.proxy.bytes_from_target
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for n, peer in enumerate(peers):
            start, end = n * 1_000_000 + 17, n * 1_000_000 + 300_000
            async with session.get(object_url(peer, bucket), headers={"Range": f"bytes={start}-{end}"}) as resp:
                assert resp.status == 200  # the dfstore wire answers a range with 200
                assert await resp.read() == data[start : end + 1]
    origin_bytes = cluster.proxy.bytes_from_target - before
    assert size <= origin_bytes < size + 64 * 1024, f"origin sent {origin_bytes} bytes"
    await asyncio.to_thread(wait_for, lambda: len(records(cluster.workdir)) >= 3)
    done = records(cluster.workdir)
    assert {r["task_id"] for r in done} == {done[0]["task_id"]}  # one whole-object task
    assert sorted(r["source_bytes"] for r in done) == [0, 0, size]


@pytest.mark.slow
async def test_a_parent_with_a_wrong_copy_and_matching_digests_is_not_believed(cluster: Cluster) -> None:
    """A parent whose stored bytes and recorded digests are both wrong (it checks out against itself)
    is caught by the digests the origin reader reported to the scheduler: nothing is fetched from it."""
    from p2p.common.digest import piece_digest, task_digest

    size = 16 * MiB
    bucket, expected = await asyncio.to_thread(put_object, cluster, size)
    await asyncio.to_thread(cluster.scheduler)
    await asyncio.to_thread(cluster.daemon, "seed", seed=True)
    liar = await asyncio.to_thread(cluster.daemon, "peer-0")
    await asyncio.sleep(1.0)
    assert await get_all([object_url(liar, bucket)]) == [(200, size, expected)]
    await asyncio.to_thread(wait_for, lambda: len(records(cluster.workdir)) >= 2)
    await asyncio.to_thread(liar.stop)
    [data] = list((cluster.workdir / "peer-0" / "storage").rglob("data"))
    meta_path = data.with_name("metadata.json")
    meta = json.loads(meta_path.read_text())
    with open(data, "r+b") as f:
        for piece in meta["pieces"]:  # new bytes, and digests that match them
            f.seek(piece[1])
            f.write(os.urandom(piece[2]))
            f.seek(piece[1])
            piece[3] = piece_digest(f.read(piece[2]))
    meta["task_digest"] = task_digest(p[3] for p in meta["pieces"])
    meta_path.write_text(json.dumps(meta))
    liar = await asyncio.to_thread(cluster.daemon, "peer-0")  # reloads its copy and offers it
    child = await asyncio.to_thread(cluster.daemon, "peer-1")
    log = cluster.workdir / "peer-0" / "daemon.log"
    await asyncio.to_thread(wait_for, lambda: "offered 1 stored tasks" in log.read_text())
    assert await get_all([object_url(child, bucket)]) == [(200, size, expected)]
    await asyncio.to_thread(wait_for, lambda: any(r["blocked_parents"] for r in records(cluster.workdir)))
    child_record = next(r for r in records(cluster.workdir) if r["blocked_parents"])
    assert child_record["success"] and child_record["source_bytes"] == 0
    liar_id = next(iter(child_record["blocked_parents"]))
    assert f"-{liar.ready['pid']}-" in liar_id and liar_id not in child_record["pieces_from"]
