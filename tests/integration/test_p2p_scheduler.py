"""The scheduler as a real process: ready file, health service, registration and the report stream over gRPC."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from p2p.clients.scheduler import SchedulerClient
from p2p.errors import TaskNotFound
from p2p.proto.values import (
    Code,
    HostInfo,
    PeerPacket,
    PeerResult,
    PieceReport,
    Registration,
    ReportKind,
    SizeScope,
    TaskSpec,
)
from p2p.types import HostID, PeerID, SourceStat, TaskID

SPEC = TaskSpec(url="dfs://b/k", stat=SourceStat(size=40, version="v"), piece_size=4)


def start_scheduler(tmp_path: Path, **extra: object) -> tuple[subprocess.Popen[bytes], str]:
    cfg = {"server": {"listen": "127.0.0.1", "port": 0}} | extra
    (tmp_path / "scheduler.yaml").write_text(yaml.safe_dump(cfg))
    ready = tmp_path / "ready.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "p2p.scheduler",
            "--config",
            str(tmp_path / "scheduler.yaml"),
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "scheduler.log", "wb"),
    )
    deadline = time.monotonic() + 10
    while not ready.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError((tmp_path / "scheduler.log").read_text())
        time.sleep(0.05)
    return proc, json.loads(ready.read_text())["address"]


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def scheduler(tmp_path: Path) -> Iterator[str]:
    proc, address = start_scheduler(tmp_path, records={"path": str(tmp_path / "records.jsonl"), "buffer_size": 0})
    yield address
    stop(proc)
    assert proc.returncode == 0


def registration(name: str) -> Registration:
    info = HostInfo(id=HostID(name), ip="127.0.0.1", hostname=name, download_port=1)
    return Registration(task_id=TaskID("task-1"), peer_id=PeerID(f"peer-{name}"), host=info, spec=SPEC)


async def test_register_and_schedule_over_grpc(scheduler: str, tmp_path: Path) -> None:
    client = SchedulerClient([scheduler])
    assert await client.check_health() == [scheduler]
    reg_a, reg_b = registration("a"), registration("b")
    address, registered = await client.register(reg_a)
    assert address == scheduler and registered.scope is SizeScope.NORMAL
    stream_a = client.open_reports(address)
    await stream_a.send(PieceReport(kind=ReportKind.BEGIN, task_id=reg_a.task_id, peer_id=reg_a.peer_id))
    packets_a = stream_a.packets()
    first = await asyncio.wait_for(anext(packets_a), 5)
    assert first.code is Code.NEED_BACK_TO_SOURCE

    await client.register(reg_b)
    stream_b = client.open_reports(address)
    await stream_b.send(PieceReport(kind=ReportKind.BEGIN, task_id=reg_b.task_id, peer_id=reg_b.peer_id))
    packet = await asyncio.wait_for(anext(stream_b.packets()), 5)
    assert packet.code is Code.OK and [p.peer_id for p in packet.parents] == [reg_a.peer_id]

    stat = await client.stat_task(reg_a.task_id)
    assert stat.state == "Running" and stat.peer_count == 2 and stat.back_to_source_peer_count == 1
    with pytest.raises(TaskNotFound):
        await client.stat_task(TaskID("nope"))

    await client.report_result(address, PeerResult(task_id=reg_a.task_id, peer_id=reg_a.peer_id, success=True))
    assert (await client.stat_task(reg_a.task_id)).state == "Succeeded"
    records = (tmp_path / "records.jsonl").read_text().splitlines()
    assert json.loads(records[0])["peer_id"] == reg_a.peer_id
    for stream in (stream_a, stream_b):
        await stream.close()
        stream.cancel()
    await client.aclose()


async def test_unknown_peer_is_told_to_reregister(scheduler: str) -> None:
    client = SchedulerClient([scheduler])
    await client.check_health()
    stream = client.open_reports(scheduler)
    await stream.send(PieceReport(kind=ReportKind.BEGIN, task_id=TaskID("t"), peer_id=PeerID("ghost")))
    packet = await asyncio.wait_for(anext(stream.packets()), 5)
    assert packet.code is Code.REREGISTER
    stream.cancel()
    await client.aclose()


async def test_no_scheduler_reachable(tmp_path: Path) -> None:
    client = SchedulerClient(["127.0.0.1:1"])
    assert await client.check_health() == []
    assert client.pick(TaskID("t")) is None
    await client.aclose()


def test_bad_config_exits_2(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("server: {port: -1}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "p2p.scheduler", "--config", str(tmp_path / "bad.yaml")],
        capture_output=True,
        timeout=30,
        env=os.environ.copy(),
    )
    assert proc.returncode == 2 and b"server.port" in proc.stderr


async def test_piece_reports_keep_flowing_after_the_packet_reader_stops(scheduler: str, tmp_path: Path) -> None:
    """A peer sent to the origin stops reading packets but keeps reporting pieces on the same stream."""
    from p2p.types import PieceInfo

    client = SchedulerClient([scheduler])
    await client.check_health()
    reg = registration("a")
    address, _ = await client.register(reg)
    stream = client.open_reports(address)
    await stream.send(PieceReport(kind=ReportKind.BEGIN, task_id=reg.task_id, peer_id=reg.peer_id))

    async def first_packet() -> Code:
        packets = stream.packets()
        return (await anext(packets)).code

    assert await asyncio.wait_for(first_packet(), 5) is Code.NEED_BACK_TO_SOURCE
    for n in range(10):
        piece = PieceInfo(number=n, offset=n * 4, size=4, digest="d")
        await stream.send(PieceReport(kind=ReportKind.PIECE, task_id=reg.task_id, peer_id=reg.peer_id, piece=piece))
        await asyncio.sleep(0.01)
    await stream.send(PieceReport(kind=ReportKind.END, task_id=reg.task_id, peer_id=reg.peer_id))
    await client.report_result(address, PeerResult(task_id=reg.task_id, peer_id=reg.peer_id, success=True))
    [record] = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert record["pieces_from"] == {"": 10}
    await stream.close()
    stream.cancel()
    await client.aclose()


async def test_concurrent_reports_on_one_stream(scheduler: str, tmp_path: Path) -> None:
    """Several piece workers report at once; gRPC allows one write in flight, so the stream serializes."""
    from p2p.types import PieceInfo

    client = SchedulerClient([scheduler])
    await client.check_health()
    reg = registration("a")
    address, _ = await client.register(reg)
    stream = client.open_reports(address)
    await stream.send(PieceReport(kind=ReportKind.BEGIN, task_id=reg.task_id, peer_id=reg.peer_id))

    async def report(n: int) -> None:
        piece = PieceInfo(number=n, offset=n * 4, size=4, digest="d")
        await stream.send(PieceReport(kind=ReportKind.PIECE, task_id=reg.task_id, peer_id=reg.peer_id, piece=piece))

    await asyncio.gather(*(report(n) for n in range(300)))
    await stream.send(PieceReport(kind=ReportKind.END, task_id=reg.task_id, peer_id=reg.peer_id))
    await stream.close()
    # As the daemon does: the scheduler ends its side once it has read END, so every report is counted.
    async def drain() -> list[PeerPacket]:
        return [p async for p in stream.packets()]

    leftover = await asyncio.wait_for(drain(), 10)
    await client.report_result(address, PeerResult(task_id=reg.task_id, peer_id=reg.peer_id, success=True))
    assert all(p.code is not Code.REREGISTER for p in leftover)
    [record] = [json.loads(line) for line in (tmp_path / "records.jsonl").read_text().splitlines()]
    assert record["pieces_from"] == {"": 300}
    stream.cancel()
    await client.aclose()


def test_print_config_masks_secrets(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("scheduling: {candidate_parent_limit: 7}\n")
    env = os.environ | {"DFLY_SCHEDULER__MANAGER__COMPONENT_TOKEN": "supersecret"}
    proc = subprocess.run(
        [sys.executable, "-m", "p2p.scheduler", "--config", str(tmp_path / "s.yaml"), "--print-config"],
        capture_output=True,
        timeout=30,
        env=env,
    )
    assert proc.returncode == 0
    printed = yaml.safe_load(proc.stdout)
    assert printed["scheduling"]["candidate_parent_limit"] == 7
    assert b"supersecret" not in proc.stdout
