"""A `Source` for plain http(s) URLs: HEAD for the stat, ranged GETs for the pieces.

Version identity: the ETag when the origin sends one, else `<size>-<Last-Modified>`. Query strings
(often signatures or tokens) never appear in error messages or logs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from p2p.errors import SourceError, SourceNotFound
from p2p.types import MiB, SourceStat

CHUNK_BYTES = MiB
READ_BUFFER_BYTES = 256 * 1024


def redact(url: str) -> str:
    """The URL without query, fragment or credentials, safe to log."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class HTTPSource:
    """Reads objects from an HTTP(S) origin. Owns its client session unless one is passed in."""

    def __init__(
        self,
        session: aiohttp.ClientSession | None = None,
        *,
        connect_timeout_s: float = 10.0,
        read_timeout_s: float = 60.0,
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=None, sock_connect=connect_timeout_s, sock_read=read_timeout_s)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:  # created lazily: a session must be made inside the running loop
            # a larger read buffer than aiohttp's 64 KiB: fewer, bigger socket reads per piece
            self._session = aiohttp.ClientSession(
                timeout=self._timeout, auto_decompress=False, read_bufsize=READ_BUFFER_BYTES
            )
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    async def stat(self, url: str) -> SourceStat:
        """HEAD; when the origin refuses HEAD (403/405: e.g. a URL presigned for GET only), a GET of
        byte 0 whose Content-Range names the size."""
        try:
            async with self._client().head(url, allow_redirects=True) as resp:
                if resp.status not in (403, 405):
                    _check_status(resp.status, url)
                    if resp.content_length is None:
                        raise SourceError(f"origin sent no Content-Length for {redact(url)}")
                    return _stat_from(resp.headers, resp.content_length)
            headers = {"Range": "bytes=0-0", "Accept-Encoding": "identity"}
            async with self._client().get(url, headers=headers) as resp:
                if resp.status == 416:  # an empty object has no byte 0
                    return _stat_from(resp.headers, _range_total(resp.headers.get("Content-Range", ""), url))
                _check_status(resp.status, url)
                if resp.status == 206:
                    return _stat_from(resp.headers, _range_total(resp.headers.get("Content-Range", ""), url))
                if resp.content_length is None:
                    raise SourceError(f"origin sent no Content-Length for {redact(url)}")
                return _stat_from(resp.headers, resp.content_length)  # body left unread: released
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SourceError(f"stat of {redact(url)} failed: {type(exc).__name__}") from exc

    async def read(self, url: str, offset: int, length: int) -> AsyncIterator[bytes]:
        """Exactly `length` bytes from `offset` (a 206 answer, or a 200 when reading from 0)."""
        if length <= 0:
            return
        headers = {"Range": f"bytes={offset}-{offset + length - 1}", "Accept-Encoding": "identity"}
        left = length
        try:
            async with self._client().get(url, headers=headers) as resp:
                _check_status(resp.status, url)
                if resp.status == 200 and offset != 0:
                    raise SourceError(f"origin ignored the Range header for {redact(url)}")
                if resp.status == 206 and not resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
                    raise SourceError(f"origin answered another range for {redact(url)}")
                async for chunk in resp.content.iter_chunked(CHUNK_BYTES):
                    take = chunk if len(chunk) <= left else chunk[:left]
                    left -= len(take)
                    yield take
                    if left == 0:
                        break
        except (TimeoutError, aiohttp.ClientError) as exc:
            raise SourceError(f"GET {redact(url)} failed: {type(exc).__name__}") from exc
        if left:
            raise SourceError(f"short read from {redact(url)}: {length - left} of {length} bytes")


def _stat_from(headers: Mapping[str, str], size: int) -> SourceStat:
    etag = headers.get("ETag", "").strip()
    version = etag or f"{size}-{headers.get('Last-Modified', '')}"
    return SourceStat(size=size, version=version, content_type=headers.get("Content-Type", "application/octet-stream"))


def _range_total(content_range: str, url: str) -> int:
    """The size in `bytes a-b/SIZE` or `bytes */SIZE`."""
    _, _, total = content_range.rpartition("/")
    if not total.isdigit():
        raise SourceError(f"origin sent no usable Content-Range for {redact(url)}")
    return int(total)


def _check_status(status: int, url: str) -> None:
    if status in (404, 410):
        raise SourceNotFound(f"origin has no {redact(url)}")
    if status >= 300:
        raise SourceError(f"origin answered {status} for {redact(url)}")
