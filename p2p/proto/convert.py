"""Protobuf <-> value types. The only module that builds or reads protobuf messages."""

from __future__ import annotations

from p2p.proto import scheduler_pb2 as pb
from p2p.proto.values import (
    Code,
    HostInfo,
    HostType,
    ParentInfo,
    PeerPacket,
    PeerResult,
    PieceReport,
    PreheatResult,
    PreheatSpec,
    ProbeResult,
    RegisterResult,
    Registration,
    ReportKind,
    SizeScope,
    TaskSpec,
    TaskStat,
    TopologyEdge,
)
from p2p.types import ByteRange, HostID, PeerID, PieceInfo, SourceStat, TaskID


def _code(value: int) -> Code:
    try:
        return Code(value)
    except ValueError:
        return Code.SCHED_ERROR


def host_to_pb(host: HostInfo) -> pb.Host:
    return pb.Host(
        id=host.id,
        ip=host.ip,
        hostname=host.hostname,
        rpc_port=host.rpc_port,
        download_port=host.download_port,
        type=int(host.type),  # type: ignore[arg-type]
        idc=host.idc,
        location=host.location,
        upload_limit=host.upload_limit,
    )


def host_from_pb(msg: pb.Host) -> HostInfo:
    return HostInfo(
        id=HostID(msg.id),
        ip=msg.ip,
        hostname=msg.hostname,
        rpc_port=msg.rpc_port,
        download_port=msg.download_port,
        type=HostType(msg.type),
        idc=msg.idc,
        location=msg.location,
        upload_limit=msg.upload_limit,
    )


def spec_to_pb(spec: TaskSpec) -> pb.TaskSource:
    return pb.TaskSource(
        url=spec.url,
        size=spec.stat.size,
        version=spec.stat.version,
        content_type=spec.stat.content_type,
        piece_size=spec.piece_size,
        ranged=spec.byte_range is not None,
        range_start=spec.byte_range.start if spec.byte_range is not None else 0,
        range_length=spec.byte_range.length if spec.byte_range is not None else 0,
    )


def spec_from_pb(msg: pb.TaskSource) -> TaskSpec:
    stat = SourceStat(size=msg.size, version=msg.version, content_type=msg.content_type)
    byte_range = ByteRange(start=msg.range_start, length=msg.range_length) if msg.ranged else None
    return TaskSpec(url=msg.url, stat=stat, piece_size=msg.piece_size, byte_range=byte_range)


def piece_to_pb(piece: PieceInfo) -> pb.Piece:
    return pb.Piece(number=piece.number, offset=piece.offset, size=piece.size, digest=piece.digest)


def piece_from_pb(msg: pb.Piece) -> PieceInfo:
    return PieceInfo(number=msg.number, offset=msg.offset, size=msg.size, digest=msg.digest)


def registration_to_pb(reg: Registration) -> pb.RegisterPeerRequest:
    return pb.RegisterPeerRequest(
        task_id=reg.task_id,
        peer_id=reg.peer_id,
        host=host_to_pb(reg.host),
        source=spec_to_pb(reg.spec),
        complete=reg.complete,
        pieces=[piece_to_pb(p) for p in reg.pieces],
    )


def registration_from_pb(msg: pb.RegisterPeerRequest) -> Registration:
    return Registration(
        task_id=TaskID(msg.task_id),
        peer_id=PeerID(msg.peer_id),
        host=host_from_pb(msg.host),
        spec=spec_from_pb(msg.source),
        complete=msg.complete,
        pieces=tuple(piece_from_pb(p) for p in msg.pieces),
    )


def register_result_to_pb(task_id: TaskID, result: RegisterResult) -> pb.RegisterPeerResponse:
    msg = pb.RegisterPeerResponse(
        task_id=task_id,
        size_scope=int(result.scope),  # type: ignore[arg-type]
        content=result.content,
    )
    if result.parent is not None:
        msg.parent.CopyFrom(parent_to_pb(result.parent))
    if result.piece is not None:
        msg.piece.CopyFrom(piece_to_pb(result.piece))
    return msg


def register_result_from_pb(msg: pb.RegisterPeerResponse) -> RegisterResult:
    return RegisterResult(
        scope=SizeScope(msg.size_scope),
        content=msg.content,
        parent=parent_from_pb(msg.parent) if msg.HasField("parent") else None,
        piece=piece_from_pb(msg.piece) if msg.HasField("piece") else None,
    )


def report_to_pb(report: PieceReport) -> pb.PieceResult:
    msg = pb.PieceResult(
        kind=int(report.kind),  # type: ignore[arg-type]
        task_id=report.task_id,
        peer_id=report.peer_id,
        parent_id=report.parent_id or "",
        success=report.success,
        code=int(report.code),  # type: ignore[arg-type]
        cost_ms=report.cost_ms,
        finished_count=report.finished_count,
    )
    if report.piece is not None:
        msg.piece.CopyFrom(piece_to_pb(report.piece))
    return msg


def report_from_pb(msg: pb.PieceResult) -> PieceReport:
    return PieceReport(
        kind=ReportKind(msg.kind),
        task_id=TaskID(msg.task_id),
        peer_id=PeerID(msg.peer_id),
        parent_id=PeerID(msg.parent_id) if msg.parent_id else None,
        piece=piece_from_pb(msg.piece) if msg.HasField("piece") else None,
        success=msg.success,
        code=_code(msg.code),
        cost_ms=msg.cost_ms,
        finished_count=msg.finished_count,
    )


def parent_to_pb(p: ParentInfo) -> pb.ParentPeer:
    return pb.ParentPeer(
        peer_id=p.peer_id, host_id=p.host_id, ip=p.ip, download_port=p.download_port, finished=p.finished, seed=p.seed
    )


