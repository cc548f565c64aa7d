"""The back-to-source seam. Origin stores (dfstore's backends, plain HTTP) implement `Source`;
the daemon resolves a task's URL to one by its scheme and never learns what S3 is."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Protocol
from urllib.parse import urlsplit

from p2p.errors import SourceError
from p2p.types import SourceStat


class Source(Protocol):
    async def stat(self, url: str) -> SourceStat:
        """Size and version of the object; raises SourceNotFound or SourceError."""
        ...

    def read(self, url: str, offset: int, length: int) -> AsyncIterator[bytes]:
        """Stream exactly `length` bytes from `offset`; raises SourceError on a short read."""
        ...


class SourceRouter:
    """Picks the Source for a URL by its scheme (`dfs`, `s3`, `http`, `https`)."""

    def __init__(self, sources: Mapping[str, Source]) -> None:
        self._sources = dict(sources)

    def for_url(self, url: str) -> Source:
        scheme = urlsplit(url).scheme
        try:
            return self._sources[scheme]
        except KeyError:
            raise SourceError(f"no origin configured for scheme {scheme!r} of {url}") from None

    async def stat(self, url: str) -> SourceStat:
        return await self.for_url(url).stat(url)

    def read(self, url: str, offset: int, length: int) -> AsyncIterator[bytes]:
        return self.for_url(url).read(url, offset, length)

    async def read_into(self, url: str, offset: int, into: memoryview | bytearray) -> None:
        """Fill `into` with exactly len(into) bytes from `offset`; SourceError on a short or long read."""
        length = len(into)
        pos = 0
        stream = self.read(url, offset, length)
        try:
            async for chunk in stream:
                end = pos + len(chunk)
                if end > length:
                    raise SourceError(f"origin sent more than the {length} bytes asked for")
                into[pos:end] = chunk
                pos = end
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if pos != length:
            raise SourceError(f"short read from origin: {pos} of {length} bytes at offset {offset}")
