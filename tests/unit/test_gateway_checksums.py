"""Flexible checksums: published check values, a bit-by-bit reference, split updates, S3's encoding,
and the checksum kept with an object (its metadata entry and the headers that answer it)."""

from __future__ import annotations

import base64
import itertools
import random
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.httpchecksum import (
    Crc32Checksum,
    CrtCrc32cChecksum,
    CrtCrc64NvmeChecksum,
    Sha1Checksum,
    Sha256Checksum,
)

from dfstore.models import ObjectMeta
from gateway.checksums import ALGORITHMS, CHECKSUM_META, new_checksum, stored_checksum, stored_entry
from gateway.headers import checksum_headers, object_headers, put_options

CHECK_INPUT = b"123456789"

# The CRC catalogue's parameters (width, poly in normal form, init = xorout = all ones, reflected in
# and out) and its check value, the CRC of "123456789".
CRC_MODELS = {
    "crc32": (32, 0x04C11DB7, 0xCBF43926),  # CRC-32/ISO-HDLC
    "crc32c": (32, 0x1EDC6F41, 0xE3069283),  # CRC-32/ISCSI (Castagnoli)
    "crc64nvme": (64, 0xAD93D23594C93659, 0xAE8B14860A799888),  # CRC-64/NVME
}
HASH_CHECKS = {  # FIPS 180 digests of "123456789"
    "sha1": "f7c3bc1d808e04732adf679965ccc34ca7ae3441",
    "sha256": "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225",
}
# x-amz-checksum-* of "123456789" and of the empty body: base64 of the big-endian digest.
HEADER_VALUES = {
    "crc32": ("y/Q5Jg==", "AAAAAA=="),
    "crc32c": ("4waSgw==", "AAAAAA=="),
    "crc64nvme": ("rosUhgp5mIg=", "AAAAAAAAAAA="),
    "sha1": ("98O8HYCOBHMq32eZZczDTKeuNEE=", "2jmj7l5rSw0yVb/vlWAYkK/YBwk="),
    "sha256": ("FeKw08M4keuw8e9gnsQZQgwg4yDOlMZfvIwzEkSOsiU=", "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
}
BOTOCORE = {"crc32": Crc32Checksum, "crc32c": CrtCrc32cChecksum, "crc64nvme": CrtCrc64NvmeChecksum,
            "sha1": Sha1Checksum, "sha256": Sha256Checksum}  # fmt: skip


def reference_crc(data: bytes, width: int, poly: int) -> int:
    """Bit by bit from the catalogue parameters: reflected input and output, init and xorout all ones."""
    mask = (1 << width) - 1
    reflected = int(f"{poly:0{width}b}"[::-1], 2)
    crc = mask
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ reflected if crc & 1 else crc >> 1
    return crc ^ mask


def value(algorithm: str, *pieces: bytes) -> bytes:
    checksum = new_checksum(algorithm)
    for piece in pieces:
        checksum.update(piece)
    return base64.b64decode(checksum.b64())


def b64_of(algorithm: str, data: bytes) -> str:
    checksum = new_checksum(algorithm)
    checksum.update(data)
    return checksum.b64()


def test_algorithms_are_the_five_s3_names() -> None:
    assert ALGORITHMS == ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
    with pytest.raises(ValueError):
        new_checksum("md5")


@pytest.mark.parametrize("algorithm", sorted(CRC_MODELS))
def test_crc_check_values(algorithm: str) -> None:
    width, poly, check = CRC_MODELS[algorithm]
    assert reference_crc(CHECK_INPUT, width, poly) == check
    assert value(algorithm, CHECK_INPUT) == check.to_bytes(width // 8, "big")


@pytest.mark.parametrize("algorithm", sorted(HASH_CHECKS))
def test_hash_check_values(algorithm: str) -> None:
    assert value(algorithm, CHECK_INPUT).hex() == HASH_CHECKS[algorithm]


@pytest.mark.parametrize("algorithm", sorted(CRC_MODELS))
def test_crc_matches_the_bitwise_reference(algorithm: str) -> None:
    width, poly, _ = CRC_MODELS[algorithm]
    rng = random.Random(7)
    for size in (0, 1, 3, 7, 8, 9, 15, 16, 17, 63, 64, 65, 255, 256, 257, 1000, 4096 + 7):
        data = rng.randbytes(size)
        assert value(algorithm, data) == reference_crc(data, width, poly).to_bytes(width // 8, "big"), size


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_split_updates_equal_one_shot(algorithm: str) -> None:
    rng = random.Random(11)
    data = rng.randbytes(3 * 1024 * 1024 + 7)  # across the native code's thread-release size (5 KiB)
    whole = value(algorithm, data)
    for cuts in ([], [0], [1], [5120, 5121], [1024 * 1024], [len(data)],
                 sorted(rng.sample(range(len(data)), 40))):  # fmt: skip
        bounds = [0, *cuts, len(data)]
        pieces = [data[a:b] for a, b in itertools.pairwise(bounds)]
        assert value(algorithm, *pieces) == whole, cuts
    bytewise = new_checksum(algorithm)
    for i in range(300):
        bytewise.update(data[i:i + 1])
    assert bytewise.b64() == b64_of(algorithm, data[:300])


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_header_encoding(algorithm: str) -> None:
    """base64 of the big-endian digest, as S3 and boto3 write x-amz-checksum-*, leading zeros kept."""
    check, empty = HEADER_VALUES[algorithm]
    assert b64_of(algorithm, CHECK_INPUT) == check
    assert new_checksum(algorithm).b64() == empty
    rng = random.Random(3)
    for size in (0, 1, 100, 70_000):
        data = rng.randbytes(size)
        client: Any = BOTOCORE[algorithm]()
        client.update(data)
        assert b64_of(algorithm, data) == client.b64digest()


def test_small_crc_values_keep_their_leading_zero_bytes() -> None:
    # Search a few inputs for CRCs whose top byte is zero; their encoding must still be full width.
    found = {"crc32": False, "crc32c": False, "crc64nvme": False}
    for i in range(5000):
        data = i.to_bytes(4, "big")
        for algorithm in found:
            raw = value(algorithm, data)
            assert len(raw) == CRC_MODELS[algorithm][0] // 8
            found[algorithm] = found[algorithm] or raw[0] == 0
    assert all(found.values())


def test_kept_checksum_entry_roundtrip() -> None:
    assert stored_entry({}) == {}
    entry = stored_entry({"sha256": HEADER_VALUES["sha256"][0], "crc32": HEADER_VALUES["crc32"][0]})
    assert entry == {CHECKSUM_META: "crc32:" + HEADER_VALUES["crc32"][0]}  # one per object, ALGORITHMS order
    for algorithm in ALGORITHMS:
        kept = stored_entry({algorithm: HEADER_VALUES[algorithm][0]})
        assert stored_checksum(kept) == (algorithm, HEADER_VALUES[algorithm][0])
    # damaged or foreign values are not answered
    for bad in ("", "crc32", "md5:AAAAAA==", "crc32:AAAA", "crc32:AAAAAAAAAAA=", "sha1:not base64!"):
        assert stored_checksum({CHECKSUM_META: bad}) is None, bad


def test_checksum_headers_only_when_asked_and_reserved_names_hidden() -> None:
    meta = ObjectMeta("b", "k", 9, "e" * 32, datetime.now(UTC),
                      user_meta={"dfly-checksum": "crc32c:" + HEADER_VALUES["crc32c"][0], "u": "v"})
    assert checksum_headers(meta, {}) == {}
    assert checksum_headers(meta, {"x-amz-checksum-mode": "DISABLED"}) == {}
    assert checksum_headers(meta, {"x-amz-checksum-mode": "enabled"}) == {
        "x-amz-checksum-crc32c": HEADER_VALUES["crc32c"][0], "x-amz-checksum-type": "FULL_OBJECT"}
    shown = object_headers(meta, {})
    assert shown["x-amz-meta-u"] == "v" and not any("checksum" in h for h in shown)
    options = put_options({"x-amz-meta-dfly-checksum": "crc32:AAAAAA==", "x-amz-meta-dfly-parts": "1*1",
                           "x-amz-meta-a": "b"})
    assert options.user_meta == {"a": "b"}
