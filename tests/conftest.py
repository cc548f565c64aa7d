"""Shared fixtures: a real daemon process over a directory origin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from dfly.procs import Child
from tests.cluster import fs_origin, running_daemon


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Child]:
    """One daemon with a directory origin at tmp_path/origin. `.ready["dfstore"]` is its dfstore URL."""
    with running_daemon(tmp_path, fs_origin(tmp_path)) as child:
        yield child
