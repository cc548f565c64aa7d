"""HTTP `Range` parsing: one `bytes=` range, resolved against the object size later.

Malformed and multi-range headers raise `MalformedRange`; a range that lies wholly past the end
raises `RangeNotSatisfiable`. An empty header means "no range" (JuiceFS always sends one).
"""

from __future__ import annotations

from dataclasses import dataclass

from p2p.types import ByteRange


class MalformedRange(ValueError):
    pass


class RangeNotSatisfiable(ValueError):
    def __init__(self, size: int) -> None:
        super().__init__(f"range not satisfiable for size {size}")
        self.size = size


@dataclass(frozen=True)
class RangeSpec:
    """`bytes=first-last`, `bytes=first-` (last None) or `bytes=-suffix` (first None)."""

    first: int | None
    last: int | None

    def resolve(self, size: int) -> ByteRange:
        """Clamp to the object. Raises RangeNotSatisfiable when no byte of the object is selected."""
        if self.first is None:
            assert self.last is not None
            length = min(self.last, size)
            if length == 0:
                raise RangeNotSatisfiable(size)
            return ByteRange(size - length, length)
        if self.first >= size:
            raise RangeNotSatisfiable(size)
        last = size - 1 if self.last is None else min(self.last, size - 1)
        return ByteRange(self.first, last - self.first + 1)


def parse_range(header: str | None) -> RangeSpec | None:
    if header is None or not header.strip():
        return None
    value = header.strip()
    if not value.startswith("bytes="):
        raise MalformedRange(f"unsupported range unit in {header!r}")
    spec = value[len("bytes="):].strip()
    if "," in spec:
        raise MalformedRange("multiple ranges are not supported")
    first_s, sep, last_s = spec.partition("-")
    first_s, last_s = first_s.strip(), last_s.strip()
    if not sep or not (first_s.isdigit() or last_s.isdigit()):
        raise MalformedRange(f"malformed range {header!r}")
    if (first_s and not first_s.isdigit()) or (last_s and not last_s.isdigit()):
        raise MalformedRange(f"malformed range {header!r}")
    if not first_s:
        return RangeSpec(None, int(last_s))
    first = int(first_s)
    last = int(last_s) if last_s else None
    if last is not None and last < first:
        raise MalformedRange(f"range end before start in {header!r}")
    return RangeSpec(first, last)
