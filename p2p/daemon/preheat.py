"""A seed peer's side of a preheat: fetch one object into the piece store, answer when it is all here.

The task must be the one a reading daemon will ask for, so the id is computed exactly as
`TaskManager.open` does for a dfstore GET: `task_id(url, version, range)` over the canonical
`dfs://bucket/key` URL and the origin's version from a fresh stat. An `s3://bucket/key` preheat
names the same object in this daemon's origin store, so it becomes that `dfs://` URL.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, unquote

from p2p.common.httprange import MalformedRange, RangeNotSatisfiable, parse_range
from p2p.daemon.tasks import TaskManager
from p2p.errors import SourceError
from p2p.proto.values import PreheatResult, PreheatSpec
from p2p.types import ByteRange

log = logging.getLogger(__name__)


def canonical_url(url: str) -> str:
    """The URL a dfstore read of the same object uses (dfstore.core.source.object_url's encoding).

    `s3://bucket/key` takes the key as written; a `dfs://` URL is re-encoded so that a key given
    with or without percent-escapes maps to one task. Other schemes pass unchanged.
    """
    scheme, _, rest = url.partition("://")
    if scheme not in ("dfs", "s3"):
        return url
    bucket, _, key = rest.partition("/")
    if not bucket or not key:
        raise SourceError(f"{scheme}:// URL needs a bucket and a key: {url!r}")
    if scheme == "dfs":
        key = unquote(key, errors="strict")
    return f"dfs://{bucket}/{quote(key, safe='/')}"


def resolve_range(spec: str, size: int) -> ByteRange | None:
    """"a-b" or "bytes=a-b" against the object size; None for the whole object."""
    if not spec:
        return None
    header = spec if spec.startswith("bytes=") else f"bytes={spec}"
    try:
        parsed = parse_range(header)
        return parsed.resolve(size) if parsed is not None else None
    except (MalformedRange, RangeNotSatisfiable) as exc:
        raise SourceError(f"preheat range {spec!r} does not fit an object of {size} bytes") from exc


async def preheat(tasks: TaskManager, spec: PreheatSpec) -> PreheatResult:
    url = canonical_url(spec.url)
    stat = await tasks.sources.stat(url)
    byte_range = resolve_range(spec.range, stat.size)
    reader = await tasks.open(url, stat=stat, byte_range=byte_range)
    async with reader:
        # Walking the regions waits for (and verifies) every piece without reading a byte of data.
        async for _region in reader.regions():
            pass
    log.info("preheated task_id=%s url=%s (%d bytes)", reader.task_id, url, reader.content_length)
    return PreheatResult(task_id=reader.task_id, content_length=reader.content_length, version=stat.version)
