"""`dfly up`: the embedded default on one machine. Starts the daemon(s) as child processes with
default ports when free, writes `<home>/cluster.json`, prints a banner, stops cleanly on a signal."""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dfly.node import write_json_atomic
from dfly.procs import Child, spawn


@dataclass(frozen=True)
class UpOptions:
    home: Path
    origin: str  # a directory, or http(s)://endpoint of an S3 service
    region: str = "us-east-1"


def default_home() -> Path:
    return Path(os.environ.get("DFLY_HOME") or Path.home() / ".dfly").expanduser()


def origin_section(origin: str, home: Path, region: str) -> dict[str, Any]:
    if origin.startswith(("http://", "https://")):
        # Credentials stay in the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), never on disk.
        return {"kind": "s3", "endpoint": origin, "region": region}
    path = Path(origin).expanduser() if origin else home / "origin"
    path.mkdir(parents=True, exist_ok=True)
    return {"kind": "fs", "path": str(path.resolve())}


def node_config(name: str, home: Path, origin: dict[str, Any], *, seed: bool = False) -> dict[str, Any]:
    return {
        "home": str(home / name),
        "port_fallback": True,
        "daemon": {"name": name, "seed": seed},
        "dfstore": {"origin": origin},
    }


def write_node_config(home: Path, name: str, data: dict[str, Any]) -> Path:
    node_dir = home / name
    node_dir.mkdir(parents=True, exist_ok=True)
    path = node_dir / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def cluster_document(home: Path, origin: dict[str, Any], peers: list[Child]) -> dict[str, Any]:
    first = peers[0].ready
    return {
        "home": str(home),
        "origin": origin.get("path") or origin.get("endpoint"),
        "dfstore": first["dfstore"],
        "peers": [
            {
                "name": p.ready["name"],
                "seed": p.ready["seed"],
                "dfstore": p.ready["dfstore"],
                "upload": p.ready["upload"],
                "pid": p.ready["pid"],
            }
            for p in peers
        ],
    }


def banner(doc: dict[str, Any]) -> str:
    lines = [
        "dfly is up.",
        f"  home     {doc['home']}",
        f"  origin   {doc['origin']}",
        f"  dfstore  {doc['dfstore']}",
    ]
    lines += [f"  peer     {p['name']}{' (seed)' if p['seed'] else ''}: {p['dfstore']}" for p in doc["peers"]]
    lines += [
        "",
        "Try:",
        f"  curl -X POST {doc['dfstore']}/buckets/demo",
        f"  dfstore --endpoint {doc['dfstore']} cp ./some-file dfs://demo/some-file",
        "Stop with Ctrl-C.",
    ]
    return "\n".join(lines)


def run_up(options: UpOptions) -> int:
    home = options.home
    home.mkdir(parents=True, exist_ok=True)
    origin = origin_section(options.origin, home, options.region)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    children: list[Child] = []
    try:
        name = "peer-0"
        cfg = write_node_config(home, name, node_config(name, home, origin))
        children.append(
            spawn(
                name,
                ["dfly", "daemon", "--config", str(cfg)],
                ready_file=home / name / "ready.json",
                log_path=home / name / "daemon.log",
            )
        )
        doc = cluster_document(home, origin, children)
        write_json_atomic(home / "cluster.json", doc)
        print(banner(doc), flush=True)
        while not stop.wait(0.5):
            for child in children:
                if child.proc.poll() is not None:
                    print(f"{child.name} exited with code {child.proc.returncode}; stopping.\n{child.log_tail()}")
                    return 1
        return 0
    finally:
        for child in reversed(children):
            child.stop()
        (home / "cluster.json").unlink(missing_ok=True)
