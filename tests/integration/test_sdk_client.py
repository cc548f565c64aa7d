"""Both SDK clients against a real daemon process (directory origin): every call, and the errors.

Each test runs twice, once per client, through a thin adapter that gives the async client the sync
call shape (it drives a private event loop), so both are held to the same expectations.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import sdk
from dfly.procs import Child
from tests.cluster import fs_origin, running_daemon

PIECE = 4 * 1024 * 1024  # the daemon's piece size for objects up to 200 MiB


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Child]:
    workdir = tmp_path_factory.mktemp("sdk")
    with running_daemon(workdir, fs_origin(workdir)) as child:
        yield child


@pytest.fixture(scope="module")
def endpoint(daemon: Child) -> str:
    return str(daemon.ready["dfstore"])


class SyncAPI:
    name = "sync"

    def __init__(self, endpoint: str, **kw: Any) -> None:
        self.client = sdk.Client(endpoint, **kw)

    def call(self, method: str, *args: Any, **kw: Any) -> Any:
        return getattr(self.client, method)(*args, **kw)

    def read(self, bucket: str, key: str, **kw: Any) -> tuple[bytes, int | None]:
        with self.client.get_object(bucket, key, **kw) as body:
            return b"".join(body.iter_chunks()), body.content_length

    def read_first(self, bucket: str, key: str, size: int) -> bytes:
        with self.client.get_object(bucket, key) as body:
            return body.read(size)

    def list(self, bucket: str, **kw: Any) -> list[Any]:
        return list(self.client.iter_objects(bucket, **kw))

    def close(self) -> None:
        self.client.close()


class AsyncAPI:
    name = "async"

    def __init__(self, endpoint: str, **kw: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.client = sdk.AsyncClient(endpoint, **kw)

    def call(self, method: str, *args: Any, **kw: Any) -> Any:
        return self.loop.run_until_complete(getattr(self.client, method)(*args, **kw))

    def read(self, bucket: str, key: str, **kw: Any) -> tuple[bytes, int | None]:
        async def go() -> tuple[bytes, int | None]:
            async with self.client.get_object(bucket, key, **kw) as body:
                return b"".join([chunk async for chunk in body.aiter_chunks()]), body.content_length

        return self.loop.run_until_complete(go())

    def read_first(self, bucket: str, key: str, size: int) -> bytes:
        async def go() -> bytes:
            async with self.client.get_object(bucket, key) as body:
                return await body.aread(size)

        return self.loop.run_until_complete(go())

    def list(self, bucket: str, **kw: Any) -> list[Any]:
        async def go() -> list[Any]:
            return [entry async for entry in self.client.iter_objects(bucket, **kw)]

        return self.loop.run_until_complete(go())

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.close()


API = SyncAPI | AsyncAPI


@pytest.fixture(params=["sync", "async"])
def api(request: pytest.FixtureRequest, endpoint: str) -> Iterator[API]:
    impl: API = SyncAPI(endpoint) if request.param == "sync" else AsyncAPI(endpoint)
    yield impl
    impl.close()


@pytest.fixture
def bucket(api: API) -> str:
    name = f"sdk-{uuid.uuid4().hex[:12]}"
    api.call("create_bucket", name)
    return name


def data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


# -- endpoint and buckets ------------------------------------------------------------------------------


def test_endpoint_metadata(api: API) -> None:
    meta = api.call("get_endpoint_metadata")
    assert isinstance(meta, sdk.EndpointMetadata) and meta.name in ("s3", "oss", "obs")


def test_create_bucket_then_it_lists_empty(api: API, bucket: str) -> None:
    page = api.call("get_object_metadatas", bucket)
    assert page.metadatas == () and page.common_prefixes == ()


def test_create_bucket_twice_is_an_api_error(api: API, bucket: str) -> None:
    with pytest.raises(sdk.APIError) as info:
        api.call("create_bucket", bucket)
    assert info.value.status >= 400 and info.value.bucket == bucket


def test_invalid_bucket_name_is_refused_by_the_server(api: API) -> None:
    with pytest.raises(sdk.ValidationError) as info:
        api.call("create_bucket", "ab")  # S3 names need 3 characters
    assert info.value.status == 422 and "ab" in info.value.message


# -- put, head, get ------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, PIECE - 1, PIECE + 1])
def test_put_bytes_get_back_byte_exact(api: API, bucket: str, size: int) -> None:
    payload = data(size, seed=size)
    api.call("put_object", bucket, f"obj/{size}", payload, mode=sdk.PutMode.WRITE_BACK)
    body, length = api.read(bucket, f"obj/{size}")
    assert body == payload and length == size


def test_head_describes_the_object(api: API, bucket: str) -> None:
    payload = b"hello"
    before = datetime.now(UTC).replace(microsecond=0)
    api.call("put_object", bucket, "dir/hello.txt", payload, mode=sdk.PutMode.WRITE_BACK)
    meta = api.call("get_object_metadata", bucket, "dir/hello.txt")
    md5 = hashlib.md5(payload).hexdigest()
    assert meta.key == "dir/hello.txt" and meta.content_length == 5
    assert meta.etag.strip('"') == md5 and meta.digest == f"md5:{md5}"
    assert meta.last_modified is not None and abs((meta.last_modified - before).total_seconds()) < 30
    assert api.call("is_object_exist", bucket, "dir/hello.txt") is True


@pytest.mark.parametrize(
    ("offset", "length", "expected"), [(0, 5, b"hello"), (4, 1, b"o"), (2, 3, b"llo"), (1, None, b"ello")]
)
def test_ranged_get(api: API, bucket: str, offset: int, length: int | None, expected: bytes) -> None:
    api.call("put_object", bucket, "r", b"hello", mode=1)
    body, content_length = api.read(bucket, "r", offset=offset, length=length)
    assert body == expected and content_length == len(expected)


def test_partial_read_then_close_keeps_the_client_usable(api: API, bucket: str) -> None:
    payload = data(3 * 1024 * 1024 + 7, seed=3)
    api.call("put_object", bucket, "big", payload, mode=1)
    assert api.read_first(bucket, "big", 1000) == payload[:1000]
    assert api.read(bucket, "big")[0] == payload  # the dropped connection was not reused mid-body


def test_long_bodies_read_in_pieces_ranges_and_whole(api: API, bucket: str) -> None:
    """Bodies past the async client's direct-read size (sdk._async_client.DIRECT_READ_BYTES) in every
    read shape; each read leaves the client usable for the next."""
    payload = data(20 * 1024 * 1024 + 5, seed=11)
    api.call("put_object", bucket, "long", payload, mode=1)
    for _ in range(2):
        assert api.read(bucket, "long") == (payload, len(payload))
        assert api.read_first(bucket, "long", 3) == payload[:3]
    offset, length = 1024 * 1024 + 1, 9 * 1024 * 1024
    assert api.read(bucket, "long", offset=offset, length=length) == (payload[offset : offset + length], length)
    assert api.call("get_object_metadata", bucket, "long").content_length == len(payload)


def test_async_reads_a_long_body_from_the_socket_in_any_mix_of_calls(endpoint: str) -> None:
    async def go() -> None:
        async with sdk.AsyncClient(endpoint) as client:
            name = f"sdk-{uuid.uuid4().hex[:12]}"
            await client.create_bucket(name)
            payload = data(12 * 1024 * 1024 + 9, seed=12)
            await client.put_object(name, "k", payload, mode=1)
            async with client.get_object(name, "k") as body:
                assert body._direct is not None  # taken over from aiohttp's parser (the point of the test)
                head = await body.aread(10)
                middle = [chunk async for chunk in body.aiter_chunks(3 * 1024 * 1024)][:2]
                assert all(len(c) <= 3 * 1024 * 1024 for c in middle)
            async with client.get_object(name, "k") as body:
                start = await body.aread(1)
                rest = await body.aread()
                assert start + rest == payload and await body.aread() == b""
            assert head == payload[:10] and b"".join(middle) == payload[10 : 10 + len(b"".join(middle))]
            async with client.get_object(name, "k", length=1024) as body:
                assert body._direct is None and await body.aread() == payload[:1024]  # short: aiohttp's

    asyncio.run(go())


@pytest.mark.parametrize("cls", [SyncAPI, AsyncAPI])
def test_a_body_cut_short_is_a_transport_error(cls: type[API]) -> None:
    """A server that promises 16 MiB and hangs up after 9: both clients raise, neither returns less."""
    promised, sent = 16 * 1024 * 1024, 9 * 1024 * 1024

    def serve(listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn:
            request = b""
            while b"\r\n\r\n" not in request:
                request += conn.recv(65536)
            conn.sendall(f"HTTP/1.1 200 OK\r\nContent-Length: {promised}\r\n\r\n".encode())
            conn.sendall(bytes(sent))

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        server = threading.Thread(target=serve, args=(listener,), daemon=True)
        server.start()
        impl = cls(f"http://127.0.0.1:{listener.getsockname()[1]}", timeout=sdk.Timeout(2.0, 5.0),
                   retry=sdk.RetryPolicy(max_retries=0))
        try:
            with pytest.raises(sdk.TransportError) as info:
                impl.read("bkt", "k")
            assert not isinstance(info.value, sdk.TimeoutError)
        finally:
            impl.close()
            server.join(10)


def test_put_from_file_object_iterator_and_path(api: API, bucket: str, tmp_path: Path) -> None:
    payload = data(2 * 1024 * 1024 + 3, seed=7)
    fileobj = io.BytesIO(b"skip" + payload)
    fileobj.seek(4)  # uploads start at the file's position
    api.call("put_object", bucket, "from-file", fileobj, mode=1)
    chunks = [payload[i : i + 100_000] for i in range(0, len(payload), 100_000)]
    api.call("put_object", bucket, "from-iter", iter(chunks), mode=1)  # chunked encoding
    api.call("put_object", bucket, "from-iter-sized", iter(chunks), size=len(payload), mode=1)
    path = tmp_path / "src.bin"
    path.write_bytes(payload)
    api.call("upload_file", bucket, "from-path", path, mode=1, max_replicas=1, filter="Expires&Signature")
    for key in ("from-file", "from-iter", "from-iter-sized", "from-path"):
        assert api.read(bucket, key)[0] == payload, key


def test_async_iterable_upload(endpoint: str, bucket: str) -> None:
    payload = data(1024 * 1024 + 1, seed=11)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(payload), 300_000):
            yield payload[i : i + 300_000]

    async def go() -> bytes:
        async with sdk.AsyncClient(endpoint) as client:
            await client.put_object(bucket, "async-iter", chunks(), mode=1)
            async with client.get_object(bucket, "async-iter") as body:
                return await body.aread()

    assert asyncio.run(go()) == payload


def test_download_file_and_progress(api: API, bucket: str, tmp_path: Path) -> None:
    payload = data(PIECE + 123, seed=5)
    seen: list[int] = []
    api.call("put_object", bucket, "shard", payload, mode=1, progress=seen.append)
    assert sum(seen) == len(payload)
    target = tmp_path / "shard.bin"
    got: list[int] = []
    assert api.call("download_file", bucket, "shard", target, progress=got.append) == len(payload)
    assert target.read_bytes() == payload and sum(got) == len(payload)
    assert not (tmp_path / "shard.bin.part").exists()


def test_download_of_a_missing_object_leaves_no_file(api: API, bucket: str, tmp_path: Path) -> None:
    with pytest.raises(sdk.NotFound):
        api.call("download_file", bucket, "missing", tmp_path / "x")
    assert list(tmp_path.iterdir()) == []


def test_special_keys_round_trip(api: API, bucket: str) -> None:
    keys = ['测试编码文件{"name":"juicefs"}%uFF081%uFF09.jpg', "a b+c&d=e;f@g", "dir/trailing/"]
    for i, key in enumerate(keys):
        api.call("put_object", bucket, key, f"v{i}".encode(), mode=1)
    for i, key in enumerate(keys):
        assert api.read(bucket, key)[0] == f"v{i}".encode(), key
        assert api.call("get_object_metadata", bucket, key).content_length == 2
    assert sorted(e.key for e in api.list(bucket)) == sorted(keys)


# -- copy, delete ----------------------------------------------------------------------------------


def test_copy_object(api: API, bucket: str) -> None:
    api.call("put_object", bucket, "src", b"copied", mode=1)
    api.call("copy_object", bucket, "src", "dst/copy")
    assert api.read(bucket, "dst/copy")[0] == b"copied"
    with pytest.raises(sdk.APIError):
        api.call("copy_object", bucket, "no-such-source", "dst/x")


def test_delete_is_idempotent(api: API, bucket: str) -> None:
    api.call("put_object", bucket, "gone", b"x", mode=1)
    api.call("delete_object", bucket, "gone")
    assert api.call("is_object_exist", bucket, "gone") is False
    api.call("delete_object", bucket, "gone")  # again: still fine
    with pytest.raises(sdk.NotFound):
        api.read(bucket, "gone")


# -- listing -----------------------------------------------------------------------------------------


def test_list_pages_prefixes_and_markers(api: API, bucket: str) -> None:
    for key in ["a/a", "a/a1", "b/b", "c/", "a1", "test"]:
        api.call("put_object", bucket, key, b"hello", mode=1)
    page = api.call("get_object_metadatas", bucket, delimiter="/", limit=4)
    assert sorted([*page.common_prefixes, *(m.key for m in page.metadatas)]) == ["a/", "a1", "b/", "c/"]
    page = api.call("get_object_metadatas", bucket, delimiter="/", marker="c/", limit=4)
    assert [m.key for m in page.metadatas] == ["test"] and page.common_prefixes == ()
    page = api.call("get_object_metadatas", bucket, prefix="a/")
    assert [m.key for m in page.metadatas] == ["a/a", "a/a1"]
    assert all(m.content_length == 5 and m.last_modified is not None for m in page.metadatas)
    entries = api.list(bucket, delimiter="/")
    assert [e.key for e in entries] == ["a/", "a1", "b/", "c/", "test"]
    assert [type(e) for e in entries[:2]] == [sdk.CommonPrefix, sdk.ObjectMetadata]
    assert [e.key for e in api.list(bucket, prefix="a", start_after="a/a")] == ["a/a1", "a1"]


@pytest.mark.slow
def test_iter_objects_pages_past_1000(endpoint: str) -> None:
    keys = [f"many/{i:05d}" for i in range(1003)]
    bucket = f"sdk-{uuid.uuid4().hex[:12]}"
    with sdk.Client(endpoint) as client:
        client.create_bucket(bucket)

    async def fill() -> None:
        async with sdk.AsyncClient(endpoint, max_connections=8) as client:
            sem = asyncio.Semaphore(8)

            async def put(key: str) -> None:
                async with sem:
                    await client.put_object(bucket, key, b"", mode=1)

            await asyncio.gather(*(put(k) for k in keys))

    asyncio.run(fill())
    with sdk.Client(endpoint) as client:
        assert len(client.get_object_metadatas(bucket, prefix="many/")) == 1000
        assert [e.key for e in client.iter_objects(bucket, prefix="many/")] == keys

    async def listed() -> list[str]:
        async with sdk.AsyncClient(endpoint) as client:
            return [e.key async for e in client.iter_objects(bucket, prefix="many/")]

    assert asyncio.run(listed()) == keys


# -- errors ------------------------------------------------------------------------------------------


def test_missing_object_errors(api: API, bucket: str) -> None:
    with pytest.raises(sdk.NotFound) as info:
        api.call("get_object_metadata", bucket, "nope")
    assert info.value.status == 404 and info.value.resource == f"dfs://{bucket}/nope"
    with pytest.raises(sdk.NotFound):
        api.read(bucket, "nope")
    assert api.call("is_object_exist", bucket, "nope") is False


def test_missing_bucket_is_an_api_error(api: API) -> None:
    with pytest.raises((sdk.NotFound, sdk.ServerError)):
        api.call("get_object_metadatas", f"nobucket-{uuid.uuid4().hex[:8]}")


def test_range_past_the_end_is_invalid_range(api: API, bucket: str) -> None:
    api.call("put_object", bucket, "short", b"hello", mode=1)
    with pytest.raises(sdk.InvalidRange) as info:
        api.read(bucket, "short", offset=100)
    assert info.value.status == 416


def test_usage_errors_are_raised_before_sending(api: API, bucket: str) -> None:
    with pytest.raises(sdk.UsageError):
        api.call("put_object", bucket, "k", b"x", mode=2)
    with pytest.raises(sdk.UsageError):
        api.call("get_object_metadatas", bucket, limit=-1)
    with pytest.raises(sdk.UsageError):
        api.call("delete_object", bucket, "a/../b")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("cls", [SyncAPI, AsyncAPI])
def test_refused_connection_is_a_transport_error(cls: type[API]) -> None:
    fast = sdk.RetryPolicy(max_retries=1, backoff_initial_s=0.01, backoff_max_s=0.01)
    impl = cls(f"http://127.0.0.1:{_closed_port()}", retry=fast)
    try:
        with pytest.raises(sdk.TransportError) as info:
            impl.call("get_object_metadata", "bkt", "k")
        assert not isinstance(info.value, sdk.TimeoutError)
    finally:
        impl.close()


@pytest.mark.parametrize("cls", [SyncAPI, AsyncAPI])
def test_a_silent_server_times_out(cls: type[API]) -> None:
    # A listening socket that never answers: the connection is accepted by the kernel, no reply comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        impl = cls(f"http://127.0.0.1:{port}", timeout=sdk.Timeout(1.0, 0.3), retry=sdk.RetryPolicy(max_retries=0))
        try:
            started = time.monotonic()
            with pytest.raises(sdk.TimeoutError):
                impl.call("get_object_metadata", "bkt", "k")
            assert time.monotonic() - started < 5
        finally:
            impl.close()


def test_sync_client_reuses_one_connection(endpoint: str) -> None:
    with sdk.Client(endpoint) as client:
        name = f"sdk-{uuid.uuid4().hex[:12]}"
        client.create_bucket(name)
        client.put_object(name, "k", b"hello", mode=1)
        for _ in range(5):
            client.get_object_metadata(name, "k")
            assert client.is_object_exist(name, "missing") is False  # a 404 keeps the connection too
            with pytest.raises(sdk.NotFound), client.get_object(name, "missing"):
                pass
            with client.get_object(name, "k") as body:
                assert body.read() == b"hello"
        client.get_object_metadatas(name)
        pool = client._pool.connection_from_url(endpoint)
        assert pool.num_connections == 1  # every call above went over the same keep-alive connection


_FLAT_MEMORY_SCRIPT = """
import asyncio, sys
import sdk

