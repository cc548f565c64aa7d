"""Control-plane value types shared by the scheduler and the daemon. Wire types stay in convert.py."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from p2p.types import ByteRange, HostID, PeerID, PieceInfo, SourceStat, TaskID


class Code(enum.IntEnum):
    """Mirrors the proto `Code` enum (Dragonfly's common.v1.Code numbers where one exists)."""

    OK = 0
    PIECE_REQUEST_FAIL = 4001
    PIECE_DOWNLOAD_FAIL = 4005
    CONNECTION_ERROR = 4007
    BACK_SOURCE_ERROR = 4008
    DIGEST_MISMATCH = 4009
    PIECE_NOT_FOUND = 4404
    SCHED_ERROR = 5000
    NEED_BACK_TO_SOURCE = 5001
    TASK_STATUS_ERROR = 5006
    REREGISTER = 5007


class HostType(enum.IntEnum):
    NORMAL = 0
    SUPER_SEED = 1
    STRONG_SEED = 2
    WEAK_SEED = 3


TINY_FILE_SIZE = 128  # a task this small is a TINY one: its content travels with the registration


class SizeScope(enum.IntEnum):
    NORMAL = 0
    SMALL = 1
    TINY = 2
    EMPTY = 3


class ReportKind(enum.IntEnum):
    PIECE = 0
    BEGIN = 1
    END = 2


@dataclass(frozen=True)
class HostInfo:
    id: HostID
    ip: str
    hostname: str
    download_port: int
    rpc_port: int = 0
    type: HostType = HostType.NORMAL
    idc: str = ""
    location: str = ""
    upload_limit: int = 50

    @property
    def is_seed(self) -> bool:
        return self.type != HostType.NORMAL


@dataclass(frozen=True)
class TaskSpec:
    """The origin object version a task copies, and how it is cut into pieces."""

    url: str
    stat: SourceStat
    piece_size: int
    byte_range: ByteRange | None = None  # a ranged task copies only this span of the object

    @property
    def content_length(self) -> int:
        return self.byte_range.length if self.byte_range is not None else self.stat.size


@dataclass(frozen=True)
class ParentInfo:
    peer_id: PeerID
    host_id: HostID
    ip: str
    download_port: int
    finished: bool = False
    seed: bool = False

    @property
    def address(self) -> str:
        return f"{self.ip}:{self.download_port}"


@dataclass(frozen=True)
class RegisterResult:
    """The scheduler's answer to a registration. For a task that already succeeded: TINY carries the
    content, SMALL a finished parent; both carry piece 0 as the origin reader stored it."""

    scope: SizeScope
    content: bytes = b""
    parent: ParentInfo | None = None
    piece: PieceInfo | None = None


@dataclass(frozen=True)
class PeerPacket:
    """Scheduler -> peer: parents (best first) or an instruction when `code` is not OK."""

    task_id: TaskID
    peer_id: PeerID
    parents: tuple[ParentInfo, ...] = ()
    parallel_count: int = 4
    code: Code = Code.OK
    description: str = ""


@dataclass(frozen=True)
class PieceReport:
    """Peer -> scheduler on the report stream."""

    kind: ReportKind
    task_id: TaskID
    peer_id: PeerID
    parent_id: PeerID | None = None  # None: from the origin
    piece: PieceInfo | None = None
    success: bool = True
    code: Code = Code.OK
    cost_ms: int = 0
    finished_count: int = 0


@dataclass(frozen=True)
class PeerResult:
    task_id: TaskID
    peer_id: PeerID
    success: bool
    content_length: int = -1
    total_piece_count: int = 0
    cost_ms: int = 0
    code: Code = Code.OK
    description: str = ""
    source_bytes: int = 0
    direct_piece: bytes = b""  # a TINY task's whole content


@dataclass(frozen=True)
class TaskStat:
    task_id: TaskID
    state: str
    content_length: int
    total_piece_count: int
    peer_count: int
    back_to_source_peer_count: int


@dataclass(frozen=True)
class Registration:
    task_id: TaskID
    peer_id: PeerID
    host: HostInfo
    spec: TaskSpec
    complete: bool = False  # the peer holds the whole task already: a succeeded parent at once
    pieces: tuple[PieceInfo, ...] = ()  # with `complete`: its pieces


@dataclass(frozen=True)
class PreheatSpec:
    """What to preheat: `range` is "a-b" or "bytes=a-b", empty for the whole object."""

    url: str
    range: str = ""


@dataclass(frozen=True)
class PreheatResult:
    task_id: TaskID
    content_length: int
    version: str
    seed_host_id: str = ""  # the HostID of the seed peer holding it; empty from the seed itself


@dataclass(frozen=True)
class ProbeResult:
    """One probe from a source host to `host_id`: an RTT, or a failure with its reason."""

    host_id: HostID
    rtt_ns: int
    created_at_ns: int  # wall clock, ns since the epoch
    success: bool = True
    description: str = ""


@dataclass(frozen=True)
class TopologyEdge:
    """What a scheduler knows about the path src -> dest: the moving average of the last probes."""

    src_host_id: HostID
    dest_host_id: HostID
    average_rtt_ns: int
    probe_count: int
    created_at_ns: int
    updated_at_ns: int
