"""The SDK's public surface: `__all__`, the sync/async twins, and its independence from the server."""

from __future__ import annotations

import inspect
import subprocess
import sys

import sdk
from sdk import AsyncClient, AsyncObjectReader, Client, ObjectReader

# Only the lifecycle differs between the twins (httpx's close/aclose, read/aread).
SYNC_ONLY = {"close", "__enter__", "__exit__", "read", "iter_chunks"}
ASYNC_ONLY = {"aclose", "__aenter__", "__aexit__", "aread", "aiter_chunks"}


def public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") or name in {"__enter__", "__exit__", "__aenter__", "__aexit__"}
    }


def comparable(sig: inspect.Signature) -> tuple[object, ...]:
    """Parameters with their annotations and defaults; the return type with `Async` dropped."""
    params = tuple((p.name, p.kind, p.default, p.annotation) for p in sig.parameters.values())
    ret = str(sig.return_annotation).replace("AsyncIterator", "Iterator").replace("AsyncObjectReader", "ObjectReader")
    return params, ret


def test_clients_have_the_same_methods_and_signatures() -> None:
    sync, asynch = public(Client), public(AsyncClient)
    assert set(sync) - SYNC_ONLY == set(asynch) - ASYNC_ONLY
    assert set(sync) - SYNC_ONLY == {
        "copy_object",
        "create_bucket",
        "delete_object",
        "download_file",
        "get_endpoint_metadata",
        "get_object",
        "get_object_metadata",
        "get_object_metadatas",
        "is_object_exist",
        "iter_objects",
        "put_object",
        "upload_file",
    }
    for name in set(sync) - SYNC_ONLY:
        assert comparable(sync[name]) == comparable(asynch[name]), name
    assert comparable(inspect.signature(Client.__init__)) == comparable(inspect.signature(AsyncClient.__init__))


def test_async_methods_are_coroutines_or_async_generators() -> None:
    for name in set(public(AsyncClient)) - ASYNC_ONLY - {"get_object"}:
        member = getattr(AsyncClient, name)
        assert inspect.iscoroutinefunction(member) or inspect.isasyncgenfunction(member), name
    assert not inspect.iscoroutinefunction(AsyncClient.get_object)  # returns an async context manager


def test_readers_are_twins() -> None:
    sync = {n: comparable(s) for n, s in public(ObjectReader).items()}
    asynch = {"a" + n[1:] if n.startswith("__a") else n: s for n, s in public(AsyncObjectReader).items()}
    renamed = {
        "aread": "read",
        "aiter_chunks": "iter_chunks",
        "aclose": "close",
        "__aenter__": "__enter__",
        "__aexit__": "__exit__",
    }
    assert {renamed.get(n, n) for n in public(AsyncObjectReader)} == set(sync)
    assert comparable(inspect.signature(ObjectReader.read)) == comparable(inspect.signature(AsyncObjectReader.aread))
    assert asynch  # both have members


def test_all_is_pinned() -> None:
    assert sorted(sdk.__all__) == sorted(
        [
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
    )
    for name in sdk.__all__:
        assert hasattr(sdk, name), name


def test_error_tree() -> None:
    assert issubclass(sdk.NotFound, sdk.APIError) and issubclass(sdk.APIError, sdk.DfstoreError)
    assert issubclass(sdk.TimeoutError, sdk.TransportError) and issubclass(sdk.TransportError, sdk.DfstoreError)
    assert issubclass(sdk.UsageError, ValueError)
    for cls in (sdk.InvalidRange, sdk.ValidationError, sdk.ServerError):
        assert issubclass(cls, sdk.APIError)


def test_importing_the_sdk_loads_no_server_package() -> None:
    code = (
        "import sys, sdk, sdk.cli; "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'p2p', 'dfstore', 'gateway', 'dfly'}); "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    assert out.stdout.strip() == ""
