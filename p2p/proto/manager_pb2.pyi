from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SourceType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCHEDULER_SOURCE: _ClassVar[SourceType]
    PEER_SOURCE: _ClassVar[SourceType]
    SEED_PEER_SOURCE: _ClassVar[SourceType]
SCHEDULER_SOURCE: SourceType
PEER_SOURCE: SourceType
SEED_PEER_SOURCE: SourceType

class Features(_message.Message):
    __slots__ = ("names",)
    NAMES_FIELD_NUMBER: _ClassVar[int]
    names: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, names: _Optional[_Iterable[str]] = ...) -> None: ...

class Scheduler(_message.Message):
    __slots__ = ("id", "hostname", "idc", "location", "ip", "port", "state", "scheduler_cluster_id", "features", "cluster_score")
    ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    IDC_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_SCORE_FIELD_NUMBER: _ClassVar[int]
    id: int
    hostname: str
    idc: str
    location: str
    ip: str
    port: int
    state: str
    scheduler_cluster_id: int
    features: _containers.RepeatedScalarFieldContainer[str]
    cluster_score: float
    def __init__(self, id: _Optional[int] = ..., hostname: _Optional[str] = ..., idc: _Optional[str] = ..., location: _Optional[str] = ..., ip: _Optional[str] = ..., port: _Optional[int] = ..., state: _Optional[str] = ..., scheduler_cluster_id: _Optional[int] = ..., features: _Optional[_Iterable[str]] = ..., cluster_score: _Optional[float] = ...) -> None: ...

class SeedPeer(_message.Message):
    __slots__ = ("id", "hostname", "type", "idc", "location", "ip", "port", "download_port", "object_storage_port", "state", "seed_peer_cluster_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    IDC_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_PORT_FIELD_NUMBER: _ClassVar[int]
    OBJECT_STORAGE_PORT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    SEED_PEER_CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    hostname: str
    type: str
    idc: str
    location: str
    ip: str
    port: int
    download_port: int
    object_storage_port: int
    state: str
    seed_peer_cluster_id: int
    def __init__(self, id: _Optional[int] = ..., hostname: _Optional[str] = ..., type: _Optional[str] = ..., idc: _Optional[str] = ..., location: _Optional[str] = ..., ip: _Optional[str] = ..., port: _Optional[int] = ..., download_port: _Optional[int] = ..., object_storage_port: _Optional[int] = ..., state: _Optional[str] = ..., seed_peer_cluster_id: _Optional[int] = ...) -> None: ...

class UpdateSchedulerRequest(_message.Message):
    __slots__ = ("source_type", "hostname", "scheduler_cluster_id", "ip", "port", "idc", "location", "features")
    SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    IDC_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    FEATURES_FIELD_NUMBER: _ClassVar[int]
    source_type: SourceType
    hostname: str
    scheduler_cluster_id: int
    ip: str
    port: int
    idc: str
    location: str
    features: Features
    def __init__(self, source_type: _Optional[_Union[SourceType, str]] = ..., hostname: _Optional[str] = ..., scheduler_cluster_id: _Optional[int] = ..., ip: _Optional[str] = ..., port: _Optional[int] = ..., idc: _Optional[str] = ..., location: _Optional[str] = ..., features: _Optional[_Union[Features, _Mapping]] = ...) -> None: ...

class UpdateSeedPeerRequest(_message.Message):
    __slots__ = ("source_type", "hostname", "type", "idc", "location", "ip", "port", "download_port", "seed_peer_cluster_id", "object_storage_port")
    SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    IDC_FIELD_NUMBER: _ClassVar[int]
    LOCATION_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    PORT_FIELD_NUMBER: _ClassVar[int]
    DOWNLOAD_PORT_FIELD_NUMBER: _ClassVar[int]
    SEED_PEER_CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_STORAGE_PORT_FIELD_NUMBER: _ClassVar[int]
    source_type: SourceType
    hostname: str
    type: str
    idc: str
    location: str
    ip: str
    port: int
    download_port: int
    seed_peer_cluster_id: int
    object_storage_port: int
    def __init__(self, source_type: _Optional[_Union[SourceType, str]] = ..., hostname: _Optional[str] = ..., type: _Optional[str] = ..., idc: _Optional[str] = ..., location: _Optional[str] = ..., ip: _Optional[str] = ..., port: _Optional[int] = ..., download_port: _Optional[int] = ..., seed_peer_cluster_id: _Optional[int] = ..., object_storage_port: _Optional[int] = ...) -> None: ...

class ListSchedulersRequest(_message.Message):
    __slots__ = ("source_type", "hostname", "ip", "host_info", "version", "commit")
    class HostInfoEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    HOST_INFO_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    COMMIT_FIELD_NUMBER: _ClassVar[int]
    source_type: SourceType
    hostname: str
    ip: str
    host_info: _containers.ScalarMap[str, str]
    version: str
    commit: str
    def __init__(self, source_type: _Optional[_Union[SourceType, str]] = ..., hostname: _Optional[str] = ..., ip: _Optional[str] = ..., host_info: _Optional[_Mapping[str, str]] = ..., version: _Optional[str] = ..., commit: _Optional[str] = ...) -> None: ...

class ListSchedulersResponse(_message.Message):
    __slots__ = ("schedulers",)
    SCHEDULERS_FIELD_NUMBER: _ClassVar[int]
    schedulers: _containers.RepeatedCompositeFieldContainer[Scheduler]
    def __init__(self, schedulers: _Optional[_Iterable[_Union[Scheduler, _Mapping]]] = ...) -> None: ...

class TaskSummary(_message.Message):
    __slots__ = ("id", "url", "state", "content_length", "peer_count")
    ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CONTENT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PEER_COUNT_FIELD_NUMBER: _ClassVar[int]
    id: str
    url: str
    state: str
    content_length: int
    peer_count: int
    def __init__(self, id: _Optional[str] = ..., url: _Optional[str] = ..., state: _Optional[str] = ..., content_length: _Optional[int] = ..., peer_count: _Optional[int] = ...) -> None: ...

class PeerSummary(_message.Message):
    __slots__ = ("id", "task_id", "host_name", "ip", "state")
    ID_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    HOST_NAME_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    id: str
    task_id: str
    host_name: str
    ip: str
    state: str
    def __init__(self, id: _Optional[str] = ..., task_id: _Optional[str] = ..., host_name: _Optional[str] = ..., ip: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class EdgeSummary(_message.Message):
    __slots__ = ("src_host_id", "src_host_name", "src_address", "dest_host_id", "dest_host_name", "dest_address", "average_rtt_ns", "probe_count", "updated_at_ns")
    SRC_HOST_ID_FIELD_NUMBER: _ClassVar[int]
    SRC_HOST_NAME_FIELD_NUMBER: _ClassVar[int]
    SRC_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DEST_HOST_ID_FIELD_NUMBER: _ClassVar[int]
    DEST_HOST_NAME_FIELD_NUMBER: _ClassVar[int]
    DEST_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    AVERAGE_RTT_NS_FIELD_NUMBER: _ClassVar[int]
    PROBE_COUNT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_NS_FIELD_NUMBER: _ClassVar[int]
    src_host_id: str
    src_host_name: str
    src_address: str
    dest_host_id: str
    dest_host_name: str
    dest_address: str
    average_rtt_ns: int
    probe_count: int
    updated_at_ns: int
    def __init__(self, src_host_id: _Optional[str] = ..., src_host_name: _Optional[str] = ..., src_address: _Optional[str] = ..., dest_host_id: _Optional[str] = ..., dest_host_name: _Optional[str] = ..., dest_address: _Optional[str] = ..., average_rtt_ns: _Optional[int] = ..., probe_count: _Optional[int] = ..., updated_at_ns: _Optional[int] = ...) -> None: ...

class Snapshot(_message.Message):
    __slots__ = ("tasks", "peers", "topology")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    PEERS_FIELD_NUMBER: _ClassVar[int]
    TOPOLOGY_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSummary]
    peers: _containers.RepeatedCompositeFieldContainer[PeerSummary]
    topology: _containers.RepeatedCompositeFieldContainer[EdgeSummary]
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskSummary, _Mapping]]] = ..., peers: _Optional[_Iterable[_Union[PeerSummary, _Mapping]]] = ..., topology: _Optional[_Iterable[_Union[EdgeSummary, _Mapping]]] = ...) -> None: ...

