"""Pure units of p2p.common: range parsing, ids, digests, piece sizes, config loading."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import Field

from p2p.common.config import ConfigError, Section, load_config
from p2p.common.digest import piece_count, piece_size_for, task_digest
from p2p.common.httprange import MalformedRange, RangeNotSatisfiable, RangeSpec, parse_range
from p2p.common.ids import sha256_of, task_id
from p2p.types import ByteRange, MiB


@pytest.mark.parametrize("header", [None, "", "   "])
def test_empty_range_is_no_range(header: str | None) -> None:
    assert parse_range(header) is None


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-4", 5, ByteRange(0, 5)),
        ("bytes=4-4", 5, ByteRange(4, 1)),
        ("bytes=2-", 5, ByteRange(2, 3)),
        ("bytes=-2", 5, ByteRange(3, 2)),
        ("bytes=-10", 5, ByteRange(0, 5)),
        ("bytes=4-5", 5, ByteRange(4, 1)),
    ],
)
def test_range_resolves_against_size(header: str, size: int, expected: ByteRange) -> None:
    spec = parse_range(header)
    assert spec is not None
    assert spec.resolve(size) == expected


@pytest.mark.parametrize("header", ["bytes=9-3", "bytes=0-1,3-4", "items=0-1", "bytes=a-b", "bytes=-", "bytes=1"])
def test_malformed_ranges(header: str) -> None:
    with pytest.raises(MalformedRange):
        parse_range(header)


@pytest.mark.parametrize(("spec", "size"), [(RangeSpec(6, 7), 5), (RangeSpec(None, 0), 5), (RangeSpec(0, None), 0)])
def test_unsatisfiable(spec: RangeSpec, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        spec.resolve(size)


def test_task_id_depends_on_version_and_range() -> None:
    url = "dfs://bucket/key"
    base = task_id(url, "etag1")
    assert base != task_id(url, "etag2")
    assert base != task_id(url, "etag1", ByteRange(0, 10))
    assert task_id(url, "etag1", ByteRange(0, 10)) != task_id(url, "etag1", ByteRange(0, 11))
    assert len(base) == 64 and base == task_id(url, "etag1")


def test_sha256_of_matches_dragonfly_vector() -> None:
    # pkg/idgen/task_id_test.go: TaskIDV1("https://example.com", nil)
    assert sha256_of("https://example.com") == "100680ad546ce6a577f42f52df33b4cfdca756859e664b8d7de329b150d09ce9"


@pytest.mark.parametrize(
    ("length", "size"),
    [(0, 4 * MiB), (200 * MiB, 4 * MiB), (300 * MiB - 1, 4 * MiB), (300 * MiB, 5 * MiB), (500 * MiB, 7 * MiB),
     (1000 * MiB, 12 * MiB), (1299 * MiB, 14 * MiB), (5000 * MiB, 15 * MiB)],
)
def test_piece_size_matches_dragonfly(length: int, size: int) -> None:
    assert piece_size_for(length) == size


def test_piece_count_and_task_digest() -> None:
    assert piece_count(0, 4) == 0
    assert piece_count(9, 4) == 3
    assert task_digest(["a", "b"]) != task_digest(["b", "a"])


class _Inner(Section):
    port: int = Field(default=1, ge=0)


class _Outer(Section):
    name: str = "x"
    inner: _Inner = _Inner()


def test_config_layers_defaults_file_env(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("name: fromfile\ninner:\n  port: 5\n")
    cfg = load_config(_Outer, path, env_prefix="T", environ={"T__INNER__PORT": "7"})
    assert cfg.name == "fromfile" and cfg.inner.port == 7
    assert load_config(_Outer).inner.port == 1


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text("inner:\n  port: -3\n  bogus: 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(_Outer, path)
    assert "inner.port" in str(err.value) and "inner.bogus" in str(err.value)


def test_config_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(_Outer, tmp_path / "nope.yaml")


class _WithList(Section):
    secret: str = ""
    items: list[str] = []
    flag: bool = False


def test_env_values_stay_strings_unless_json() -> None:
    env = {"T__SECRET": "0123", "T__ITEMS": '["a:1", "b:2"]', "T__FLAG": "true"}
    cfg = load_config(_WithList, env_prefix="T", environ=env)
    assert cfg.secret == "0123" and cfg.items == ["a:1", "b:2"] and cfg.flag is True