def parent_from_pb(p: pb.ParentPeer) -> ParentInfo:
    return ParentInfo(
        peer_id=PeerID(p.peer_id),
        host_id=HostID(p.host_id),
        ip=p.ip,
        download_port=p.download_port,
        finished=p.finished,
        seed=p.seed,
    )


def packet_to_pb(packet: PeerPacket) -> pb.PeerPacket:
    return pb.PeerPacket(
        task_id=packet.task_id,
        peer_id=packet.peer_id,
        parents=[parent_to_pb(p) for p in packet.parents],
        parallel_count=packet.parallel_count,
        code=int(packet.code),  # type: ignore[arg-type]
        description=packet.description,
    )


def packet_from_pb(msg: pb.PeerPacket) -> PeerPacket:
    return PeerPacket(
        task_id=TaskID(msg.task_id),
        peer_id=PeerID(msg.peer_id),
        parents=tuple(parent_from_pb(p) for p in msg.parents),
        parallel_count=msg.parallel_count,
        code=_code(msg.code),
        description=msg.description,
    )


def result_to_pb(result: PeerResult) -> pb.PeerResult:
    return pb.PeerResult(
        task_id=result.task_id,
        peer_id=result.peer_id,
        success=result.success,
        content_length=result.content_length,
        total_piece_count=result.total_piece_count,
        cost_ms=result.cost_ms,
        code=int(result.code),  # type: ignore[arg-type]
        description=result.description,
        source_bytes=result.source_bytes,
        direct_piece=result.direct_piece,
    )


def result_from_pb(msg: pb.PeerResult) -> PeerResult:
    return PeerResult(
        task_id=TaskID(msg.task_id),
        peer_id=PeerID(msg.peer_id),
        success=msg.success,
        content_length=msg.content_length,
        total_piece_count=msg.total_piece_count,
        cost_ms=msg.cost_ms,
        code=_code(msg.code),
        description=msg.description,
        source_bytes=msg.source_bytes,
        direct_piece=msg.direct_piece,
    )


def task_stat_to_pb(stat: TaskStat) -> pb.TaskStat:
    return pb.TaskStat(
        task_id=stat.task_id,
        state=stat.state,
        content_length=stat.content_length,
        total_piece_count=stat.total_piece_count,
        peer_count=stat.peer_count,
        back_to_source_peer_count=stat.back_to_source_peer_count,
    )


def task_stat_from_pb(msg: pb.TaskStat) -> TaskStat:
    return TaskStat(
        task_id=TaskID(msg.task_id),
        state=msg.state,
        content_length=msg.content_length,
        total_piece_count=msg.total_piece_count,
        peer_count=msg.peer_count,
        back_to_source_peer_count=msg.back_to_source_peer_count,
    )


def trigger_to_pb(task_id: TaskID, spec: TaskSpec) -> pb.TriggerTaskRequest:
    return pb.TriggerTaskRequest(task_id=task_id, source=spec_to_pb(spec))


def trigger_from_pb(msg: pb.TriggerTaskRequest) -> tuple[TaskID, TaskSpec]:
    return TaskID(msg.task_id), spec_from_pb(msg.source)


def preheat_to_pb(spec: PreheatSpec) -> pb.PreheatRequest:
    return pb.PreheatRequest(url=spec.url, range=spec.range)


def preheat_from_pb(msg: pb.PreheatRequest) -> PreheatSpec:
    return PreheatSpec(url=msg.url, range=msg.range)


def preheat_result_to_pb(result: PreheatResult) -> pb.PreheatResponse:
    return pb.PreheatResponse(
        task_id=result.task_id,
        content_length=result.content_length,
        version=result.version,
        seed_host_id=result.seed_host_id,
    )


def preheat_result_from_pb(msg: pb.PreheatResponse) -> PreheatResult:
    return PreheatResult(
        task_id=TaskID(msg.task_id),
        content_length=msg.content_length,
        version=msg.version,
        seed_host_id=msg.seed_host_id,
    )


def probes_to_pb(host_id: HostID, probes: list[ProbeResult]) -> pb.ReportProbesRequest:
    return pb.ReportProbesRequest(
        host_id=host_id,
        probes=[
            pb.ProbeResult(
                host_id=p.host_id,
                rtt_ns=p.rtt_ns,
                created_at_ns=p.created_at_ns,
                success=p.success,
                description=p.description,
            )
            for p in probes
        ],
    )


def probes_from_pb(msg: pb.ReportProbesRequest) -> tuple[HostID, list[ProbeResult]]:
    probes = [
        ProbeResult(
            host_id=HostID(p.host_id),
            rtt_ns=p.rtt_ns,
            created_at_ns=p.created_at_ns,
            success=p.success,
            description=p.description,
        )
        for p in msg.probes
    ]
    return HostID(msg.host_id), probes


def edge_to_pb(edge: TopologyEdge) -> pb.TopologyEdge:
    return pb.TopologyEdge(
        src_host_id=edge.src_host_id,
        dest_host_id=edge.dest_host_id,
        average_rtt_ns=edge.average_rtt_ns,
        probe_count=edge.probe_count,
        created_at_ns=edge.created_at_ns,
        updated_at_ns=edge.updated_at_ns,
    )


def edge_from_pb(msg: pb.TopologyEdge) -> TopologyEdge:
    return TopologyEdge(
        src_host_id=HostID(msg.src_host_id),
        dest_host_id=HostID(msg.dest_host_id),
        average_rtt_ns=msg.average_rtt_ns,
        probe_count=msg.probe_count,
        created_at_ns=msg.created_at_ns,
        updated_at_ns=msg.updated_at_ns,
    )
