"""The asyncio dfstore client: the shared core's flows, sent with aiohttp (pooled keep-alive).
Same public methods and signatures as `Client`; only the lifecycle names differ (aclose, aread)."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import socket
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

import aiohttp
from yarl import URL

from . import _core
from ._core import Flow, Request, Response, Sleep, T
from ._errors import TimeoutError, TransportError, UsageError
from ._models import (
    CHUNK_SIZE,
    DEFAULT_ENDPOINT,
    CommonPrefix,
    EndpointMetadata,
    ObjectMetadata,
    ObjectMetadatas,
    Progress,
    PutMode,
    RetryPolicy,
    Timeout,
)
from ._multipart import BytesSource, FileSource, IterSource, MultipartBody, PathSource, PutData, source_of

# aiohttp pauses the socket when this much is buffered unread; its 64 KiB default makes a fast
# download stop and restart the transport thousands of times per GiB.
READ_BUFFER_BYTES = 2 * 1024 * 1024
# asyncio's selector transport takes at most 256 KiB per recv(); for a bulk body, 1 MiB reads cut the
# client's CPU per byte by about a third (benchmarks/sdk_download.py), which on a busy host is speed.
TRANSPORT_READ_BYTES = 1024 * 1024
# A body at least this long is read straight from the connection's socket (`_SocketBody`); a shorter one
# stays with aiohttp and keeps its keep-alive connection.
DIRECT_READ_BYTES = 8 * 1024 * 1024


class AsyncClient:
    """An asyncio dfstore client. Use one per endpoint and event loop; close it with `aclose()` or
    `async with`.

    >>> async with AsyncClient("http://127.0.0.1:65004") as client:
    ...     async with client.get_object("models", "llama/shard-1") as body:
    ...         async for chunk in body.aiter_chunks(): ...
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_ENDPOINT,
        *,
        timeout: Timeout | float = Timeout(),
        retry: RetryPolicy = RetryPolicy(),
        max_connections: int = 10,
    ) -> None:
        self.endpoint = _core.parse_endpoint(endpoint)
        self.timeout = timeout if isinstance(timeout, Timeout) else Timeout(timeout, timeout)
        self.retry = retry
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None  # made on first use, inside the running loop

    # -- lifecycle ---------------------------------------------------------------------------------

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- API: build → send → parse -----------------------------------------------------------------

    async def get_endpoint_metadata(self) -> EndpointMetadata:
        """The daemon's origin description (`GET /metadata`)."""
        response = await self._run(_core.send_flow(_core.build_endpoint_metadata(self.endpoint), self.retry))
        return _core.parse_endpoint_metadata(response.content)

    async def create_bucket(self, bucket: str) -> None:
        await self._run(_core.send_flow(_core.build_create_bucket(self.endpoint, bucket), self.retry))

    async def get_object_metadata(self, bucket: str, key: str) -> ObjectMetadata:
        """HEAD the object; raises NotFound when it does not exist."""
        request = _core.build_head_object(self.endpoint, bucket, key)
        response = await self._run(_core.send_flow(request, self.retry))
        return _core.parse_object_metadata(key, response.headers)

    async def is_object_exist(self, bucket: str, key: str) -> bool:
        return await self._run(_core.exists_flow(_core.build_head_object(self.endpoint, bucket, key), self.retry))

    def get_object(
        self, bucket: str, key: str, *, offset: int = 0, length: int | None = None, filter: str = ""
    ) -> AsyncObjectReader:
        """An async context manager streaming the object (or `length` bytes from `offset`); the request
        is sent on entry: `async with client.get_object(b, k) as body: await body.aread()`."""
        request = _core.build_get_object(self.endpoint, bucket, key, offset=offset, length=length, filter=filter)
        return AsyncObjectReader(self, request)

    async def download_file(
        self,
        bucket: str,
        key: str,
        path: str | os.PathLike[str],
        *,
        offset: int = 0,
        length: int | None = None,
        filter: str = "",
        progress: Progress | None = None,
    ) -> int:
        """Stream the object into `path` (via `path.part`, renamed when complete). Returns its size."""
        target = Path(path)
        partial = target.with_name(target.name + ".part")
        written = 0
        try:
            async with self.get_object(bucket, key, offset=offset, length=length, filter=filter) as body:
                out = await asyncio.to_thread(open, partial, "wb")
                try:
                    async for chunk in body.aiter_chunks():
                        await asyncio.to_thread(out.write, chunk)
                        written += len(chunk)
                        if progress:
                            progress(len(chunk))
                finally:
                    await asyncio.to_thread(out.close)
            await asyncio.to_thread(os.replace, partial, target)
        finally:
            await asyncio.to_thread(partial.unlink, True)
        return written

    async def put_object(
        self,
        bucket: str,
        key: str,
        data: PutData,
        *,
        size: int | None = None,
        mode: PutMode | int = PutMode.ASYNC_WRITE_BACK,
        max_replicas: int = 0,
        filter: str = "",
        progress: Progress | None = None,
    ) -> None:
        """Upload bytes, a binary file object (from its position) or a (sync or async) iterable of
        chunks, streamed. Pass `size` for an iterable to send a Content-Length instead of chunked."""
        source = source_of(data, size)
        request = _core.build_put_object(
            self.endpoint, bucket, key, source, mode=mode, max_replicas=max_replicas, filter=filter
        )
        await self._run(_core.send_flow(request, self.retry), progress)

    async def upload_file(
        self,
        bucket: str,
        key: str,
        path: str | os.PathLike[str],
        *,
        mode: PutMode | int = PutMode.ASYNC_WRITE_BACK,
        max_replicas: int = 0,
        filter: str = "",
        progress: Progress | None = None,
    ) -> None:
        """Upload a local file, streamed with a Content-Length (and retried from the start if needed)."""
        stat = await asyncio.to_thread(os.stat, path)
        source = PathSource(Path(path), stat.st_size)
        request = _core.build_put_object(
            self.endpoint, bucket, key, source, mode=mode, max_replicas=max_replicas, filter=filter
        )
        await self._run(_core.send_flow(request, self.retry), progress)

    async def copy_object(self, bucket: str, source_key: str, destination_key: str) -> None:
        """Server-side copy within one bucket."""
        request = _core.build_copy_object(self.endpoint, bucket, source_key, destination_key)
        await self._run(_core.send_flow(request, self.retry))

    async def delete_object(self, bucket: str, key: str) -> None:
        """Delete; succeeds for a missing key too (the origin's delete is idempotent)."""
        await self._run(_core.send_flow(_core.build_delete_object(self.endpoint, bucket, key), self.retry))

    async def get_object_metadatas(
        self, bucket: str, *, prefix: str = "", marker: str = "", delimiter: str = "", limit: int = 0
    ) -> ObjectMetadatas:
        """One page of the listing (at most 1000 entries; `limit` 0 means 1000)."""
        request = _core.build_list_objects(
            self.endpoint, bucket, prefix=prefix, marker=marker, delimiter=delimiter, limit=limit
        )
        response = await self._run(_core.send_flow(request, self.retry))
        return _core.parse_object_metadatas(response.content, bucket=bucket)

    async def iter_objects(
        self, bucket: str, *, prefix: str = "", delimiter: str = "", start_after: str = ""
    ) -> AsyncIterator[ObjectMetadata | CommonPrefix]:
        """Every object under `prefix` in key order, paging by marker; with a delimiter, the common
        prefixes come as `CommonPrefix` entries in their place."""
        flow = _core.list_all_flow(
            self.endpoint, bucket, self.retry, prefix=prefix, delimiter=delimiter, start_after=start_after
        )
        async for entry in self._iter(flow):
            yield entry

    # -- the driver and the send layer -------------------------------------------------------------

    async def _run(self, flow: Flow[T], progress: Progress | None = None) -> T:
        """_drive_async: feed the flow responses (or throw transport errors into it) until it returns."""
        reply: Response | None = None
        error: TransportError | None = None
        while True:
            try:
                step = flow.throw(error) if error else flow.send(reply)  # type: ignore[arg-type]
            except StopIteration as stop:
                return stop.value
            reply, error = await self._step(step, progress)

    async def _iter(self, flow: Any) -> AsyncIterator[Any]:
        reply: Response | None = None
        error: TransportError | None = None
        while True:
            try:
                step = flow.throw(error) if error else flow.send(reply)
            except StopIteration:
                return
            if isinstance(step, Request | Sleep):
                reply, error = await self._step(step)
            else:
                reply, error = None, None
                yield step

    async def _step(
        self, step: Request | Sleep, progress: Progress | None = None
    ) -> tuple[Response | None, TransportError | None]:
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None, None
        try:
            return await self._send(step, progress), None
        except TransportError as exc:
            return None, exc

    def _client_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._max_connections),
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=self.timeout.connect_s, sock_read=self.timeout.read_s
                ),
                auto_decompress=False,
                read_bufsize=READ_BUFFER_BYTES,
            )
        return self._session

    async def _send(self, request: Request, progress: Progress | None = None) -> Response:
        body: Any = request.body
        if isinstance(body, MultipartBody):
            body = _aiter_body(body, progress)  # a fresh generator per attempt
        with translate_errors(request):
            raw = await self._client_session().request(
                request.method,
                URL(request.url, encoded=True),  # sent as built: the core already escaped the path
                data=body,
                headers=dict(request.headers),
                allow_redirects=False,
            )
            headers = {name.lower(): value for name, value in raw.headers.items()}
            if request.stream and 200 <= raw.status < 300:
                _widen_reads(raw)
                return Response(raw.status, headers, raw=raw)
            try:
                if 200 <= raw.status < 300:
                    content = await raw.read()  # small bodies only: JSON pages
                else:
                    content = await raw.content.read(_core.ERROR_BODY_LIMIT)
            finally:
                raw.release()
        return Response(raw.status, headers, content)


