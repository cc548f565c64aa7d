"""Reads through the daemon's TaskManager, with P2P errors translated into the object error tree."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

from dfstore.errors import BackendError, InternalError, NoSuchKey, P2PUnavailable
from dfstore.models import ObjectMeta
from p2p.daemon.tasks import TaskReader
from p2p.errors import P2PError, SourceError, SourceNotFound, StorageError
from p2p.types import ByteRange, FileRegion


@contextmanager
def map_p2p_errors(bucket: str = "", key: str = "") -> Iterator[None]:
    try:
        yield
    except SourceNotFound as exc:  # deleted at the origin between our HEAD and the read
        raise NoSuchKey(f"object vanished from the origin: {exc.message}", bucket=bucket, key=key) from exc
    except SourceError as exc:
        raise BackendError(f"origin read failed: {exc.message}", bucket=bucket, key=key) from exc
    except StorageError as exc:
        raise InternalError(f"local cache: {exc.message}", bucket=bucket, key=key) from exc
    except P2PError as exc:
        raise P2PUnavailable(f"p2p: {exc.message}", bucket=bucket, key=key) from exc


class ObjectReader:
    """One GET: the object's metadata, the resolved range, and its bytes as file regions.

    Use as `async with reader:` (or call `aclose()`): it pins the cached task while open.
    """

    def __init__(self, meta: ObjectMeta, byte_range: ByteRange | None, reader: TaskReader) -> None:
        self.meta = meta
        self.byte_range = byte_range
        self.content_length = reader.content_length
        self._reader = reader

    async def regions(self) -> AsyncIterator[FileRegion]:
        with map_p2p_errors(self.meta.bucket, self.meta.key):
            async for region in self._reader.regions():
                yield region

    async def aclose(self) -> None:
        await self._reader.aclose()

    async def __aenter__(self) -> ObjectReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
