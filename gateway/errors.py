"""S3 error rendering: any DFError becomes `<Error>` XML with the S3 code and status.

The object service raises only dfstore.errors; the few failures that exist only at the S3 edge
(signature details, aws-chunked framing, unsupported operations) are subclasses defined here, so
the same MRO walk renders both.
"""

from __future__ import annotations

from dfstore.errors import AccessDenied, ClientError, DFError, InternalError, InvalidRequest

ERROR_CONTENT_TYPE = "application/xml"


class AuthorizationHeaderMalformed(ClientError):
    code = "AuthorizationHeaderMalformed"


class AuthorizationQueryParametersError(ClientError):
    code = "AuthorizationQueryParametersError"


class ExpiredPresignedRequest(AccessDenied):
    """S3 answers an expired presigned URL with AccessDenied, "Request has expired"."""

    code = "AccessDenied"


class MissingContentSHA256(InvalidRequest):
    code = "InvalidRequest"


class XAmzContentSHA256Mismatch(ClientError):
    code = "XAmzContentSHA256Mismatch"


class InvalidDigest(ClientError):
    code = "InvalidDigest"


class IncompleteBody(ClientError):
    code = "IncompleteBody"


class InvalidPartNumber(ClientError):
    code = "InvalidPartNumber"
    s3_status = 416


class InvalidChunkSizeError(ClientError):
    code = "InvalidChunkSizeError"


class MethodNotAllowed(ClientError):
    code = "MethodNotAllowed"
    s3_status = 405


class NotImplementedOp(DFError):
    code = "NotImplemented"
    s3_status = 501


class ChecksumMismatch(InvalidRequest):
    """A trailing or header x-amz-checksum-* does not match the body (S3: BadDigest-like InvalidRequest)."""

    code = "BadDigest"


def as_dferror(exc: BaseException) -> DFError:
    """Anything outside the tree is an InternalError (the caller logs the original once)."""
    if isinstance(exc, DFError):
        return exc
    return InternalError("We encountered an internal error. Please try again.")


def status_of(exc: DFError) -> int:
    # s3_status is a ClassVar on every class, so the MRO walk is attribute lookup itself.
    return type(exc).s3_status


def error_resource(exc: DFError, path: str) -> str:
    if exc.bucket and exc.key:
        return f"/{exc.bucket}/{exc.key}"
    if exc.bucket:
        return f"/{exc.bucket}"
    return path
