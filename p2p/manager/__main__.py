"""`python -m p2p.manager --config FILE [--ready-file PATH] [--log-file PATH]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from p2p.common.config import ConfigError
from p2p.manager.app import run_manager
from p2p.manager.config import ManagerConfig, load_manager_config
from p2p.manager.redact import RedactingFilter


def setup_logging(level: str, log_file: str | None) -> None:
    handler: logging.Handler = logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


async def _serve(config: ManagerConfig, ready_file: Path | None) -> None:
    loop = asyncio.get_running_loop()
    task = asyncio.create_task(run_manager(config, ready_file))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m p2p.manager", description="dfly manager")
    parser.add_argument("--config", help="manager YAML file")
    parser.add_argument("--ready-file", type=Path, help="write the REST URL and gRPC address here (JSON) once serving")
    parser.add_argument("--log-file", help="log here instead of stderr")
    args = parser.parse_args(argv)
    try:
        config = load_manager_config(args.config)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_level, args.log_file)
    try:
        asyncio.run(_serve(config, args.ready_file))
    except Exception as exc:  # e.g. the database is unreachable: one redacted line, exit 1
        log = logging.getLogger("p2p.manager")
        log.error("manager failed: %s", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        log.debug("manager failure traceback", exc_info=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
