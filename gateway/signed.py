"""What a signature covers and what a verified signature yields; shared by SigV4 and SigV2."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


@dataclass(frozen=True)
class SignedRequest:
    """What SigV4 covers. `headers` maps lowercase names to every value sent; `query` is decoded pairs."""

    method: str
    raw_path: str  # the path exactly as sent (percent-encoded), without the query
    query: Sequence[tuple[str, str]]
    headers: Mapping[str, Sequence[str]]

    def header(self, name: str) -> str:
        values = self.headers.get(name)
        return values[0] if values else ""

    def query_value(self, name: str) -> str | None:
        for k, v in self.query:
            if k == name:
                return v
        return None


@dataclass(frozen=True)
class AuthContext:
    """A verified request: enough to verify the signatures chained through an aws-chunked body."""

    access_key: str
    amz_date: str
    scope: str
    signing_key: bytes
    seed_signature: str
    payload_hash: str  # x-amz-content-sha256 (or UNSIGNED-PAYLOAD for presigned URLs)
