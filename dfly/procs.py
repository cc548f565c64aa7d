"""Child processes of `dfly up` (and the test fixtures): start with a ready file, wait, stop gently."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


class StartError(RuntimeError):
    pass


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    ready: dict[str, Any] = field(default_factory=dict)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 10.0) -> int:
        """SIGTERM, wait, then SIGKILL. Returns the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def spawn(
    name: str,
    module_args: list[str],
    *,
    ready_file: Path,
    log_path: Path,
    env: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> Child:
    """Run `python -m <module_args...> --ready-file F` and wait until F exists (or the child dies)."""
    ready_file.unlink(missing_ok=True)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", *module_args, "--ready-file", str(ready_file)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,  # Ctrl-C in a terminal reaches `dfly up`, which stops children in order
        )
    child = Child(name, proc, log_path)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ready_file.exists():
            child.ready = json.loads(ready_file.read_text())
            return child
        if proc.poll() is not None:
            raise StartError(f"{name} exited with code {proc.returncode}:\n{child.log_tail()}")
        time.sleep(0.05)
    child.kill()
    raise StartError(f"{name} did not become ready within {timeout_s:.0f}s:\n{child.log_tail()}")
