"""The manager's error tree. The REST middleware renders each as `{"message": ...}` with `status`.

ManagerError            500
├── Invalid             422  request body/query does not bind or breaks a rule
├── Unauthorized        401  no, unknown or expired credentials
├── Forbidden           403  token inactive, expired or out of scope; not allowed for this user
├── NotFound            404  record not found
└── Conflict            409  duplicate key, or the record is still in use
"""

from __future__ import annotations

from typing import ClassVar


class ManagerError(Exception):
    status: ClassVar[int] = 500

    def __init__(self, message: str = "") -> None:
        super().__init__(message or type(self).__name__)
        self.message = message or type(self).__name__


class Invalid(ManagerError):
    status = 422


class Unauthorized(ManagerError):
    status = 401


class Forbidden(ManagerError):
    status = 403


class NotFound(ManagerError):
    status = 404


class Conflict(ManagerError):
    status = 409
