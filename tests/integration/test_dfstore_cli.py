"""The `dfstore` command against a real daemon: every subcommand, exit codes, and a 300 MiB copy each
way with flat memory (peak RSS read from `/usr/bin/time -v`)."""

from __future__ import annotations

import hashlib
import os
import random
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from dfly.procs import Child
from tests.cluster import fs_origin, running_daemon

MiB = 1024 * 1024
SCRIPT = Path(sys.executable).parent / "dfstore"


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Child]:
    workdir = tmp_path_factory.mktemp("cli")
    with running_daemon(workdir, fs_origin(workdir)) as child:
        yield child


@pytest.fixture(scope="module")
def endpoint(daemon: Child) -> str:
    return str(daemon.ready["dfstore"])


def command() -> list[str]:
    """The installed console script when there is one, else the module."""
    return [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "sdk.cli"]


def dfstore(
    endpoint: str, *args: str, stdin: bytes | None = None, prefix: list[str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "DFSTORE_ENDPOINT": endpoint}
    return subprocess.run(
        [*(prefix or []), *command(), *args], input=stdin, capture_output=True, env=env, timeout=300, check=False
    )


def ok(result: subprocess.CompletedProcess[bytes]) -> str:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout.decode()


@pytest.fixture
def bucket(endpoint: str) -> str:
    name = f"cli-{uuid.uuid4().hex[:12]}"
    assert ok(dfstore(endpoint, "mb", f"dfs://{name}")).strip() == f"make_bucket: {name}"
    return name


def test_cp_up_ls_stat_cat_cp_down_rm(endpoint: str, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "model.bin"
    payload = random.Random(1).randbytes(3 * MiB + 5)
    src.write_bytes(payload)
    out = ok(dfstore(endpoint, "cp", str(src), f"dfs://{bucket}/models/", "--mode", "1"))
    assert f"-> dfs://{bucket}/models/model.bin" in out

    listing = ok(dfstore(endpoint, "ls", f"dfs://{bucket}"))
    assert listing.split() == ["PRE", "models/"]
    listing = ok(dfstore(endpoint, "ls", "-R", f"dfs://{bucket}"))
    assert listing.split() == ["3.0", "MiB", "models/model.bin"]
    long = ok(dfstore(endpoint, "ls", "-l", f"dfs://{bucket}/models/"))
    md5 = hashlib.md5(payload).hexdigest()
    assert md5 in long and re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", long)

    stat = ok(dfstore(endpoint, "stat", f"dfs://{bucket}/models/model.bin"))
    assert f"Size:          {len(payload)} (3.0 MiB)" in stat and f"Digest:        md5:{md5}" in stat

    cat = dfstore(endpoint, "cat", f"dfs://{bucket}/models/model.bin", "--offset", "5", "--length", "10")
    assert cat.returncode == 0 and cat.stdout == payload[5:15]

    down = tmp_path / "down"
    down.mkdir()
    ok(dfstore(endpoint, "cp", f"dfs://{bucket}/models/model.bin", str(down)))
    assert (down / "model.bin").read_bytes() == payload

    assert ok(dfstore(endpoint, "rm", f"dfs://{bucket}/models/model.bin")).strip().startswith("delete:")
    assert ok(dfstore(endpoint, "ls", "-R", f"dfs://{bucket}")) == ""


def test_missing_object_exits_1_with_one_line(endpoint: str, bucket: str, tmp_path: Path) -> None:
    for args in (
        ["stat", f"dfs://{bucket}/nope"],
        ["cat", f"dfs://{bucket}/nope"],
        ["cp", f"dfs://{bucket}/nope", str(tmp_path / "x")],
    ):
        result = dfstore(endpoint, *args)
        assert result.returncode == 1, args
        assert result.stderr.decode().splitlines() == [f"error: NotFound: dfs://{bucket}/nope"], args
        assert result.stdout == b""
    assert not (tmp_path / "x").exists()


def test_debug_adds_the_traceback(endpoint: str, bucket: str) -> None:
    result = dfstore(endpoint, "--debug", "stat", f"dfs://{bucket}/nope")
    assert result.returncode == 1 and b"Traceback" in result.stderr


def test_usage_errors_exit_2(endpoint: str) -> None:
    assert dfstore(endpoint, "cp", "a", "b").returncode == 2
    assert dfstore(endpoint, "ls", "s3://x").returncode == 2
    assert dfstore(endpoint, "nosuchcommand").returncode == 2


def test_recursive_copy_both_ways_and_recursive_rm(endpoint: str, bucket: str, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    files = {"a.txt": b"a", "sub/b.txt": b"bb", "sub/deeper/c.bin": random.Random(2).randbytes(70_000)}
    for rel, content in files.items():
        (tree / rel).parent.mkdir(parents=True, exist_ok=True)
        (tree / rel).write_bytes(content)
    ok(dfstore(endpoint, "cp", "-r", "-q", str(tree), f"dfs://{bucket}/data", "-m", "1"))
    keys = ok(dfstore(endpoint, "ls", "-R", f"dfs://{bucket}/data/")).split()[2::3]
    assert keys == [f"data/{rel}" for rel in sorted(files)]

    out = tmp_path / "out"
    ok(dfstore(endpoint, "cp", "-r", f"dfs://{bucket}/data", str(out)))
    assert {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()} == files

    removed = ok(dfstore(endpoint, "rm", "-r", f"dfs://{bucket}/data/sub/")).splitlines()
    assert len(removed) == 2
    assert ok(dfstore(endpoint, "ls", "-R", f"dfs://{bucket}")).split()[2::3] == ["data/a.txt"]


def test_stdin_and_stdout(endpoint: str, bucket: str) -> None:
    ok(dfstore(endpoint, "cp", "-", f"dfs://{bucket}/piped", "-m", "1", stdin=b"from stdin"))
    result = dfstore(endpoint, "cp", f"dfs://{bucket}/piped", "-")
    assert result.returncode == 0 and result.stdout == b"from stdin"


def test_endpoint_flag_beats_the_environment(endpoint: str, bucket: str) -> None:
    env = {**os.environ, "DFSTORE_ENDPOINT": "http://127.0.0.1:9"}
    result = subprocess.run(
        [*command(), "-e", endpoint, "ls", f"dfs://{bucket}"], capture_output=True, env=env, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr


# -- 300 MiB each way, flat memory ----------------------------------------------------------------------


def _write_random(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    rng = random.Random(300)
    with open(path, "wb") as out:
        for _ in range(size // MiB):
            block = rng.randbytes(MiB)
            digest.update(block)
            out.write(block)
    return digest.hexdigest()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as src:
        while block := src.read(MiB):
            digest.update(block)
    return digest.hexdigest()


def _peak_rss_kib(stderr: bytes) -> int:
    match = re.search(rb"Maximum resident set size \(kbytes\): (\d+)", stderr)
    assert match, stderr.decode()[-2000:]
    return int(match.group(1))


@pytest.mark.slow
@pytest.mark.skipif(not Path("/usr/bin/time").exists(), reason="needs GNU time (apt-get install time)")
def test_cp_300_mib_up_and_down_byte_exact_with_flat_memory(endpoint: str, bucket: str, tmp_path: Path) -> None:
    size = 300 * MiB
    src = tmp_path / "big.bin"
    want = _write_random(src, size)
    timed = ["/usr/bin/time", "-v"]

    up = dfstore(endpoint, "cp", str(src), f"dfs://{bucket}/big.bin", "-m", "1", prefix=timed)
    assert up.returncode == 0, up.stderr.decode()[-2000:]
    down_path = tmp_path / "down.bin"
    down = dfstore(endpoint, "cp", f"dfs://{bucket}/big.bin", str(down_path), prefix=timed)
    assert down.returncode == 0, down.stderr.decode()[-2000:]

    assert down_path.stat().st_size == size and _sha256(down_path) == want
    up_rss, down_rss = _peak_rss_kib(up.stderr), _peak_rss_kib(down.stderr)
    print(f"\npeak RSS: upload {up_rss / 1024:.1f} MiB, download {down_rss / 1024:.1f} MiB")
    print(up.stdout.decode().strip(), "|", down.stdout.decode().strip())
    assert up_rss < 200 * 1024 and down_rss < 200 * 1024
    shutil.rmtree(tmp_path, ignore_errors=True)


def test_cat_into_a_closed_pipe_stops_quietly(endpoint: str, bucket: str, tmp_path: Path) -> None:
    src = tmp_path / "one.bin"
    src.write_bytes(random.Random(3).randbytes(4 * MiB))
    ok(dfstore(endpoint, "cp", "-q", str(src), f"dfs://{bucket}/one.bin", "-m", "1"))
    env = {**os.environ, "DFSTORE_ENDPOINT": endpoint}
    proc = subprocess.Popen(
        [*command(), "cat", f"dfs://{bucket}/one.bin"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert proc.stdout is not None and proc.stderr is not None
    assert proc.stdout.read(10) == src.read_bytes()[:10]
    proc.stdout.close()  # like `| head -c 10`
    assert proc.wait(timeout=60) == 1
    assert proc.stderr.read() == b""
    proc.stderr.close()