class KeepAliveRequest(_message.Message):
    __slots__ = ("source_type", "hostname", "cluster_id", "ip", "id", "snapshot")
    SOURCE_TYPE_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    IP_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    source_type: SourceType
    hostname: str
    cluster_id: int
    ip: str
    id: int
    snapshot: Snapshot
    def __init__(self, source_type: _Optional[_Union[SourceType, str]] = ..., hostname: _Optional[str] = ..., cluster_id: _Optional[int] = ..., ip: _Optional[str] = ..., id: _Optional[int] = ..., snapshot: _Optional[_Union[Snapshot, _Mapping]] = ...) -> None: ...

class PreheatJob(_message.Message):
    __slots__ = ("id", "type", "scheduler_cluster_id", "url", "tag", "filter", "headers", "range")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_CLUSTER_ID_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    TAG_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    id: int
    type: str
    scheduler_cluster_id: int
    url: str
    tag: str
    filter: str
    headers: _containers.ScalarMap[str, str]
    range: str
    def __init__(self, id: _Optional[int] = ..., type: _Optional[str] = ..., scheduler_cluster_id: _Optional[int] = ..., url: _Optional[str] = ..., tag: _Optional[str] = ..., filter: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ..., range: _Optional[str] = ...) -> None: ...

class KeepAliveResponse(_message.Message):
    __slots__ = ("scheduler", "seed_peer", "jobs")
    SCHEDULER_FIELD_NUMBER: _ClassVar[int]
    SEED_PEER_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    scheduler: Scheduler
    seed_peer: SeedPeer
    jobs: _containers.RepeatedCompositeFieldContainer[PreheatJob]
    def __init__(self, scheduler: _Optional[_Union[Scheduler, _Mapping]] = ..., seed_peer: _Optional[_Union[SeedPeer, _Mapping]] = ..., jobs: _Optional[_Iterable[_Union[PreheatJob, _Mapping]]] = ...) -> None: ...

class ReportJobResultRequest(_message.Message):
    __slots__ = ("job_id", "scheduler_id", "state", "message")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    SCHEDULER_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    job_id: int
    scheduler_id: int
    state: str
    message: str
    def __init__(self, job_id: _Optional[int] = ..., scheduler_id: _Optional[int] = ..., state: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class ReportJobResultResponse(_message.Message):
    __slots__ = ("state",)
    STATE_FIELD_NUMBER: _ClassVar[int]
    state: str
    def __init__(self, state: _Optional[str] = ...) -> None: ...
