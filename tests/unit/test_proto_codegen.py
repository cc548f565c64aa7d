"""The committed generated code matches what scripts/gen_proto produces, and values survive a round trip."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from p2p.proto import convert
from p2p.proto.values import (
    Code,
    HostInfo,
    HostType,
    ParentInfo,
    PeerPacket,
    PeerResult,
    PieceReport,
    Registration,
    ReportKind,
    TaskSpec,
    TaskStat,
)
from p2p.types import ByteRange, HostID, PeerID, PieceInfo, SourceStat, TaskID

ROOT = Path(__file__).resolve().parents[2]
GENERATED = [f"{proto}_pb2{suffix}" for proto in ("scheduler", "manager") for suffix in (".py", ".pyi", "_grpc.py")]


def test_generated_code_is_fresh(tmp_path: Path) -> None:
    subprocess.run(
        ["bash", str(ROOT / "scripts" / "gen_proto"), str(tmp_path)],
        check=True,
        env={"PYTHON": sys.executable, "PATH": "/usr/bin:/bin"},
    )
    for name in GENERATED:
        fresh = (tmp_path / "p2p" / "proto" / name).read_text()
        committed = (ROOT / "p2p" / "proto" / name).read_text()
        assert fresh == committed, f"p2p/proto/{name} is stale: run scripts/gen_proto"


HOST = HostInfo(
    id=HostID("h1"),
    ip="10.0.0.1",
    hostname="a",
    download_port=65002,
    rpc_port=65000,
    type=HostType.SUPER_SEED,
    idc="x",
    location="cn|sh",
    upload_limit=300,
)
SPEC = TaskSpec(url="dfs://b/k", stat=SourceStat(size=10, version="v1", content_type="text/plain"), piece_size=4)


def test_round_trips() -> None:
    reg = Registration(task_id=TaskID("t"), peer_id=PeerID("p"), host=HOST, spec=SPEC)
    assert convert.registration_from_pb(convert.registration_to_pb(reg)) == reg
    piece = PieceInfo(number=2, offset=8, size=2, digest="ab")
    for report in (
        PieceReport(
            kind=ReportKind.PIECE,
            task_id=TaskID("t"),
            peer_id=PeerID("p"),
            parent_id=PeerID("q"),
            piece=piece,
            success=False,
            code=Code.DIGEST_MISMATCH,
            cost_ms=3,
            finished_count=1,
        ),
        PieceReport(kind=ReportKind.BEGIN, task_id=TaskID("t"), peer_id=PeerID("p")),
    ):
        assert convert.report_from_pb(convert.report_to_pb(report)) == report
    packet = PeerPacket(
        task_id=TaskID("t"),
        peer_id=PeerID("p"),
        parents=(
            ParentInfo(
                peer_id=PeerID("q"), host_id=HostID("h"), ip="1.2.3.4", download_port=5, finished=True, seed=True
            ),
        ),
        parallel_count=3,
        code=Code.NEED_BACK_TO_SOURCE,
        description="go",
    )
    assert convert.packet_from_pb(convert.packet_to_pb(packet)) == packet
    result = PeerResult(
        task_id=TaskID("t"),
        peer_id=PeerID("p"),
        success=True,
        content_length=10,
        total_piece_count=3,
        cost_ms=4,
        source_bytes=10,
    )
    assert convert.result_from_pb(convert.result_to_pb(result)) == result
    stat = TaskStat(
        task_id=TaskID("t"),
        state="Running",
        content_length=1,
        total_piece_count=1,
        peer_count=2,
        back_to_source_peer_count=1,
    )
    assert convert.task_stat_from_pb(convert.task_stat_to_pb(stat)) == stat
    assert convert.trigger_from_pb(convert.trigger_to_pb(TaskID("t"), SPEC)) == (TaskID("t"), SPEC)


def test_ranged_spec_round_trip() -> None:
    ranged = TaskSpec(
        url="dfs://b/k", stat=SourceStat(size=100, version="v"), piece_size=4, byte_range=ByteRange(10, 20)
    )
    back = convert.spec_from_pb(convert.spec_to_pb(ranged))
    assert back == ranged and back.content_length == 20
    assert convert.spec_from_pb(convert.spec_to_pb(SPEC)).byte_range is None


def test_unknown_code_maps_to_sched_error() -> None:
    msg = convert.packet_to_pb(PeerPacket(task_id=TaskID("t"), peer_id=PeerID("p")))
    msg.code = 1234  # type: ignore[assignment]
    assert convert.packet_from_pb(msg).code is Code.SCHED_ERROR