async def main(endpoint, bucket, src, dst):
    async with sdk.AsyncClient(endpoint) as client:
        await client.create_bucket(bucket)
        await client.upload_file(bucket, "big", src, mode=1)
        await client.download_file(bucket, "big", dst)

asyncio.run(main(*sys.argv[1:]))
# VmHWM, not ru_maxrss: after fork+exec, ru_maxrss also counts the parent's (pytest's) resident set
# at fork time, which is not this process's memory.
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""


@pytest.mark.slow
def test_async_client_moves_200_mib_each_way_with_flat_memory(endpoint: str, tmp_path: Path) -> None:
    size = 200 * 1024 * 1024
    src, dst = tmp_path / "src.bin", tmp_path / "dst.bin"
    rng = random.Random(200)
    digest = hashlib.sha256()
    with open(src, "wb") as out:
        for _ in range(size // (1024 * 1024)):
            block = rng.randbytes(1024 * 1024)
            digest.update(block)
            out.write(block)
    bucket = f"sdk-{uuid.uuid4().hex[:12]}"
    result = subprocess.run(
        [sys.executable, "-c", _FLAT_MEMORY_SCRIPT, endpoint, bucket, str(src), str(dst)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    peak_mib = int(result.stdout.split()[-1]) / 1024
    got = hashlib.sha256()
    with open(dst, "rb") as src_file:
        while block := src_file.read(1024 * 1024):
            got.update(block)
    assert got.hexdigest() == digest.hexdigest()
    print(f"\nAsyncClient peak RSS for 200 MiB up and down: {peak_mib:.0f} MiB")
    assert peak_mib < 150, f"peak RSS {peak_mib:.0f} MiB for a 200 MiB object"
