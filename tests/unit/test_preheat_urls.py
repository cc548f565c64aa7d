"""A preheat names its object as the manager's job does (s3://, dfs://); the seed peer must turn that
into exactly the URL a dfstore read uses, or the task ids differ and the preheat is wasted."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from dfstore.core.source import object_url
from p2p.common.ids import task_id
from p2p.daemon.preheat import canonical_url, resolve_range
from p2p.errors import SourceError
from p2p.types import ByteRange

KEYS = ["a.bin", "dir/b c.bin", "100%/x?y#z", "ends/with/", "ünï/cödé", "a+b=c&d"]


@pytest.mark.parametrize("key", KEYS)
def test_s3_and_dfs_urls_map_to_the_dfstore_url(key: str) -> None:
    expected = object_url("models", key)
    assert canonical_url(f"s3://models/{key}") == expected
    assert canonical_url(f"dfs://models/{quote(key, safe='/')}") == expected
    assert canonical_url(expected) == expected  # idempotent
    assert task_id(canonical_url(f"s3://models/{key}"), "etag-1") == task_id(expected, "etag-1")


def test_other_urls_pass_unchanged_and_bad_ones_are_refused() -> None:
    assert canonical_url("https://example.com/a%20b?x=1") == "https://example.com/a%20b?x=1"
    for bad in ("s3://bucket", "s3://bucket/", "dfs:///key"):
        with pytest.raises(SourceError):
            canonical_url(bad)


def test_ranges() -> None:
    assert resolve_range("", 100) is None
    assert resolve_range("0-9", 100) == ByteRange(0, 10)
    assert resolve_range("bytes=90-", 100) == ByteRange(90, 10)
    with pytest.raises(SourceError):
        resolve_range("200-300", 100)
    with pytest.raises(SourceError):
        resolve_range("x-y", 100)
