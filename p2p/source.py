"""The back-to-source seam. Origin stores (dfstore's backends, plain HTTP) implement `Source`;
the daemon resolves a task's URL to one by its scheme and never learns what S3 is."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
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

    async def read_pieces(
        self, url: str, offset: int, lengths: Sequence[int], into: memoryview
    ) -> AsyncGenerator[int, None]:
        """One ranged read over consecutive pieces of `lengths` bytes starting at `offset`.

        Each piece in turn is cut into `into[:length]` and its index yielded as soon as its last byte is
        in; the caller uses the buffer before asking for the next one, so one buffer serves the whole
        run. SourceError on a short or long read. Use it under `contextlib.aclosing`.
        """
        stream = self.read(url, offset, sum(lengths))
        index, filled = 0, 0
        try:
            async for chunk in stream:
                view = memoryview(chunk)
                while view:
                    if index == len(lengths):
                        raise SourceError(f"origin sent more than the {sum(lengths)} bytes asked for")
                    take = min(len(view), lengths[index] - filled)
                    into[filled : filled + take] = view[:take]
                    filled += take
                    view = view[take:]
                    if filled == lengths[index]:
                        yield index
                        index, filled = index + 1, 0
        finally:
            aclose = getattr(stream, "aclose", None)
            if aclose is not None:
                await aclose()
        if index != len(lengths):
            done = sum(lengths[:index]) + filled
            raise SourceError(f"short read from origin: {done} of {sum(lengths)} bytes at offset {offset}")
