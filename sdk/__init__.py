"""dfstore: a Python client for the dfstore HTTP API (Dragonfly-compatible), sync and asyncio.

    from sdk import Client
    with Client("http://127.0.0.1:65004") as client:
        client.upload_file("models", "llama/shard-1.safetensors", "shard-1.safetensors")
        with client.get_object("models", "llama/shard-1.safetensors") as body:
            data = body.read()

Imports nothing from the server packages; see docs/sdk.md.
"""

from __future__ import annotations

from ._async_client import AsyncClient, AsyncObjectReader
from ._client import Client, ObjectReader
from ._errors import (
    APIError,
    DfstoreError,
    InvalidRange,
    NotFound,
    ServerError,
    TimeoutError,
    TransportError,
    UsageError,
    ValidationError,
)
from ._models import (
    DEFAULT_ENDPOINT,
    CommonPrefix,
    EndpointMetadata,
    ObjectMetadata,
    ObjectMetadatas,
    PutMode,
    RetryPolicy,
    Timeout,
)

__all__ = [
    "DEFAULT_ENDPOINT",
    "APIError",
    "AsyncClient",
    "AsyncObjectReader",
    "Client",
    "CommonPrefix",
    "DfstoreError",
    "EndpointMetadata",
    "InvalidRange",
    "NotFound",
    "ObjectMetadata",
    "ObjectMetadatas",
    "ObjectReader",
    "PutMode",
    "RetryPolicy",
    "ServerError",
    "Timeout",
    "TimeoutError",
    "TransportError",
    "UsageError",
    "ValidationError",
]
