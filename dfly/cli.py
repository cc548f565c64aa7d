"""The `dfly` command."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path

import click

from p2p.common.config import ConfigError, load_config


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@click.group()
@click.option("--log-level", default="info", show_default=True, help="debug, info, warning or error")
@click.pass_context
def cli(ctx: click.Context, log_level: str) -> None:
    """dfly: peer-to-peer object distribution with dfstore and S3 front doors."""
    ctx.obj = {"log_level": log_level}


@cli.command()
@click.option("--home", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="working directory [default: $DFLY_HOME or ~/.dfly]")
@click.option("--origin", default="", help="origin: a directory [default: <home>/origin] or http(s)://s3-endpoint")
@click.option("--region", default="us-east-1", show_default=True, help="region of the S3 origin and gateway")
@click.option("--peers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="peer daemons besides the seed peer")
@click.option("--access-key", default="", help="S3 gateway access key [default: generated on first run]")
@click.option("--secret-key", default="", help="S3 gateway secret key [default: generated on first run]")
@click.pass_context
def up(
    ctx: click.Context, home: Path | None, origin: str, region: str, peers: int, access_key: str, secret_key: str
) -> None:
    """Start dfly on this machine: manager, scheduler, a seed peer and N peers, with embedded defaults."""
    from dfly.up import UpOptions, default_home, run_up

    _setup_logging(ctx.obj["log_level"])
    options = UpOptions(
        home=(home or default_home()).expanduser().resolve(),
        origin=origin,
        region=region,
        peers=peers,
        access_key=access_key,
        secret_key=secret_key,
    )
    sys.exit(run_up(options))


_PASSTHROUGH = {"ignore_unknown_options": True, "help_option_names": []}


@cli.command(context_settings=_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def scheduler(args: tuple[str, ...]) -> None:
    """Run a scheduler: dfly scheduler --config FILE [--ready-file PATH] (--help for more)."""
    from p2p.scheduler.__main__ import main as scheduler_main

    sys.exit(scheduler_main(list(args)))


@cli.command(context_settings=_PASSTHROUGH)
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def manager(args: tuple[str, ...]) -> None:
    """Run the manager: dfly manager --config FILE [--ready-file PATH] (--help for more)."""
    from p2p.manager.__main__ import main as manager_main

    sys.exit(manager_main(list(args)))


@cli.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="YAML config file (environment: DFLY_NODE__SECTION__KEY=value)")
@click.option("--ready-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="write the bound endpoints here as JSON once serving")
@click.option("--print-config", is_flag=True, help="print the effective config and exit")
@click.pass_context
def daemon(ctx: click.Context, config_path: Path | None, ready_file: Path | None, print_config: bool) -> None:
    """Run one peer daemon (piece store, upload server, dfstore API)."""
    from dfly.config import ENV_PREFIX, NodeConfig

    try:
        config = load_config(NodeConfig, config_path, env_prefix=ENV_PREFIX)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc
    if print_config:
        click.echo(config.model_dump_json(indent=2))
        return
    _setup_logging(ctx.obj["log_level"])
    from dfly.node import run_node

    asyncio.run(run_node(config, ready_file))


def main() -> None:
    cli(prog_name="dfly")
