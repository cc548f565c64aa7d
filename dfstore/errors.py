"""The one object-service error tree. Both edges render it: dfstore/http/render.py as
`{"errors": ...}` JSON, gateway/errors.py as S3 XML. Class names are S3 error codes.

DFError
├── ClientError        InvalidArgument, InvalidBucketName, InvalidRange, BadDigest, EntityTooLarge,
│   │                  EntityTooSmall, KeyTooLongError, PreconditionFailed, NotModified,
│   │                  AccessDenied, SignatureDoesNotMatch, InvalidAccessKeyId, InvalidPart,
│   │                  InvalidPartOrder, MalformedXML, MissingContentLength, RequestTimeTooSkewed
│   ├── NotFound       NoSuchBucket, NoSuchKey, NoSuchUpload
│   └── Conflict       BucketAlreadyOwnedByYou, BucketNotEmpty, KeyConflict
└── ServerError        InternalError, ServiceUnavailable, BackendError, P2PUnavailable
"""

from __future__ import annotations

from typing import ClassVar


class DFError(Exception):
    code: ClassVar[str] = "InternalError"
    s3_status: ClassVar[int] = 500

    def __init__(self, message: str = "", *, bucket: str = "", key: str = "", request_id: str = "") -> None:
        super().__init__(message or self.code)
        self.message = message or self.code
        self.bucket = bucket
        self.key = key
        self.request_id = request_id

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.message!r}, bucket={self.bucket!r}, key={self.key!r})"


class ClientError(DFError):
    code = "InvalidRequest"
    s3_status = 400


class InvalidArgument(ClientError):
    code = "InvalidArgument"


class InvalidRequest(ClientError):
    code = "InvalidRequest"


class InvalidBucketName(ClientError):
    code = "InvalidBucketName"


class KeyTooLongError(ClientError):
    code = "KeyTooLongError"


class InvalidRange(ClientError):
    code = "InvalidRange"
    s3_status = 416

    def __init__(self, message: str = "", *, size: int | None = None, **kw: str) -> None:
        super().__init__(message, **kw)
        self.size = size


class BadDigest(ClientError):
    code = "BadDigest"


class EntityTooLarge(ClientError):
    code = "EntityTooLarge"


class EntityTooSmall(ClientError):
    code = "EntityTooSmall"


class InvalidPart(ClientError):
    code = "InvalidPart"


class InvalidPartOrder(ClientError):
    code = "InvalidPartOrder"


class MalformedXML(ClientError):
    code = "MalformedXML"


class MissingContentLength(ClientError):
    code = "MissingContentLength"
    s3_status = 411


class PreconditionFailed(ClientError):
    code = "PreconditionFailed"
    s3_status = 412


class NotModified(ClientError):
    code = "NotModified"
    s3_status = 304


class AccessDenied(ClientError):
    code = "AccessDenied"
    s3_status = 403


class SignatureDoesNotMatch(AccessDenied):
    code = "SignatureDoesNotMatch"


class InvalidAccessKeyId(AccessDenied):
    code = "InvalidAccessKeyId"


class RequestTimeTooSkewed(AccessDenied):
    code = "RequestTimeTooSkewed"


class NotFound(ClientError):
    code = "NotFound"
    s3_status = 404


class NoSuchBucket(NotFound):
    code = "NoSuchBucket"


class NoSuchKey(NotFound):
    code = "NoSuchKey"


class NoSuchUpload(NotFound):
    code = "NoSuchUpload"


class Conflict(ClientError):
    code = "Conflict"
    s3_status = 409


class BucketAlreadyOwnedByYou(Conflict):
    code = "BucketAlreadyOwnedByYou"


class BucketNotEmpty(Conflict):
    code = "BucketNotEmpty"


class KeyConflict(Conflict):
    """The directory origin cannot hold both `a` and `a/b` (a file cannot also be a directory)."""

    code = "KeyConflict"


class ServerError(DFError):
    code = "InternalError"
    s3_status = 500


class InternalError(ServerError):
    code = "InternalError"


class ServiceUnavailable(ServerError):
    code = "ServiceUnavailable"
    s3_status = 503


class BackendError(ServerError):
    """The origin store failed (unreachable, 5xx, refused)."""

    code = "BackendError"
    s3_status = 502


class P2PUnavailable(ServerError):
    code = "P2PUnavailable"
    s3_status = 503
