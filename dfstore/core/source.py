"""The origin backend as p2p's back-to-source `Source`, for URLs `dfs://{bucket}/{key}`.

The key is percent-encoded in the URL (every byte outside RFC 3986's unreserved set, `/` kept),
so `object_url` and `parse_object_url` are exact inverses for every key, including `%`, `?`, `#`,
spaces and keys ending in `/`.

When given the write-back journal, stat and read see an object still waiting there for the origin
(read-your-writes on this node, also after the cache evicted it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from dfstore.core.backend import Backend
from dfstore.errors import DFError, NotFound
from p2p.errors import SourceError, SourceNotFound
from p2p.types import SourceStat

if TYPE_CHECKING:
    from dfstore.core.writeback import WriteBackQueue

SCHEME = "dfs"
MAX_PINS = 10_000  # recent GETs whose version back-to-source reads check
_PREFIX = f"{SCHEME}://"


def object_url(bucket: str, key: str) -> str:
    return f"{_PREFIX}{bucket}/{quote(key, safe='/')}"


def parse_object_url(url: str) -> tuple[str, str]:
    """(bucket, key) of a `dfs://bucket/key` URL; ValueError for anything else."""
    if not url.startswith(_PREFIX):
        raise ValueError(f"not a {SCHEME}:// URL: {url!r}")
    bucket, sep, quoted = url[len(_PREFIX):].partition("/")
    if not bucket or not sep or not quoted:
        raise ValueError(f"{SCHEME}:// URL needs a bucket and a key: {url!r}")
    return bucket, unquote(quoted, errors="strict")


@contextmanager
def _as_source_errors(url: str) -> Iterator[None]:
    try:
        yield
    except NotFound as exc:
        raise SourceNotFound(f"{url}: {exc.message}") from exc
    except DFError as exc:
        raise SourceError(f"{url}: {exc.message}") from exc


class BackendSource:
    """p2p.source.Source over a Backend."""

    def __init__(self, backend: Backend, writeback: WriteBackQueue | None = None) -> None:
        self._backend = backend
        self._writeback = writeback
        self._pins: OrderedDict[str, str] = OrderedDict()  # url -> ETag the reads must still find

    def pin(self, url: str, etag: str) -> None:
        """Reads of `url` from now on must find this version (the ObjectService's HEAD just saw it):
        a download that spans an overwrite then fails rather than mixing two versions."""
        if not etag:
            return
        self._pins[url] = etag
        self._pins.move_to_end(url)
        while len(self._pins) > MAX_PINS:
            self._pins.popitem(last=False)

    def _parse(self, url: str) -> tuple[str, str]:
        try:
            return parse_object_url(url)
        except ValueError as exc:
            raise SourceError(str(exc)) from exc

    async def stat(self, url: str) -> SourceStat:
        bucket, key = self._parse(url)
        entry = self._writeback.pending(bucket, key) if self._writeback else None
        if entry is not None:
            meta = entry.meta
        else:
            with _as_source_errors(url):
                meta = await self._backend.head_object(bucket, key)
        return SourceStat(size=meta.size, version=meta.version, content_type=meta.content_type)

    async def read(self, url: str, offset: int, length: int) -> AsyncIterator[bytes]:
        bucket, key = self._parse(url)
        entry = self._writeback.pending(bucket, key) if self._writeback else None
        if self._writeback is not None and entry is not None:
            stream = self._writeback.read(entry, offset, length)
        else:
            stream = self._backend.read_object(bucket, key, offset, length, etag=self._pins.get(url))
        try:
            with _as_source_errors(url):
                async for chunk in stream:
                    yield chunk
        except OSError as exc:
            raise SourceError(f"{url}: {exc}") from exc
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
