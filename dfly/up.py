"""`dfly up`: the whole system on one machine with embedded defaults - the manager (SQLite), a scheduler,
a seed peer and N peers, each its own process and its own host to the scheduler. Default ports when free,
otherwise free ones. Writes `<home>/cluster.json`, prints a banner, stops everything on SIGINT/SIGTERM."""

from __future__ import annotations

import errno
import json
import os
import secrets
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dfly.procs import Child, spawn

DEFAULT_PORTS = {
    "manager": 8080, "manager_grpc": 65003, "scheduler": 8002, "dfstore": 65004, "s3": 65005, "upload": 65002,
    "rpc": 65000,
}


@dataclass(frozen=True)
class UpOptions:
    home: Path
    origin: str = ""  # a directory, or http(s)://endpoint of an S3 service
    region: str = "us-east-1"
    peers: int = 1
    access_key: str = ""
    secret_key: str = ""


def default_home() -> Path:
    return Path(os.environ.get("DFLY_HOME") or Path.home() / ".dfly").expanduser()


def port_or_free(port: int, host: str = "127.0.0.1") -> int:
    """The default port when nothing listens on it, else 0 (the child binds a free one)."""
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return 0
            raise
    return port


def write_private_json(path: Path, data: object) -> None:
    """Atomically, readable by the owner only: these files hold credentials."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def load_credentials(home: Path, access_key: str, secret_key: str) -> dict[str, Any]:
    """S3 gateway keys: given on the command line, else kept from an earlier run, else generated."""
    path = home / "credentials.json"
    creds: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    s3 = creds.setdefault("s3", {})
    if access_key or secret_key:
        if not (access_key and secret_key):
            raise SystemExit("error: give both --access-key and --secret-key")
        s3.update(access_key=access_key, secret_key=secret_key)
    elif not s3.get("access_key"):
        s3.update(access_key="DFLY" + secrets.token_hex(8).upper(), secret_key=secrets.token_urlsafe(30))
    write_private_json(path, creds)
    return creds


def origin_section(origin: str, home: Path, region: str) -> dict[str, Any]:
    if origin.startswith(("http://", "https://")):
        # Credentials stay in the environment (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY), never on disk.
        return {"kind": "s3", "endpoint": origin, "region": region}
    path = Path(origin).expanduser() if origin else home / "origin"
    path.mkdir(parents=True, exist_ok=True)
    return {"kind": "fs", "path": str(path.resolve())}


def write_config(home: Path, name: str, data: dict[str, Any]) -> Path:
    node_dir = home / name
    node_dir.mkdir(parents=True, exist_ok=True)
    path = node_dir / "config.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def manager_config(home: Path) -> dict[str, Any]:
    work = home / "manager"
    return {
        "server": {
            "work_home": str(work),
            "rest": {"listen": "127.0.0.1", "port": port_or_free(DEFAULT_PORTS["manager"])},
            "grpc": {"listen": "127.0.0.1", "port": port_or_free(DEFAULT_PORTS["manager_grpc"])},
        },
        "database": {"type": "sqlite", "sqlite": {"path": str(work / "manager.db")}},
    }


def scheduler_config(home: Path, manager_grpc: str) -> dict[str, Any]:
    return {
        "server": {"listen": "127.0.0.1", "port": port_or_free(8002)},
        "records": {"path": str(home / "scheduler" / "records.jsonl")},
        "manager": {"address": manager_grpc},
        "network_topology": {"enable": True},  # daemons probe each other; parents are scored by RTT
    }


def node_config(
    name: str, home: Path, origin: dict[str, Any], *, seed: bool, schedulers: list[str], manager_grpc: str,
    default_ports: bool, seeds: list[str],
) -> dict[str, Any]:
    """Only the first peer asks for the default ports; the seed and later peers take free ones."""

    def port(kind: str) -> int:
        return DEFAULT_PORTS[kind] if default_ports else 0

    return {
        "home": str(home / name),
        "port_fallback": True,
        "daemon": {
            "name": name,
            "seed": seed,
            # every daemon is its own host to the scheduler and the manager, even on one machine
            "host": {"hostname": f"{socket.gethostname()}-{name}"},
            "upload": {"port": port("upload")},
            "rpc": {"port": port("rpc")},
            "scheduler": {"addresses": schedulers, "manager": manager_grpc},
            "network_topology": {"enable": True},
        },
        "dfstore": {"port": port("dfstore"), "origin": origin, "replica_peers": seeds},
        "gateway": {"enable": not seed, "port": port("s3")},
    }


def cluster_document(
    options: UpOptions, origin: dict[str, Any], creds: dict[str, Any], manager: Child, scheduler: Child,
    daemons: list[Child],
) -> dict[str, Any]:
    first = next(d.ready for d in daemons if not d.ready["seed"])
    return {
        "home": str(options.home),
        "origin": origin.get("path") or origin.get("endpoint"),
        "dfstore": first["dfstore"],
        "s3": {
            "endpoint": first["s3"],
            "access_key": creds["s3"]["access_key"],
            "secret_key": creds["s3"]["secret_key"],
            "region": options.region,
        },
        "manager": {
            "url": manager.ready["url"],
            "console": manager.ready.get("console", manager.ready["url"]),
            "grpc": manager.ready["grpc"],  # the component API schedulers and daemons use
        },
        "schedulers": [scheduler.ready["address"]],
        "peers": [
            {k: d.ready[k] for k in ("name", "seed", "dfstore", "upload", "s3", "pid")} for d in daemons
        ],
    }


def banner(doc: dict[str, Any], root_password: str | None) -> str:
    lines = [
        "dfly is up.",
        f"  home       {doc['home']}",
        f"  origin     {doc['origin']}",
        f"  dfstore    {doc['dfstore']}",
        f"  s3         {doc['s3']['endpoint']}  (keys in {doc['home']}/cluster.json)",
        f"  console    {doc['manager']['console']}  (user root)",
        f"  scheduler  {', '.join(doc['schedulers'])}",
    ]
    lines += [f"  {'seed' if p['seed'] else 'peer'}       {p['name']}: {p['dfstore']}" for p in doc["peers"]]
    if root_password:
        lines.append(f"  root password (shown once, also in {doc['home']}/credentials.json): {root_password}")
    lines += [
        "",
        "Try:",
        f"  curl -X POST {doc['dfstore']}/buckets/demo",
        f"  curl -X PUT -F mode=1 -F file=@README.md {doc['dfstore']}/buckets/demo/objects/README.md",
        f"  curl {doc['dfstore']}/buckets/demo/objects/README.md",
        "Stop with Ctrl-C.",
    ]
    return "\n".join(lines)


def _spawn_in(home: Path, name: str, module_args: list[str], env: dict[str, str] | None = None) -> Child:
    return spawn(
        name, module_args, ready_file=home / name / "ready.json", log_path=home / name / f"{name}.log", env=env
    )


def run_up(options: UpOptions) -> int:
    home = options.home
    home.mkdir(parents=True, exist_ok=True)
    creds = load_credentials(home, options.access_key, options.secret_key)
    origin = origin_section(options.origin, home, options.region)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())

    children: list[Child] = []
    try:
        manager = _spawn_in(home, "manager", ["p2p.manager", "--config", str(write_config(home, "manager",
                                                                                          manager_config(home)))])
        children.append(manager)
        root_password = manager.ready.get("root_password")
        if root_password:
            creds.setdefault("manager", {})["root_password"] = root_password
            write_private_json(home / "credentials.json", creds)
        manager_grpc = manager.ready["grpc"]

        sched_cfg = write_config(home, "scheduler", scheduler_config(home, manager_grpc))
        scheduler = _spawn_in(home, "scheduler", ["p2p.scheduler", "--config", str(sched_cfg)])
        children.append(scheduler)
        schedulers = [scheduler.ready["address"]]

        gateway_env = {
            "DFLY_NODE__GATEWAY__ACCESS_KEY": creds["s3"]["access_key"],
            "DFLY_NODE__GATEWAY__SECRET_KEY": creds["s3"]["secret_key"],
            "DFLY_NODE__GATEWAY__REGION": options.region,
        }
        names = [("seed-0", True)] + [(f"peer-{i}", False) for i in range(options.peers)]
        daemons: list[Child] = []
        for name, seed in names:
            seeds = [d.ready["dfstore"] for d in daemons if d.ready["seed"]]
            cfg = node_config(name, home, origin, seed=seed, schedulers=schedulers, manager_grpc=manager_grpc,
                              default_ports=name == "peer-0", seeds=seeds)
            child = _spawn_in(home, name, ["dfly", "daemon", "--config", str(write_config(home, name, cfg))],
                              env=gateway_env)
            children.append(child)
            daemons.append(child)

        doc = cluster_document(options, origin, creds, manager, scheduler, daemons)
        write_private_json(home / "cluster.json", doc)
        print(banner(doc, root_password), flush=True)
        while not stop.wait(0.5):
            for child in children:
                if child.proc.poll() is not None:
                    print(f"{child.name} exited with code {child.proc.returncode}; stopping.\n{child.log_tail()}")
                    return 1
        return 0
    finally:
        # Peers first, the manager last, so nobody loses its control plane while shutting down.
        for child in reversed(children):
            child.stop()
        (home / "cluster.json").unlink(missing_ok=True)
