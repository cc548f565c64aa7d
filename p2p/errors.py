"""The P2P error tree. Each class names the gRPC status it maps to (see p2p/proto/convert.py).

P2PError
├── TaskNotFound
│   └── PieceNotFound      the task is known but this piece is not (yet, or no longer) on disk
├── SourceError            the origin failed (connection, 5xx, short read)
│   └── SourceNotFound     the origin has no such object
├── PieceDigestMismatch    bytes do not match the piece digest (from a parent or on disk)
├── NoCandidateParent
├── SchedulerUnavailable
├── StorageError           local disk full, unreadable metadata
└── FeatureDisabled        the manager withdrew a scheduler feature (`preheat`, `schedule`)
"""

from __future__ import annotations

from typing import ClassVar

import grpc


class P2PError(Exception):
    grpc_status: ClassVar[grpc.StatusCode] = grpc.StatusCode.INTERNAL

    def __init__(self, message: str = "") -> None:
        super().__init__(message)
        self.message = message


class TaskNotFound(P2PError):
    grpc_status = grpc.StatusCode.NOT_FOUND


class PieceNotFound(TaskNotFound):
    grpc_status = grpc.StatusCode.NOT_FOUND


class SourceError(P2PError):
    grpc_status = grpc.StatusCode.UNAVAILABLE


class SourceNotFound(SourceError):
    grpc_status = grpc.StatusCode.NOT_FOUND


class PieceDigestMismatch(P2PError):
    grpc_status = grpc.StatusCode.DATA_LOSS


class NoCandidateParent(P2PError):
    grpc_status = grpc.StatusCode.FAILED_PRECONDITION


class SchedulerUnavailable(P2PError):
    grpc_status = grpc.StatusCode.UNAVAILABLE


class StorageError(P2PError):
    grpc_status = grpc.StatusCode.RESOURCE_EXHAUSTED


class FeatureDisabled(P2PError):
    grpc_status = grpc.StatusCode.FAILED_PRECONDITION
