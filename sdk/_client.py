"""The synchronous dfstore client: the shared core's flows, sent with urllib3 (pooled keep-alive)."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any

import urllib3

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


class Client:
    """A dfstore client. Thread-safe; reuse one per endpoint (it pools connections).

    >>> with Client("http://127.0.0.1:65004") as client:
    ...     with client.get_object("models", "llama/shard-1") as body:
    ...         for chunk in body.iter_chunks(): ...
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
        self._pool = urllib3.PoolManager(
            num_pools=4,
            maxsize=max_connections,
            retries=False,  # the core retries, once, for both clients
            timeout=urllib3.Timeout(connect=self.timeout.connect_s, read=self.timeout.read_s),
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    def close(self) -> None:
        self._pool.clear()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- API: build → send → parse -----------------------------------------------------------------

    def get_endpoint_metadata(self) -> EndpointMetadata:
        """The daemon's origin description (`GET /metadata`)."""
        response = self._run(_core.send_flow(_core.build_endpoint_metadata(self.endpoint), self.retry))
        return _core.parse_endpoint_metadata(response.content)

    def create_bucket(self, bucket: str) -> None:
        self._run(_core.send_flow(_core.build_create_bucket(self.endpoint, bucket), self.retry))

    def get_object_metadata(self, bucket: str, key: str) -> ObjectMetadata:
        """HEAD the object; raises NotFound when it does not exist."""
        response = self._run(_core.send_flow(_core.build_head_object(self.endpoint, bucket, key), self.retry))
        return _core.parse_object_metadata(key, response.headers)

    def is_object_exist(self, bucket: str, key: str) -> bool:
        return self._run(_core.exists_flow(_core.build_head_object(self.endpoint, bucket, key), self.retry))

    def get_object(
        self, bucket: str, key: str, *, offset: int = 0, length: int | None = None, filter: str = ""
    ) -> ObjectReader:
        """A context manager streaming the object (or `length` bytes from `offset`); the request is
        sent on entry: `with client.get_object(b, k) as body: body.read()`."""
        request = _core.build_get_object(self.endpoint, bucket, key, offset=offset, length=length, filter=filter)
        return ObjectReader(self, request)

    def download_file(
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
            with self.get_object(bucket, key, offset=offset, length=length, filter=filter) as body:
                with open(partial, "wb") as out:
                    for chunk in body.iter_chunks():
                        out.write(chunk)
                        written += len(chunk)
                        if progress:
                            progress(len(chunk))
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
        return written

    def put_object(
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
        """Upload bytes, a binary file object (from its position) or an iterable of chunks, streamed.
        Pass `size` for an iterable to send a Content-Length instead of chunked encoding."""
        source = source_of(data, size)
        request = _core.build_put_object(
            self.endpoint, bucket, key, source, mode=mode, max_replicas=max_replicas, filter=filter
        )
        if isinstance(source, IterSource) and not isinstance(source.chunks, Iterable):
            raise UsageError("the sync Client cannot upload an async iterable; use AsyncClient")
        self._run(_core.send_flow(request, self.retry), progress)

    def upload_file(
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
        source = PathSource(Path(path), os.stat(path).st_size)
        request = _core.build_put_object(
            self.endpoint, bucket, key, source, mode=mode, max_replicas=max_replicas, filter=filter
        )
        self._run(_core.send_flow(request, self.retry), progress)

    def copy_object(self, bucket: str, source_key: str, destination_key: str) -> None:
        """Server-side copy within one bucket."""
        request = _core.build_copy_object(self.endpoint, bucket, source_key, destination_key)
        self._run(_core.send_flow(request, self.retry))

    def delete_object(self, bucket: str, key: str) -> None:
        """Delete; succeeds for a missing key too (the origin's delete is idempotent)."""
        self._run(_core.send_flow(_core.build_delete_object(self.endpoint, bucket, key), self.retry))

    def get_object_metadatas(
        self, bucket: str, *, prefix: str = "", marker: str = "", delimiter: str = "", limit: int = 0
    ) -> ObjectMetadatas:
        """One page of the listing (at most 1000 entries; `limit` 0 means 1000)."""
        request = _core.build_list_objects(
            self.endpoint, bucket, prefix=prefix, marker=marker, delimiter=delimiter, limit=limit
        )
        response = self._run(_core.send_flow(request, self.retry))
        return _core.parse_object_metadatas(response.content, bucket=bucket)

    def iter_objects(
        self, bucket: str, *, prefix: str = "", delimiter: str = "", start_after: str = ""
    ) -> Iterator[ObjectMetadata | CommonPrefix]:
        """Every object under `prefix` in key order, paging by marker; with a delimiter, the common
        prefixes come as `CommonPrefix` entries in their place."""
        flow = _core.list_all_flow(
            self.endpoint, bucket, self.retry, prefix=prefix, delimiter=delimiter, start_after=start_after
        )
        return self._iter(flow)

    # -- the driver and the send layer -------------------------------------------------------------

    def _run(self, flow: Flow[T], progress: Progress | None = None) -> T:
        """_drive_sync: feed the flow responses (or throw transport errors into it) until it returns."""
        reply: Response | None = None
        error: TransportError | None = None
        while True:
            try:
                step = flow.throw(error) if error else flow.send(reply)  # type: ignore[arg-type]
            except StopIteration as stop:
                return stop.value
            reply, error = self._step(step, progress)

    def _iter(self, flow: Any) -> Iterator[Any]:
        reply: Response | None = None
        error: TransportError | None = None
        while True:
            try:
                step = flow.throw(error) if error else flow.send(reply)
            except StopIteration:
                return
            if isinstance(step, Request | Sleep):
                reply, error = self._step(step)
            else:
                reply, error = None, None
                yield step

    def _step(
        self, step: Request | Sleep, progress: Progress | None = None
    ) -> tuple[Response | None, TransportError | None]:
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None, None
        try:
            return self._send(step, progress), None
        except TransportError as exc:
            return None, exc

    def _send(self, request: Request, progress: Progress | None = None) -> Response:
        body: Any = request.body
        if isinstance(body, MultipartBody):
            body = _iter_body(body, progress)  # a fresh generator per attempt
        with translate_errors(request):
            raw = self._pool.request(
                request.method,
                request.url,
                body=body,
                headers=dict(request.headers),
                preload_content=False,
                decode_content=False,
                redirect=False,
            )
            headers = {name.lower(): value for name, value in raw.headers.items()}
            if request.stream and 200 <= raw.status < 300:
                return Response(raw.status, headers, raw=raw)
            # Small bodies only (JSON pages, error texts); an error body is capped.
            limit = None if 200 <= raw.status < 300 else _core.ERROR_BODY_LIMIT
            try:
                content = raw.read(limit)
            finally:
                if raw.length_remaining == 0 or limit is None:
                    raw.release_conn()  # the whole response was read: keep the connection
                else:
                    raw.close()
        return Response(raw.status, headers, content)


class ObjectReader:
    """The body of one GET, open between `__enter__` and `__exit__`. `content_length` is the number of
    bytes the server will send (the range's length for a ranged read) when it said so."""

    def __init__(self, client: Client, request: Request) -> None:
        self._client = client
        self._request = request
        self._raw: Any = None
        self._eof = False
        self._received = 0
        self.content_length: int | None = None
        self.content_type = ""

    def __enter__(self) -> ObjectReader:
        response = self._client._run(_core.send_flow(self._request, self._client.retry))
        self._raw = response.raw
        length = response.headers.get("content-length")
        self.content_length = int(length) if length and length.isdigit() else None
        self.content_type = response.headers.get("content-type", "")
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes (all the rest when negative); b"" at the end."""
        raw = self._open()
        with translate_errors(self._request):
            data: bytes = raw.read(None if size < 0 else size)
        self._received += len(data)
        if not data or size < 0 or self._received == self.content_length:
            self._eof = True  # the connection can go back to the pool
        return data

    def iter_chunks(self, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
        while chunk := self.read(chunk_size):
            yield chunk

    def close(self) -> None:
        raw, self._raw = self._raw, None
        if raw is None:
            return
        if self._eof:
            raw.release_conn()
        else:
            raw.close()  # unread bytes are on the wire: drop the connection rather than reuse it
            raw.release_conn()

    def _open(self) -> Any:
        if self._raw is None:
            raise RuntimeError("use the reader inside `with client.get_object(...) as body:`")
        return self._raw


@contextlib.contextmanager
def translate_errors(request: Request) -> Iterator[None]:
    """urllib3's exceptions → the SDK's, once, here."""
    where = f"{request.method} {request.url}"
    try:
        yield
    except urllib3.exceptions.NewConnectionError as exc:  # checked first: it subclasses ConnectTimeoutError
        raise TransportError(f"{where}: cannot connect: {exc}", bucket=request.bucket, key=request.key) from exc
    except urllib3.exceptions.TimeoutError as exc:
        raise TimeoutError(f"{where}: timed out", bucket=request.bucket, key=request.key) from exc
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise TransportError(f"{where}: {exc}", bucket=request.bucket, key=request.key) from exc


def _iter_body(body: MultipartBody, progress: Progress | None) -> Iterator[bytes]:
    """The multipart bytes, the source read in 1 MiB pieces as the socket takes them."""
    yield body.head
    for chunk in _iter_source(body):
        yield chunk
        if progress:
            progress(len(chunk))
    yield body.tail


def _iter_source(body: MultipartBody) -> Iterable[bytes]:
    source = body.source
    if source is None:
        return
    if isinstance(source, BytesSource):
        view = memoryview(source.data).cast("B")
        for start in range(0, len(view), CHUNK_SIZE):
            yield view[start : start + CHUNK_SIZE]  # type: ignore[misc]
    elif isinstance(source, PathSource):
        with open(source.path, "rb") as fileobj:
            yield from _read_exactly(fileobj, source.size)
    elif isinstance(source, FileSource):
        if source.start is not None:
            source.fileobj.seek(source.start)
        yield from _read_exactly(source.fileobj, source.size)
    elif isinstance(source, IterSource):
        if not isinstance(source.chunks, Iterable):
            raise UsageError("the sync Client cannot upload an async iterable; use AsyncClient")
        yield from _counted(source.chunks, source.size)


def _read_exactly(fileobj: Any, size: int | None) -> Iterator[bytes]:
    """`size` bytes (all when None); a file that shrank under us is an error, not a short upload."""
    left = size
    while left is None or left > 0:
        chunk = fileobj.read(CHUNK_SIZE if left is None else min(CHUNK_SIZE, left))
        if not chunk:
            break
        if left is not None:
            left -= len(chunk)
        yield chunk
    if left:
        raise UsageError(f"the file ended {left} bytes before its announced size")


def _counted(chunks: Iterable[bytes], size: int | None) -> Iterator[bytes]:
    sent = 0
    for chunk in chunks:
        sent += len(chunk)
        if size is not None and sent > size:
            raise UsageError(f"the iterable yielded more than the announced {size} bytes")
        if chunk:
            yield chunk
    if size is not None and sent != size:
        raise UsageError(f"the iterable yielded {sent} bytes, {size} were announced")
