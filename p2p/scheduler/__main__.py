"""`python -m p2p.scheduler --config FILE [--ready-file PATH]`: run one scheduler until SIGTERM/SIGINT.

With `--ready-file`, the bound address is written there as JSON once the server serves:
`{"address": "127.0.0.1:8002", "listen": "...", "port": 8002, "pid": 123}`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
from pathlib import Path

import yaml

from p2p.clients.daemon import DaemonTrigger
from p2p.common.config import ConfigError, load_config
from p2p.scheduler.config import ENV_PREFIX, SchedulerConfig
from p2p.scheduler.manager_link import ManagerLink
from p2p.scheduler.preheat import Preheater
from p2p.scheduler.records import RecordWriter
from p2p.scheduler.server import start_server, stop_server
from p2p.scheduler.service import SchedulerService
from p2p.scheduler.topology import MemoryTopologyStore, NetworkTopology, TopologyStore

log = logging.getLogger("p2p.scheduler")


def _write_ready(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


def _topology(config: SchedulerConfig) -> NetworkTopology | None:
    nt = config.network_topology
    if not nt.enable:
        return None
    store: TopologyStore
    if config.database.redis.addrs:
        from p2p.scheduler.topology_redis import RedisTopologyStore  # the redis package is optional

        store = RedisTopologyStore.from_config(config.database.redis, nt.probe.queue_length)
        log.info("network topology in Redis db %d", config.database.redis.network_topology_db)
    else:
        store = MemoryTopologyStore(nt.probe.queue_length)
        log.info("network topology in memory (no database.redis.addrs)")
    return NetworkTopology(nt, store)


async def serve(config: SchedulerConfig, ready_file: Path | None) -> None:
    records = RecordWriter(config.records) if config.records.path else None
    trigger = DaemonTrigger()
    topology = _topology(config)
    service = SchedulerService(config, seeds=trigger, records=records, topology=topology)
    preheater = Preheater(service, trigger, timeout_s=config.manager.preheat_timeout_s)
    running = await start_server(service, config.server.listen, config.server.port, preheater=preheater)
    advertise = f"{config.server.advertise_ip or config.server.listen}:{config.server.advertise_port or running.port}"
    log.info("scheduler serving on %s:%d (advertised %s)", config.server.listen, running.port, advertise)
    if ready_file is not None:
        await asyncio.to_thread(
            _write_ready,
            ready_file,
            {"address": advertise, "listen": config.server.listen, "port": running.port, "pid": os.getpid()},
        )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    jobs = [loop.create_task(service.run_gc())]
    if topology is not None:
        jobs.append(loop.create_task(topology.run()))
    link: ManagerLink | None = None
    if config.manager.address:  # the manager learns the advertised address, which daemons dial
        ip, _, port = advertise.rpartition(":")
        link = ManagerLink(config.manager, service, preheater, ip=ip, port=int(port))
        jobs.append(loop.create_task(link.run()))
    try:
        await stop.wait()
    finally:
        for job in jobs:
            job.cancel()
        for job in jobs:
            with contextlib.suppress(asyncio.CancelledError):
                await job
        if link is not None:
            await link.aclose()
        await stop_server(running)
        await service.aclose()
        if topology is not None:
            await topology.aclose()
        await trigger.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m p2p.scheduler")
    parser.add_argument("--config", type=Path, default=None, help="YAML config file")
    parser.add_argument("--ready-file", type=Path, default=None, help="write the bound address here as JSON")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--print-config", action="store_true", help="print the effective config and exit")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(SchedulerConfig, args.config, env_prefix=ENV_PREFIX)
    except ConfigError as exc:
        parser.exit(2, f"error: {exc}\n")
    if args.print_config:
        # Secrets are SecretStr and print masked.
        print(yaml.safe_dump(json.loads(config.model_dump_json()), sort_keys=False), end="")
        return 0
    asyncio.run(serve(config, args.ready_file))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