class AsyncObjectReader:
    """The body of one GET, open inside `async with`. `content_length` is the number of bytes the
    server will send (the range's length for a ranged read) when it said so."""

    def __init__(self, client: AsyncClient, request: Request) -> None:
        self._client = client
        self._request = request
        self._raw: aiohttp.ClientResponse | None = None
        self._direct: _SocketBody | None = None
        self.content_length: int | None = None
        self.content_type = ""

    async def __aenter__(self) -> AsyncObjectReader:
        response = await self._client._run(_core.send_flow(self._request, self._client.retry))
        self._raw = response.raw
        length = response.headers.get("content-length")
        self.content_length = int(length) if length and length.isdigit() else None
        self.content_type = response.headers.get("content-type", "")
        if self._raw is not None:
            self._direct = _SocketBody.take(self._raw, self.content_length, self._client.timeout.read_s)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aread(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all the rest when negative); b"" at the end."""
        raw = self._open()
        with translate_errors(self._request):
            if self._direct is None:
                return await raw.content.read(size)
            if size >= 0:
                return await self._direct.read(size)
            return b"".join([chunk async for chunk in self._direct.chunks(CHUNK_SIZE)])

    async def aiter_chunks(self, chunk_size: int = CHUNK_SIZE) -> AsyncIterator[bytes]:
        raw = self._open()
        with translate_errors(self._request):
            chunks = raw.content.iter_chunked(chunk_size) if self._direct is None else self._direct.chunks(chunk_size)
            async for chunk in chunks:
                yield chunk

    async def aclose(self) -> None:
        raw, self._raw = self._raw, None
        direct, self._direct = self._direct, None
        if raw is None:
            return
        if direct is not None:
            direct.close()
            raw.close()  # aiohttp never saw this body end: the connection cannot be reused
        elif raw.content.at_eof():
            raw.release()
        else:
            raw.close()  # unread bytes are on the wire: drop the connection rather than reuse it

    def _open(self) -> aiohttp.ClientResponse:
        if self._raw is None:
            raise RuntimeError("use the reader inside `async with client.get_object(...) as body:`")
        return self._raw


class _SocketBody:
    """The rest of a long body, read with `loop.sock_recv` from a duplicate of the connection's socket.

    aiohttp's C response parser copies every body chunk out of the bytes it received: about 0.2 CPU
    s/GiB on top of the `recv` itself, which made the asyncio client cost half again as much CPU per
    byte as curl or the sync client (benchmarks/sdk_download.py, benchmarks/README.md). Once the
    headers are parsed, a plain-TCP, identity-encoded body with a Content-Length of at least
    DIRECT_READ_BYTES is taken over: what aiohttp already buffered is served first, its transport is
    paused, and the rest comes from the socket. aiohttp never sees that body end, so the reader closes
    the connection afterwards instead of returning it to the pool.
    """

    def __init__(self, buffered: bytes, sock: socket.socket, remaining: int, read_s: float) -> None:
        self._buffered = buffered
        self._offset = 0
        self._sock = sock
        self._remaining = remaining  # bytes still on the wire
        self._read_s = read_s

    @classmethod
    def take(cls, raw: aiohttp.ClientResponse, length: int | None, read_s: float) -> _SocketBody | None:
        """Take over `raw`'s body when it qualifies, else None (aiohttp keeps it)."""
        if length is None or length < DIRECT_READ_BYTES:
            return None
        if raw.headers.get("Content-Encoding", "identity").lower() != "identity" or "Transfer-Encoding" in raw.headers:
            return None
        transport = raw.connection.transport if raw.connection is not None else None
        if transport is None or transport.get_extra_info("sslcontext") is not None:
            return None
        tsock = transport.get_extra_info("socket")
        if tsock is None:
            return None
        try:
            sock = socket.socket(fileno=os.dup(tsock.fileno()))
        except OSError:
            return None
        try:
            buffered = raw.content.read_nowait()  # may resume the transport: pause it right after
        except (RuntimeError, aiohttp.ClientError):  # a read in progress, or an error already stored
            sock.close()
            return None
        transport.pause_reading()
        sock.setblocking(False)
        return cls(buffered, sock, length - len(buffered), read_s)

    async def read(self, size: int) -> bytes:
        """Up to `size` bytes; b"" at the end. A connection that ends early is an error."""
        if self._offset < len(self._buffered):
            chunk = self._buffered[self._offset : self._offset + size]
            self._offset += len(chunk)
            return chunk
        if self._remaining <= 0 or size <= 0:
            return b""
        async with asyncio.timeout(self._read_s):
            chunk = await asyncio.get_running_loop().sock_recv(self._sock, min(size, self._remaining))
        if not chunk:
            raise ConnectionResetError(f"the connection closed {self._remaining} bytes before the body's end")
        self._remaining -= len(chunk)
        return chunk

    async def chunks(self, chunk_size: int) -> AsyncIterator[bytes]:
        while chunk := await self.read(chunk_size):
            yield chunk

    def close(self) -> None:
        self._sock.close()


