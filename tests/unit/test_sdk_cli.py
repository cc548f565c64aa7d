"""The `dfstore` CLI without a server: URL parsing, planning, messages and exit codes."""

from __future__ import annotations

import io
import socket
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from sdk import NotFound, ServerError, TransportError
from sdk._progress import ProgressLine, human_size
from sdk.cli import DfsURL, _upload_plan, cli, describe, parse_dfs


def test_parse_dfs() -> None:
    assert parse_dfs("dfs://bkt/a/b.jpg") == DfsURL("bkt", "a/b.jpg")
    assert parse_dfs("dfs://bkt", key_required=False) == DfsURL("bkt", "")
    assert str(DfsURL("bkt", "k")) == "dfs://bkt/k"


@pytest.mark.parametrize("value", ["s3://b/k", "dfs:///k", "dfs://b", "dfs://b/", "/tmp/x"])
def test_parse_dfs_refuses(value: str) -> None:
    with pytest.raises(click.UsageError):
        parse_dfs(value)


def test_upload_plan_names_keys(tmp_path: Path) -> None:
    (tmp_path / "d" / "sub").mkdir(parents=True)
    (tmp_path / "d" / "a").write_bytes(b"1")
    (tmp_path / "d" / "sub" / "b").write_bytes(b"2")
    plan = list(_upload_plan(tmp_path / "d", DfsURL("b", "pre"), True))
    assert [key for _, key in plan] == ["pre/a", "pre/sub/b"]
    assert [k for _, k in _upload_plan(tmp_path / "d" / "a", DfsURL("b", "dir/"), False)] == ["dir/a"]
    assert [k for _, k in _upload_plan(tmp_path / "d" / "a", DfsURL("b", "x"), False)] == ["x"]
    with pytest.raises(click.UsageError):
        list(_upload_plan(tmp_path / "d", DfsURL("b", "pre"), False))


def test_describe_is_one_line() -> None:
    assert describe(NotFound(404, "Not Found", bucket="bkt", key="k")) == "NotFound: dfs://bkt/k"
    text = describe(ServerError(500, "NoSuchBucket: bkt", code="NoSuchBucket", bucket="bkt"))
    assert text == "NoSuchBucket: dfs://bkt: NoSuchBucket: bkt"
    assert describe(TransportError("GET http://x: refused")) == "TransportError: GET http://x: refused"


def test_human_size() -> None:
    assert [human_size(n) for n in (0, 999, 1536, 300 * 2**20, 2**40)] == [
        "0 B",
        "999 B",
        "1.5 KiB",
        "300.0 MiB",
        "1.0 TiB",
    ]


def test_progress_line_counts_and_stays_quiet_when_disabled(tmp_path: Path) -> None:
    with open(tmp_path / "out", "w") as stream:
        line = ProgressLine(stream, "x", 10, enabled=False)
        line(4)
        line(6)
        line.finish()
    assert line.done == 10 and (tmp_path / "out").read_text() == ""


@pytest.mark.parametrize(
    "args",
    [
        ["cp", "a", "b"],
        ["cp", "dfs://b/k", "dfs://b/k2"],
        ["cp", "dfs://b/k", "x", "--bogus"],
        ["cp", "x", "dfs://b/k", "--mode", "2"],
        ["stat", "notaurl"],
        ["mb", "dfs://b/key"],
        ["ls"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2, result.output


def test_invalid_key_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["-e", "http://127.0.0.1:9", "stat", "dfs://b/a/../c"])
    assert result.exit_code == 2
    assert "error: UsageError:" in result.output


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_unreachable_endpoint_exits_1_with_one_line() -> None:
    endpoint = f"http://127.0.0.1:{_closed_port()}"
    result = CliRunner(env={"DFSTORE_ENDPOINT": endpoint}).invoke(cli, ["stat", "dfs://b/k"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: TransportError:") and "cannot connect" in lines[0]


def test_missing_local_file_exits_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["cp", str(tmp_path / "nope"), "dfs://b/k"])
    assert result.exit_code == 1 and result.output.startswith("error:")


def test_progress_line_on_a_terminal_shows_bytes_total_and_rate() -> None:
    stream = io.StringIO()
    line = ProgressLine(stream, "upload x", 4 * 2**20, enabled=True, interval_s=0.0)
    line(2**20)
    line(2**20)
    drawn = stream.getvalue()
    assert "upload x  2.0 MiB / 4.0 MiB ( 50%)" in drawn and drawn.rstrip().endswith("/s")
    line.finish()
    assert stream.getvalue().endswith("\r\x1b[K")
