"""S3 ListObjects v1 paging over any source of keys in UTF-8 byte order.

The rules (dfstore-wire.md §2.6): `marker` is exclusive; with a delimiter, keys that share the part
after `prefix` up to the first delimiter collapse into one common prefix; keys and common prefixes
together fill the page up to `max_keys` (never fewer when more exist); a common prefix that is
<= marker was already returned on an earlier page and is not emitted again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

MAX_LIST_KEYS = 1000

# No UTF-8 string contains the byte 0xFF, so `p + b"\xff"` sorts after every key starting with p
# and before every larger key that does not.
PAST = b"\xff"

# scan(after) yields (key, item) for keys starting with the listing prefix whose UTF-8 bytes are
# strictly greater than `after`, in byte order.
Scan = Callable[[bytes], Iterator[tuple[str, T]]]


@dataclass
class Page(Generic[T]):
    items: list[T] = field(default_factory=list)
    common_prefixes: list[str] = field(default_factory=list)
    is_truncated: bool = False
    next_marker: str = ""


def clamp_max_keys(max_keys: int) -> int:
    return max(0, min(max_keys, MAX_LIST_KEYS))


def paginate(scan: Scan[T], *, prefix: str, marker: str, delimiter: str, max_keys: int) -> Page[T]:
    page: Page[T] = Page()
    limit = clamp_max_keys(max_keys)
    marker_b = marker.encode()
    it = scan(marker_b)
    last = ""
    count = 0
    while True:
        nxt = next(it, None)
        if nxt is None:
            break
        key, item = nxt
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                common = key[: cut + len(delimiter)]
                common_b = common.encode()
                it = scan(common_b + PAST)  # skip the rest of this group
                if common_b <= marker_b:
                    continue
                if count == limit:
                    page.is_truncated = True
                    break
                page.common_prefixes.append(common)
                count += 1
                last = common
                continue
        if count == limit:
            page.is_truncated = True
            break
        page.items.append(item)
        count += 1
        last = key
    if page.is_truncated:
        page.next_marker = last
    return page
