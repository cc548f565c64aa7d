from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Code(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CODE_OK: _ClassVar[Code]
    CODE_PIECE_REQUEST_FAIL: _ClassVar[Code]
    CODE_PIECE_DOWNLOAD_FAIL: _ClassVar[Code]
    CODE_CONNECTION_ERROR: _ClassVar[Code]
    CODE_BACK_SOURCE_ERROR: _ClassVar[Code]
    CODE_DIGEST_MISMATCH: _ClassVar[Code]
    CODE_PIECE_NOT_FOUND: _ClassVar[Code]
    CODE_SCHED_ERROR: _ClassVar[Code]
    CODE_NEED_BACK_TO_SOURCE: _ClassVar[Code]
    CODE_TASK_STATUS_ERROR: _ClassVar[Code]
    CODE_REREGISTER: _ClassVar[Code]

class HostType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    HOST_TYPE_NORMAL: _ClassVar[HostType]
    HOST_TYPE_SUPER_SEED: _ClassVar[HostType]
    HOST_TYPE_STRONG_SEED: _ClassVar[HostType]
    HOST_TYPE_WEAK_SEED: _ClassVar[HostType]

class SizeScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SIZE_SCOPE_NORMAL: _ClassVar[SizeScope]
    SIZE_SCOPE_SMALL: _ClassVar[SizeScope]
    SIZE_SCOPE_TINY: _ClassVar[SizeScope]
    SIZE_SCOPE_EMPTY: _ClassVar[SizeScope]
CODE_OK: Code
CODE_PIECE_REQUEST_FAIL: Code
CODE_PIECE_DOWNLOAD_FAIL: Code
CODE_CONNECTION_ERROR: Code
CODE_BACK_SOURCE_ERROR: Code
CODE_DIGEST_MISMATCH: Code
CODE_PIECE_NOT_FOUND: Code
CODE_SCHED_ERROR: Code
CODE_NEED_BACK_TO_SOURCE: Code
CODE_TASK_STATUS_ERROR: Code
CODE_REREGISTER: Code
HOST_TYPE_NORMAL: HostType
HOST_TYPE_SUPER_SEED: HostType
HOST_TYPE_STRONG_SEED: HostType
HOST_TYPE_WEAK_SEED: HostType
SIZE_SCOPE_NORMAL: SizeScope
SIZE_SCOPE_SMALL: SizeScope
SIZE_SCOPE_TINY: SizeScope
SIZE_SCOPE_EMPTY: SizeScope

class Host(_message.Message):
    __slots__ = ("id", "ip", "hostname", "rpc_port", "download_port", "type", "idc", "location", "upload_limit")
    ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    RPC_PORT_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_PORT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    IDC_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    UPLOAD_LIMIT_FIELD_NUMBER: _ClassVar[int]
    id: str
    ip: str
    hostname: str
    rpc_port: int
    download_port: int
    type: HostType
    idc: str
    location: str
    upload_limit: int
    def __init__(self, id: _Optional[str] = ..., ip: _Optional[str] = ..., hostname: _Optional[str] = ..., rpc_port: _Optional[int] = ..., download_port: _Optional[int] = ..., type: _Optional[_Union[HostType, str]] = ..., idc: _Optional[str] = ..., location: _Optional[str] = ..., upload_limit: _Optional[int] = ...) -> None: ...

class TaskSource(_message.Message):
    __slots__ = ("url", "size", "version", "content_type", "piece_size", "ranged", "range_start", "range_length")
    URL_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CONTENT_TYPE_FIELD_NUMBER: _ClassVar[int]
    PIECE_SIZE_FIELD_NUMBER: _ClassVar[int]
    RANGED_FIELD_NUMBER: _ClassVar[int]
    RANGE_START_FIELD_NUMBER: _ClassVar[int]
    RANGE_LENGTH_FIELD_NUMBER: _ClassVar[int]
    url: str
    size: int
    version: str
    content_type: str
    piece_size: int
    ranged: bool
    range_start: int
    range_length: int
    def __init__(self, url: _Optional[str] = ..., size: _Optional[int] = ..., version: _Optional[str] = ..., content_type: _Optional[str] = ..., piece_size: _Optional[int] = ..., ranged: _Optional[bool] = ..., range_start: _Optional[int] = ..., range_length: _Optional[int] = ...) -> None: ...

class Piece(_message.Message):
    __slots__ = ("number", "offset", "size", "digest")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    number: int
    offset: int
    size: int
    digest: str
    def __init__(self, number: _Optional[int] = ..., offset: _Optional[int] = ..., size: _Optional[int] = ..., digest: _Optional[str] = ...) -> None: ...

class Empty(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AnnounceHostRequest(_message.Message):
    __slots__ = ("host",)
    HOST_FIELD_NUMBER: _ClassVar[int]
    host: Host
    def __init__(self, host: _Optional[_Union[Host, _Mapping]] = ...) -> None: ...

class LeaveHostRequest(_message.Message):
    __slots__ = ("host_id",)
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    def __init__(self, host_id: _Optional[str] = ...) -> None: ...

class RegisterPeerRequest(_message.Message):
    __slots__ = ("task_id", "peer_id", "host", "source", "complete", "pieces")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    COMPLETE_FIELD_NUMBER: _ClassVar[int]
    PIECES_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    peer_id: str
    host: Host
    source: TaskSource
    complete: bool
    pieces: _containers.RepeatedCompositeFieldContainer[Piece]
    def __init__(self, task_id: _Optional[str] = ..., peer_id: _Optional[str] = ..., host: _Optional[_Union[Host, _Mapping]] = ..., source: _Optional[_Union[TaskSource, _Mapping]] = ..., complete: _Optional[bool] = ..., pieces: _Optional[_Iterable[_Union[Piece, _Mapping]]] = ...) -> None: ...

class RegisterPeerResponse(_message.Message):
    __slots__ = ("task_id", "size_scope", "content", "parent", "piece")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_SCOPE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_FIELD_NUMBER: _ClassVar[int]
    PARENT_FIELD_NUMBER: _ClassVar[int]
    PIECE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    size_scope: SizeScope
    content: bytes
    parent: ParentPeer
    piece: Piece
    def __init__(self, task_id: _Optional[str] = ..., size_scope: _Optional[_Union[SizeScope, str]] = ..., content: _Optional[bytes] = ..., parent: _Optional[_Union[ParentPeer, _Mapping]] = ..., piece: _Optional[_Union[Piece, _Mapping]] = ...) -> None: ...

class PieceResult(_message.Message):
    __slots__ = ("kind", "task_id", "peer_id", "parent_id", "piece", "success", "code", "cost_ms", "finished_count")
    class Kind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        KIND_PIECE: _ClassVar[PieceResult.Kind]
        KIND_BEGIN: _ClassVar[PieceResult.Kind]
        KIND_END: _ClassVar[PieceResult.Kind]
    KIND_PIECE: PieceResult.Kind
    KIND_BEGIN: PieceResult.Kind
    KIND_END: PieceResult.Kind
    KIND_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    PARENT_ID_FIELD_NUMBER: _ClassVar[int]
    PIECE_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    COST_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_COUNT_FIELD_NUMBER: _ClassVar[int]
    kind: PieceResult.Kind
    task_id: str
    peer_id: str
    parent_id: str
    piece: Piece
    success: bool
    code: Code
    cost_ms: int
    finished_count: int
    def __init__(self, kind: _Optional[_Union[PieceResult.Kind, str]] = ..., task_id: _Optional[str] = ..., peer_id: _Optional[str] = ..., parent_id: _Optional[str] = ..., piece: _Optional[_Union[Piece, _Mapping]] = ..., success: _Optional[bool] = ..., code: _Optional[_Union[Code, str]] = ..., cost_ms: _Optional[int] = ..., finished_count: _Optional[int] = ...) -> None: ...

class ParentPeer(_message.Message):
    __slots__ = ("peer_id", "host_id", "ip", "download_port", "finished", "seed")
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_PORT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    host_id: str
    ip: str
    download_port: int
    finished: bool
    seed: bool
    def __init__(self, peer_id: _Optional[str] = ..., host_id: _Optional[str] = ..., ip: _Optional[str] = ..., download_port: _Optional[int] = ..., finished: _Optional[bool] = ..., seed: _Optional[bool] = ...) -> None: ...

class PeerPacket(_message.Message):
    __slots__ = ("task_id", "peer_id", "parents", "parallel_count", "code", "description")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    PARENTS_FIELD_NUMBER: _ClassVar[int]
    PARALLEL_COUNT_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    peer_id: str
    parents: _containers.RepeatedCompositeFieldContainer[ParentPeer]
    parallel_count: int
    code: Code
    description: str
    def __init__(self, task_id: _Optional[str] = ..., peer_id: _Optional[str] = ..., parents: _Optional[_Iterable[_Union[ParentPeer, _Mapping]]] = ..., parallel_count: _Optional[int] = ..., code: _Optional[_Union[Code, str]] = ..., description: _Optional[str] = ...) -> None: ...

class PeerResult(_message.Message):
    __slots__ = ("task_id", "peer_id", "success", "content_length", "total_piece_count", "cost_ms", "code", "description", "source_bytes", "direct_piece")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    CONTENT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PIECE_COUNT_FIELD_NUMBER: _ClassVar[int]
    COST_MS_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_BYTES_FIELD_NUMBER: _ClassVar[int]
    DIRECT_PIECE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    peer_id: str
    success: bool
    content_length: int
    total_piece_count: int
    cost_ms: int
    code: Code
    description: str
    source_bytes: int
    direct_piece: bytes
    def __init__(self, task_id: _Optional[str] = ..., peer_id: _Optional[str] = ..., success: _Optional[bool] = ..., content_length: _Optional[int] = ..., total_piece_count: _Optional[int] = ..., cost_ms: _Optional[int] = ..., code: _Optional[_Union[Code, str]] = ..., description: _Optional[str] = ..., source_bytes: _Optional[int] = ..., direct_piece: _Optional[bytes] = ...) -> None: ...

class LeavePeerRequest(_message.Message):
    __slots__ = ("task_id", "peer_id")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    peer_id: str
    def __init__(self, task_id: _Optional[str] = ..., peer_id: _Optional[str] = ...) -> None: ...

class SourceDigestsRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class SourceDigestsResponse(_message.Message):
    __slots__ = ("pieces",)
    PIECES_FIELD_NUMBER: _ClassVar[int]
    pieces: _containers.RepeatedCompositeFieldContainer[Piece]
    def __init__(self, pieces: _Optional[_Iterable[_Union[Piece, _Mapping]]] = ...) -> None: ...

class StatTaskRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class TaskStat(_message.Message):
    __slots__ = ("task_id", "state", "content_length", "total_piece_count", "peer_count", "back_to_source_peer_count")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    TOTAL_PIECE_COUNT_FIELD_NUMBER: _ClassVar[int]
    PEER_COUNT_FIELD_NUMBER: _ClassVar[int]
    BACK_TO_SOURCE_PEER_COUNT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    state: str
    content_length: int
    total_piece_count: int
    peer_count: int
    back_to_source_peer_count: int
    def __init__(self, task_id: _Optional[str] = ..., state: _Optional[str] = ..., content_length: _Optional[int] = ..., total_piece_count: _Optional[int] = ..., peer_count: _Optional[int] = ..., back_to_source_peer_count: _Optional[int] = ...) -> None: ...

class SyncProbesRequest(_message.Message):
    __slots__ = ("host",)
    HOST_FIELD_NUMBER: _ClassVar[int]
    host: Host
    def __init__(self, host: _Optional[_Union[Host, _Mapping]] = ...) -> None: ...

class SyncProbesResponse(_message.Message):
    __slots__ = ("hosts",)
    HOSTS_FIELD_NUMBER: _ClassVar[int]
    hosts: _containers.RepeatedCompositeFieldContainer[Host]
    def __init__(self, hosts: _Optional[_Iterable[_Union[Host, _Mapping]]] = ...) -> None: ...

class ProbeResult(_message.Message):
    __slots__ = ("host_id", "rtt_ns", "created_at_ns", "success", "description")
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    RTT_NS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    rtt_ns: int
    created_at_ns: int
    success: bool
    description: str
    def __init__(self, host_id: _Optional[str] = ..., rtt_ns: _Optional[int] = ..., created_at_ns: _Optional[int] = ..., success: _Optional[bool] = ..., description: _Optional[str] = ...) -> None: ...

class ReportProbesRequest(_message.Message):
    __slots__ = ("host_id", "probes")
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    PROBES_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    probes: _containers.RepeatedCompositeFieldContainer[ProbeResult]
    def __init__(self, host_id: _Optional[str] = ..., probes: _Optional[_Iterable[_Union[ProbeResult, _Mapping]]] = ...) -> None: ...

class StatTopologyRequest(_message.Message):
    __slots__ = ("host_id",)
    HOST_ID_FIELD_NUMBER: _ClassVar[int]
    host_id: str
    def __init__(self, host_id: _Optional[str] = ...) -> None: ...

class TopologyEdge(_message.Message):
    __slots__ = ("src_host_id", "dest_host_id", "average_rtt_ns", "probe_count", "created_at_ns", "updated_at_ns")
    SRC_HOST_ID_FIELD_NUMBER: _ClassVar[int]
    DEST_HOST_ID_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_RTT_NS_FIELD_NUMBER: _ClassVar[int]
    PROBE_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    src_host_id: str
    dest_host_id: str
    average_rtt_ns: int
    probe_count: int
    created_at_ns: int
    updated_at_ns: int
    def __init__(self, src_host_id: _Optional[str] = ..., dest_host_id: _Optional[str] = ..., average_rtt_ns: _Optional[int] = ..., probe_count: _Optional[int] = ..., created_at_ns: _Optional[int] = ..., updated_at_ns: _Optional[int] = ...) -> None: ...

class StatTopologyResponse(_message.Message):
    __slots__ = ("edges",)
    EDGES_FIELD_NUMBER: _ClassVar[int]
    edges: _containers.RepeatedCompositeFieldContainer[TopologyEdge]
    def __init__(self, edges: _Optional[_Iterable[_Union[TopologyEdge, _Mapping]]] = ...) -> None: ...

class PreheatRequest(_message.Message):
    __slots__ = ("url", "range")
    URL_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    url: str
    range: str
    def __init__(self, url: _Optional[str] = ..., range: _Optional[str] = ...) -> None: ...

class PreheatResponse(_message.Message):
    __slots__ = ("task_id", "content_length", "version", "seed_host_id")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    CONTENT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    SEED_HOST_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    content_length: int
    version: str
    seed_host_id: str
    def __init__(self, task_id: _Optional[str] = ..., content_length: _Optional[int] = ..., version: _Optional[str] = ..., seed_host_id: _Optional[str] = ...) -> None: ...

class TriggerTaskRequest(_message.Message):
    __slots__ = ("task_id", "source")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    source: TaskSource
    def __init__(self, task_id: _Optional[str] = ..., source: _Optional[_Union[TaskSource, _Mapping]] = ...) -> None: ...

class TriggerTaskResponse(_message.Message):
    __slots__ = ("peer_id",)
    PEER_ID_FIELD_NUMBER: _ClassVar[int]
    peer_id: str
    def __init__(self, peer_id: _Optional[str] = ...) -> None: ...
