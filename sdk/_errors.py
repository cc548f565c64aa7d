"""The SDK's one exception tree. Every failure a caller can see is one of these.

DfstoreError
├── UsageError           bad arguments, caught before any request is sent (also a ValueError)
├── TransportError       the HTTP library failed: refused, reset, short body, malformed response
│   └── TimeoutError     connect or read timed out
└── APIError             the server answered with a non-2xx status (`status`, `code`, `message`)
    ├── NotFound         404: missing object (HEAD, GET) or route
    ├── InvalidRange     416: unparsable or unsatisfiable Range
    ├── ValidationError  400 / 422: the server refused the parameters
    └── ServerError      5xx: backend or P2P failure (a missing bucket is a 500 upstream)

Foreign exceptions (urllib3, aiohttp) are translated once, in the client's send layer.
"""

from __future__ import annotations

from typing import ClassVar


class DfstoreError(Exception):
    """Base of every SDK error. `bucket` and `key` name the object concerned ("" when none)."""

    def __init__(self, message: str, *, bucket: str = "", key: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.bucket = bucket
        self.key = key

    @property
    def resource(self) -> str:
        """`dfs://bucket/key` (or `dfs://bucket`, or "") for messages."""
        if not self.bucket:
            return ""
        return f"dfs://{self.bucket}/{self.key}" if self.key else f"dfs://{self.bucket}"

    def __str__(self) -> str:
        return self.message


class UsageError(DfstoreError, ValueError):
    """An argument the SDK refuses before sending anything (empty bucket, mode 7, negative limit...)."""


class TransportError(DfstoreError):
    """The request did not produce a complete HTTP response."""


class TimeoutError(TransportError):  # shadows the builtin inside sdk only; exported as sdk.TimeoutError
    """Connecting or reading took longer than the configured timeout."""


class APIError(DfstoreError):
    """The server answered with an error status. `message` is its `{"errors": ...}` text when it sent one."""

    default_code: ClassVar[str] = "APIError"

    def __init__(self, status: int, message: str, *, code: str = "", bucket: str = "", key: str = "") -> None:
        super().__init__(message, bucket=bucket, key=key)
        self.status = status
        self.code = code or self.default_code

    def __str__(self) -> str:
        return f"{self.resource or 'request'}: {self.message} (HTTP {self.status})"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code!r}, message={self.message!r})"


class NotFound(APIError):
    default_code = "NotFound"


class InvalidRange(APIError):
    default_code = "InvalidRange"


class ValidationError(APIError):
    default_code = "ValidationError"


class ServerError(APIError):
    default_code = "InternalError"