def _widen_reads(raw: aiohttp.ClientResponse) -> None:
    """Best effort: only asyncio's own selector transport has `max_size` (uvloop's reads are its own)."""
    transport = raw.connection.transport if raw.connection is not None else None
    if transport is not None and isinstance(getattr(transport, "max_size", None), int):
        transport.max_size = max(transport.max_size, TRANSPORT_READ_BYTES)  # type: ignore[attr-defined]


@contextlib.contextmanager
def translate_errors(request: Request) -> Iterator[None]:
    """aiohttp's exceptions → the SDK's, once, here."""
    where = f"{request.method} {request.url}"
    try:
        yield
    except builtins.TimeoutError as exc:  # aiohttp's timeouts (ServerTimeoutError too) derive from it
        raise TimeoutError(f"{where}: timed out", bucket=request.bucket, key=request.key) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise TransportError(f"{where}: {exc!r}", bucket=request.bucket, key=request.key) from exc


async def _aiter_body(body: MultipartBody, progress: Progress | None) -> AsyncIterator[bytes]:
    """The multipart bytes; file reads run in a thread, 1 MiB at a time, as the socket takes them."""
    yield body.head
    async for chunk in _aiter_source(body):
        yield chunk
        if progress:
            progress(len(chunk))
    yield body.tail


