"""Value types shared by every p2p component. Frozen dataclasses; no wire types here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO, NewType

TaskID = NewType("TaskID", str)
PeerID = NewType("PeerID", str)
HostID = NewType("HostID", str)

MiB = 1024 * 1024


@dataclass(frozen=True)
class SourceStat:
    """What the origin says about one object: enough to name a task and size its pieces.

    `version` is the origin's identity of this object version (an ETag, or size+mtime when the origin
    has none), so an overwritten object always becomes a new task.
    """

    size: int
    version: str
    content_type: str = "application/octet-stream"


@dataclass(frozen=True)
class ByteRange:
    """An absolute, resolved byte range: `start` .. `start + length - 1` (length may be 0)."""

    start: int
    length: int

    @property
    def end(self) -> int:
        """Inclusive last byte; -1 for an empty range."""
        return self.start + self.length - 1

    def header_value(self) -> str:
        return f"{self.start}-{self.end}"


@dataclass(frozen=True)
class PieceInfo:
    number: int
    offset: int
    size: int
    digest: str  # xxh3_64 hex of the piece's bytes


@dataclass(frozen=True)
class FileRegion:
    """A verified span of a task's data file, ready to be sent with sendfile.

    `file`, when set, is that data file already open (a descriptor the piece store keeps open for
    the reader that got this region): send from it instead of opening `path`. `data`, when set,
    holds the region's bytes, read along with the file's check (small objects): write them as they
    are, together with the response headers.
    """

    path: str
    offset: int
    length: int
    file: BinaryIO | None = field(default=None, compare=False, repr=False)
    data: bytes | None = field(default=None, compare=False, repr=False)
