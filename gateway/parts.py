"""Where the parts of a multipart-uploaded object lie, for GetObject/HeadObject `?partNumber=N`.

Completion records the part sizes in the object's metadata as runs (`8388608*2,4194311*1`) under
PARTS_META; most uploads use one part size, so the value stays a few bytes. The gateway hides the
entry from x-amz-meta-* headers.
"""

from __future__ import annotations

from collections.abc import Sequence

from dfstore.models import ObjectMeta
from gateway.errors import InvalidPartNumber
from p2p.common.httprange import RangeSpec

PARTS_META = "dfly-parts"
MAX_LAYOUT_CHARS = 512  # a layout longer than this is not recorded; partNumber > 1 is then refused


def encode_layout(sizes: Sequence[int]) -> str:
    runs: list[list[int]] = []
    for size in sizes:
        if runs and runs[-1][0] == size:
            runs[-1][1] += 1
        else:
            runs.append([size, 1])
    text = ",".join(f"{size}*{count}" for size, count in runs)
    return text if len(text) <= MAX_LAYOUT_CHARS else ""


def decode_layout(text: str) -> list[tuple[int, int]]:
    """[(size, count), ...]; empty for a missing or damaged value."""
    runs = []
    for item in text.split(","):
        size, _, count = item.partition("*")
        if not (size.isdigit() and count.isdigit()):
            return []
        runs.append((int(size), int(count)))
    return runs


def parts_count(meta: ObjectMeta) -> int:
    runs = decode_layout(meta.user_meta.get(PARTS_META, ""))
    return sum(count for _, count in runs) if runs else 1


def part_range(meta: ObjectMeta, number: int) -> RangeSpec | None:
    """The bytes of part `number`; None for part 1 of an object that was not uploaded in parts."""
    runs = decode_layout(meta.user_meta.get(PARTS_META, ""))
    if not runs:
        if number == 1:
            return None
        raise InvalidPartNumber("The requested partnumber is not satisfiable")
    offset = 0
    for size, count in runs:
        if number <= count:
            first = offset + (number - 1) * size
            return RangeSpec(first, first + size - 1)
        number -= count
        offset += size * count
    raise InvalidPartNumber("The requested partnumber is not satisfiable")