async def _aiter_source(body: MultipartBody) -> AsyncIterator[bytes]:
    source = body.source
    if source is None:
        return
    if isinstance(source, BytesSource):
        view = memoryview(source.data).cast("B")
        for start in range(0, len(view), CHUNK_SIZE):
            yield view[start : start + CHUNK_SIZE]  # type: ignore[misc]
    elif isinstance(source, PathSource):
        fileobj = await asyncio.to_thread(open, source.path, "rb")
        try:
            async for chunk in _aread_exactly(fileobj, source.size):
                yield chunk
        finally:
            await asyncio.to_thread(fileobj.close)
    elif isinstance(source, FileSource):
        if source.start is not None:
            await asyncio.to_thread(source.fileobj.seek, source.start)
        async for chunk in _aread_exactly(source.fileobj, source.size):
            yield chunk
    elif isinstance(source, IterSource):
        sent = 0
        async for chunk in _any_iter(source.chunks):
            sent += len(chunk)
            if source.size is not None and sent > source.size:
                raise UsageError(f"the iterable yielded more than the announced {source.size} bytes")
            if chunk:
                yield chunk
        if source.size is not None and sent != source.size:
            raise UsageError(f"the iterable yielded {sent} bytes, {source.size} were announced")


async def _any_iter(chunks: Iterable[bytes] | AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    if isinstance(chunks, AsyncIterable):
        async for chunk in chunks:
            yield chunk
    else:
        for chunk in chunks:
            yield chunk


async def _aread_exactly(fileobj: BinaryIO, size: int | None) -> AsyncIterator[bytes]:
    """`size` bytes (all when None); a file that shrank under us is an error, not a short upload."""
    left = size
    while left is None or left > 0:
        chunk = await asyncio.to_thread(fileobj.read, CHUNK_SIZE if left is None else min(CHUNK_SIZE, left))
        if not chunk:
            break
        if left is not None:
            left -= len(chunk)
        yield chunk
    if left:
        raise UsageError(f"the file ended {left} bytes before its announced size")
