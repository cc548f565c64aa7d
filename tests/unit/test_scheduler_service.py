"""SchedulerService rules, driven in-process with a fake clock (no network)."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

from p2p.common.digest import piece_digest
from p2p.proto.values import (
    Code,
    HostInfo,
    HostType,
    PeerPacket,
    PeerResult,
    PieceReport,
    RegisterResult,
    Registration,
    ReportKind,
    SizeScope,
    TaskSpec,
)
from p2p.scheduler.config import RecordsSection, SchedulerConfig
from p2p.scheduler.fsm import PeerState, TaskState
from p2p.scheduler.records import RecordWriter
from p2p.scheduler.service import SchedulerService
from p2p.types import HostID, PeerID, PieceInfo, SourceStat, TaskID

TASK = TaskID("t1")
SPEC = TaskSpec(url="dfs://b/k", stat=SourceStat(size=4 * 10, version="v"), piece_size=4)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def config(**scheduling: object) -> SchedulerConfig:
    base = {"retry_interval_s": 0.001, "back_to_source_count": 1, "seed_trigger_wait_s": 1.0}
    return SchedulerConfig.model_validate({"scheduling": base | scheduling})


def host(name: str, seed: bool = False) -> HostInfo:
    return HostInfo(
        id=HostID(name),
        ip="127.0.0.1",
        hostname=name,
        download_port=1,
        rpc_port=2 if seed else 0,
        type=HostType.SUPER_SEED if seed else HostType.NORMAL,
    )


class RecordingSeeds:
    """The seed trigger the service calls, recording which tasks it was asked to fetch."""

    def __init__(self) -> None:
        self.triggered: list[TaskID] = []

    async def trigger(self, host: HostInfo, task_id: TaskID, spec: TaskSpec) -> None:
        self.triggered.append(task_id)


class Harness:
    def __init__(self, svc: SchedulerService) -> None:
        self.svc = svc
        self.inbox: dict[str, list[PeerPacket]] = {}
        self.registered: dict[PeerID, RegisterResult] = {}

    def join(
        self,
        name: str,
        *,
        seed: bool = False,
        task: TaskID = TASK,
        spec: TaskSpec = SPEC,
        scope: SizeScope = SizeScope.NORMAL,
    ) -> PeerID:
        pid = PeerID(f"peer-{name}")
        self.registered[pid] = self.svc.register_peer(
            Registration(task_id=task, peer_id=pid, host=host(name, seed), spec=spec)
        )
        assert self.registered[pid].scope is scope
        box = self.inbox.setdefault(pid, [])
        self.svc.attach(pid, box.append)
        assert self.svc.handle_report(PieceReport(kind=ReportKind.BEGIN, task_id=task, peer_id=pid)) is Code.OK
        return pid

    async def packet(self, pid: PeerID) -> PeerPacket:
        for _ in range(500):
            if self.inbox[pid]:
                return self.inbox[pid].pop(0)
            await asyncio.sleep(0.002)
        raise AssertionError(f"no packet for {pid}")

    def piece(self, pid: PeerID, n: int, parent: PeerID | None = None, ok: bool = True, code: Code = Code.OK) -> None:
        info = PieceInfo(number=n, offset=n * 4, size=4, digest="d")
        self.svc.handle_report(
            PieceReport(
                kind=ReportKind.PIECE,
                task_id=TASK,
                peer_id=pid,
                parent_id=parent,
                piece=info,
                success=ok,
                code=code,
            )
        )

    def state(self, pid: PeerID) -> PeerState:
        return self.svc.res.peers[pid].state


async def test_first_peer_to_origin_then_others_get_it_as_parent() -> None:
    h = Harness(SchedulerService(config(), rng=random.Random(0)))
    a = h.join("a")
    assert (await h.packet(a)).code is Code.NEED_BACK_TO_SOURCE
    assert h.state(a) is PeerState.BACK_TO_SOURCE
    b = h.join("b")
    pkt = await h.packet(b)
    assert pkt.code is Code.OK and [p.peer_id for p in pkt.parents] == [a]
    # Budget used: a third peer gets parents, never the origin.
    h.piece(b, 0, parent=a)
    c = h.join("c")
    pkt = await h.packet(c)
    assert pkt.code is Code.OK and {p.peer_id for p in pkt.parents} == {a, b}
    await h.svc.aclose()


async def test_failed_parent_is_blocked_and_child_rescheduled() -> None:
    h = Harness(SchedulerService(config(), rng=random.Random(0)))
    a = h.join("a")
    await h.packet(a)
    b = h.join("b")
    await h.packet(b)
    h.piece(b, 0, parent=a)
    c = h.join("c")
    assert {p.peer_id for p in (await h.packet(c)).parents} == {a, b}
    h.piece(c, 1, parent=b, ok=False, code=Code.DIGEST_MISMATCH)
    pkt = await h.packet(c)
    assert [p.peer_id for p in pkt.parents] == [a]
    assert h.svc.res.hosts[HostID("b")].upload_failed_count == 1
    await h.svc.aclose()


async def test_leaving_parent_reschedules_children_and_releases_slots() -> None:
    h = Harness(SchedulerService(config(), rng=random.Random(0)))
    a = h.join("a")
    await h.packet(a)
    b = h.join("b")
    await h.packet(b)
    h.piece(b, 0, parent=a)
    c = h.join("c")
    await h.packet(c)
    h.svc.leave_peer(TASK, a)
    assert a not in h.svc.res.peers
    assert h.svc.res.hosts[HostID("a")].concurrent_upload_count == 0
    # b lost its only parent, so it cannot serve either: one of b and c takes the freed origin budget
    # and the other is given it as parent.
    pb_, pc = await h.packet(b), await h.packet(c)
    codes = sorted([pb_.code, pc.code])
    assert codes == [Code.OK, Code.NEED_BACK_TO_SOURCE]
    at_origin = b if pb_.code is Code.NEED_BACK_TO_SOURCE else c
    other = pc if at_origin == b else pb_
    assert [p.peer_id for p in other.parents] == [at_origin]
    await h.svc.aclose()


async def test_register_for_succeeded_task() -> None:
    h = Harness(SchedulerService(config(), rng=random.Random(0)))
    a = h.join("a")
    await h.packet(a)
    await h.svc.report_peer_result(PeerResult(task_id=TASK, peer_id=a, success=True, content_length=40))
    assert h.svc.res.tasks[TASK].state is TaskState.SUCCEEDED
    b = h.join("b")
    assert h.svc.res.tasks[TASK].state is TaskState.SUCCEEDED  # stays done: a has every piece
    pkt = await h.packet(b)
    assert pkt.code is Code.OK and pkt.parents[0].peer_id == a and pkt.parents[0].finished
    # With every peer gone, a new registration restarts the task.
    h.svc.leave_peer(TASK, a)
    h.svc.leave_peer(TASK, b)
    c = h.join("c")
    assert h.svc.res.tasks[TASK].state is TaskState.RUNNING
    assert (await h.packet(c)).code is Code.NEED_BACK_TO_SOURCE
    await h.svc.aclose()


async def test_no_parent_and_no_budget_gives_up() -> None:
    h = Harness(SchedulerService(config(back_to_source_count=0, retry_limit=3, retry_back_to_source_limit=1)))
    a = h.join("a")
    assert (await h.packet(a)).code is Code.TASK_STATUS_ERROR
    await h.svc.aclose()


async def test_origin_failure_fails_the_task_and_a_new_peer_restarts_it() -> None:
    h = Harness(SchedulerService(config(), rng=random.Random(0)))
    a = h.join("a")
    await h.packet(a)
    await h.svc.report_peer_result(PeerResult(task_id=TASK, peer_id=a, success=False, code=Code.BACK_SOURCE_ERROR))
    assert h.svc.res.tasks[TASK].state is TaskState.FAILED
    assert h.state(a) is PeerState.FAILED
    b = h.join("b")
    assert (await h.packet(b)).code is Code.NEED_BACK_TO_SOURCE
    assert h.svc.res.tasks[TASK].state is TaskState.RUNNING
    await h.svc.aclose()


async def test_seed_trigger_and_peers_wait_for_the_seed() -> None:
    seeds = RecordingSeeds()
    h = Harness(SchedulerService(config(), seeds=seeds, rng=random.Random(0)))
    h.svc.announce_host(host("seed", seed=True))
    a = h.join("a")
    await asyncio.sleep(0.02)
    assert seeds.triggered == [TASK]
    assert not h.inbox[a]  # waiting for the seed, not sent to the origin
    s = h.join("seed", seed=True)
    assert (await h.packet(s)).code is Code.NEED_BACK_TO_SOURCE
    pkt = await h.packet(a)
    assert [p.peer_id for p in pkt.parents] == [s]
    await h.svc.aclose()


async def test_a_seed_goes_to_the_origin_at_once_unless_a_copy_exists() -> None:
    """Peers that merely registered have nothing for the seed: it is sent to the origin without the
    parent search and its retry interval (5 s here) in between."""

    h = Harness(SchedulerService(config(retry_interval_s=5.0), seeds=RecordingSeeds(), rng=random.Random(0)))
    h.svc.announce_host(host("seed", seed=True))
    waiting = [h.join("a"), h.join("b")]
    s = h.join("seed", seed=True)
    assert (await asyncio.wait_for(h.packet(s), 1)).code is Code.NEED_BACK_TO_SOURCE
    assert all(h.state(p) is PeerState.RUNNING for p in waiting)
    await h.svc.aclose()

    # Another peer already reads the origin: the seed pipelines behind it instead of a second read.
    h = Harness(SchedulerService(config(), rng=random.Random(0)))
    a = h.join("a")
    assert (await h.packet(a)).code is Code.NEED_BACK_TO_SOURCE
    h.piece(a, 0)
    s = h.join("seed", seed=True)
    pkt = await h.packet(s)
    assert pkt.code is Code.OK and [p.peer_id for p in pkt.parents] == [a]
    await h.svc.aclose()


async def test_unknown_peer_must_reregister() -> None:
    svc = SchedulerService(config())
    report = PieceReport(kind=ReportKind.BEGIN, task_id=TASK, peer_id=PeerID("ghost"))
    assert svc.handle_report(report) is Code.REREGISTER


async def test_gc() -> None:
    clock = Clock()
    svc = SchedulerService(config(), clock=clock)
    h = Harness(svc)
    a = h.join("a")
    await h.packet(a)
    assert svc.gc_peers() == 0
    clock.now += svc.config.gc.piece_download_timeout_s + 1  # a stalled origin download
    assert svc.gc_peers() == 1 and a not in svc.res.peers
    assert svc.gc_tasks() == 1 and TASK not in svc.res.tasks
    assert svc.gc_hosts() == 1 and not svc.res.hosts
    await svc.aclose()


async def test_records_unbuffered_are_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    svc = SchedulerService(config(), records=RecordWriter(RecordsSection(path=str(path), buffer_size=0)))
    h = Harness(svc)
    a = h.join("a")
    await h.packet(a)
    await svc.report_peer_result(PeerResult(task_id=TASK, peer_id=a, success=True, source_bytes=40))
    lines = path.read_text().splitlines()  # before aclose: nothing held back
    assert len(lines) == 1 and json.loads(lines[0])["source_bytes"] == 40
    await svc.aclose()


async def test_records_rotate(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    writer = RecordWriter(RecordsSection(path=str(path), buffer_size=0, max_size_bytes=100, max_backups=2))
    for i in range(20):
        await writer.write({"i": i, "pad": "x" * 20})
    assert path.exists() and (tmp_path / "r.jsonl.1").exists() and (tmp_path / "r.jsonl.2").exists()
    assert not (tmp_path / "r.jsonl.3").exists()
    last = json.loads(path.read_text().splitlines()[-1])
    assert last["i"] == 19


async def test_unreachable_parent_is_failed_and_frees_the_origin_budget() -> None:
    h = Harness(SchedulerService(config(), rng=random.Random(0)))
    a = h.join("a")
    await h.packet(a)
    b = h.join("b")
    await h.packet(b)
    c = h.join("c")
    await h.packet(c)
    h.piece(b, 0, parent=a, ok=False, code=Code.CONNECTION_ERROR)  # a's process died
    assert h.state(a) is PeerState.FAILED
    assert not h.svc.res.tasks[TASK].back_to_source_peers
    codes = sorted([(await h.packet(b)).code, (await h.packet(c)).code])
    assert codes == [Code.OK, Code.NEED_BACK_TO_SOURCE]  # one of them takes over the origin read
    await h.svc.aclose()


async def test_ranged_task_is_sized_by_its_range() -> None:
    from p2p.types import ByteRange

    svc = SchedulerService(config())
    spec = TaskSpec(url="dfs://b/k", stat=SourceStat(size=1000, version="v"), piece_size=4, byte_range=ByteRange(8, 10))
    reg = Registration(task_id=TaskID("r"), peer_id=PeerID("p"), host=host("a"), spec=spec)
    svc.register_peer(reg)
    task = svc.res.tasks[TaskID("r")]
    assert (task.content_length, task.total_piece_count) == (10, 3)


async def test_retried_registration_is_idempotent() -> None:
    h = Harness(SchedulerService(config(), rng=random.Random(0)))
    a = h.join("a")
    await h.packet(a)
    again = Registration(task_id=TASK, peer_id=a, host=host("a"), spec=SPEC)
    assert h.svc.register_peer(again).scope is SizeScope.NORMAL
    assert h.state(a) is PeerState.BACK_TO_SOURCE
    await h.svc.aclose()


def one_piece_task(content: bytes) -> tuple[TaskID, TaskSpec]:
    return TaskID(f"t-{len(content)}"), TaskSpec(
        url="dfs://b/small", stat=SourceStat(size=len(content), version="v"), piece_size=4096
    )


async def finish_from_origin(h: Harness, pid: PeerID, task: TaskID, content: bytes, direct: bytes) -> None:
    """`pid` read the one piece from the origin and succeeded, offering `direct` as the TINY content."""
    assert (await h.packet(pid)).code is Code.NEED_BACK_TO_SOURCE
    piece = PieceInfo(number=0, offset=0, size=len(content), digest=piece_digest(content))
    h.svc.handle_report(PieceReport(kind=ReportKind.PIECE, task_id=task, peer_id=pid, piece=piece))
    result = PeerResult(task_id=task, peer_id=pid, success=True, content_length=len(content), direct_piece=direct)
    await h.svc.report_peer_result(result)


async def test_a_small_task_that_succeeded_names_a_finished_parent_at_registration() -> None:
    content = bytes(range(200)) * 5  # 1000 bytes: one piece
    task, spec = one_piece_task(content)
    h = Harness(SchedulerService(config(retry_interval_s=5.0), rng=random.Random(0)))
    a = h.join("a", task=task, spec=spec)
    # Still running: the normal way.
    b = h.join("b", task=task, spec=spec)
    await finish_from_origin(h, a, task, content, direct=b"")
    c = h.join("c", task=task, spec=spec, scope=SizeScope.SMALL)
    small = h.registered[c]
    assert small.parent is not None and small.parent.peer_id == a and small.parent.finished
    assert small.piece == PieceInfo(number=0, offset=0, size=1000, digest=piece_digest(content))
    assert h.state(c) is PeerState.RUNNING and not h.inbox[c]  # no scheduling round
    assert a in {p.id for p in h.svc.res.peers[c].parents}  # the upload slot is taken
    # The parent fails it: blocked, and the peer is scheduled the normal way (b is the one left).
    h.piece(c, 0, parent=a, ok=False, code=Code.DIGEST_MISMATCH)
    assert b in h.svc.res.peers
    await h.svc.aclose()


async def test_a_tiny_task_that_succeeded_comes_with_the_registration() -> None:
    content = b"tiny object"
    task, spec = one_piece_task(content)
    h = Harness(SchedulerService(config(), rng=random.Random(0)))
    a = h.join("a", task=task, spec=spec)
    await finish_from_origin(h, a, task, content, direct=content)
    b = h.join("b", task=task, spec=spec, scope=SizeScope.TINY)
    assert h.registered[b].content == content and h.registered[b].piece is not None
    assert h.state(b) is PeerState.RUNNING and not h.inbox[b]
    await h.svc.aclose()


async def test_tiny_content_that_does_not_match_the_origin_digest_is_not_kept() -> None:
    content = b"tiny object"
    task, spec = one_piece_task(content)
    h = Harness(SchedulerService(config(), rng=random.Random(0)))
    a = h.join("a", task=task, spec=spec)
    await finish_from_origin(h, a, task, content, direct=b"tiny objecT")
    assert h.svc.res.tasks[task].direct_piece is None
    b = h.join("b", task=task, spec=spec, scope=SizeScope.SMALL)  # from the finished parent instead
    assert h.registered[b].parent is not None and h.registered[b].content == b""
    await h.svc.aclose()


async def test_a_complete_registration_is_a_succeeded_parent_and_triggers_no_seed() -> None:
    """A writer (or a seed with the task on disk) announces a task it holds in full."""
    seeds = RecordingSeeds()
    h = Harness(SchedulerService(config(), seeds=seeds, rng=random.Random(0)))
    h.svc.announce_host(host("seed", seed=True))
    content = bytes(range(250)) * 4  # one piece
    task, spec = one_piece_task(content)
    piece = PieceInfo(number=0, offset=0, size=len(content), digest=piece_digest(content))
    writer = PeerID("peer-writer")
    reg = Registration(task_id=task, peer_id=writer, host=host("writer"), spec=spec, complete=True, pieces=(piece,))
    assert h.svc.register_peer(reg).scope is SizeScope.NORMAL
    await asyncio.sleep(0.02)
    assert seeds.triggered == [] and h.state(writer) is PeerState.SUCCEEDED
    assert h.svc.res.tasks[task].state is TaskState.SUCCEEDED
    # Its pieces stand for the origin's: the next peer of this one-piece task takes the shortcut.
    b = h.join("b", task=task, spec=spec, scope=SizeScope.SMALL)
    parent = h.registered[b].parent
    assert parent is not None and parent.peer_id == writer
    assert h.registered[b].piece == piece
    await h.svc.aclose()
