"""Bucket-name and object-key rules shared by every backend.

S3 allows almost any key; a directory origin cannot hold some of them (`..`, empty segments), so it
adds its own checks on top of `check_key` (see fs.py).
"""

from __future__ import annotations

import re

from dfstore.errors import InvalidArgument, InvalidBucketName, KeyTooLongError

MAX_KEY_BYTES = 1024

# S3's rules: 3-63 chars of lowercase letters, digits, dots and hyphens; starts and ends with a
# letter or digit; no `..`; not an IPv4 address. A name can therefore never start with `.`, which
# the directory origin relies on for its hidden metadata tree.
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IPV4_RE = re.compile(r"^\d+\.\d+\.\d+\.\d+$")


def check_bucket(bucket: str) -> None:
    if not _BUCKET_RE.match(bucket) or ".." in bucket or _IPV4_RE.match(bucket):
        raise InvalidBucketName(
            f"invalid bucket name {bucket!r}: use 3-63 lowercase letters, digits, dots and hyphens, "
            "starting and ending with a letter or digit (S3's rules; `_` and capitals are not allowed)",
            bucket=bucket,
        )


def key_bytes(key: str) -> bytes:
    """The key's UTF-8 bytes: S3 orders keys by these. Lone surrogates are not valid keys."""
    try:
        return key.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidArgument("object key is not valid UTF-8", key=key) from exc


def check_key(bucket: str, key: str) -> bytes:
    """Rules every origin shares: non-empty, valid UTF-8, at most 1024 bytes. Returns the UTF-8 bytes."""
    if not key:
        raise InvalidArgument("object key must not be empty", bucket=bucket)
    raw = key_bytes(key)
    if len(raw) > MAX_KEY_BYTES:
        raise KeyTooLongError(f"object key is {len(raw)} bytes, the limit is {MAX_KEY_BYTES}", bucket=bucket)
    return raw
