"""``floe stack up | down | status`` and ``floe demo``: the embedded local stack, for development
and the demo. The only commands that use the local stack (``floe_cdc.stack``, the ``stack`` extra,
imported when one of them runs)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType
from typing import Annotated

import typer

from floe_cdc.cli.common import PROJECT_DIR, ConfigOption, extra
from floe_cdc.core.config import MongoSource, load_config

stack_app = typer.Typer(help="The embedded local stack.", no_args_is_help=True)


ExternalOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Pipeline configuration whose MongoDB sources (existing replica sets) to check"
    ),
]


def _local_stack() -> ModuleType:
    """The stack package (the ``stack`` extra)."""
    return extra("floe_cdc.stack", "stack")


def _mongo_sources(config: Path | None) -> list[MongoSource]:
    if config is None:
        return []
    return [s for s in load_config(config).sources if isinstance(s, MongoSource)]


@stack_app.command("up")
def stack_up(config: ExternalOption = None) -> None:
    """Start PostgreSQL, the Kafka broker, Kafka Connect with Debezium and the Prefect server.

    With --config, also check that each MongoDB source's replica set is reachable and can serve
    change streams (Floe does not run MongoDB itself).
    """
    stack = _local_stack()
    settings = stack.StackSettings()
    mongo = _mongo_sources(config)
    restarted = stack.LocalStack(settings, PROJECT_DIR).up()
    if restarted:
        typer.echo(f"restarted: {', '.join(restarted)}")
    for status in stack.require_replica_sets(mongo):
        typer.echo(f"MongoDB source {status.source}: {status.detail}")
    typer.echo(f"local stack is up (state in {settings.state_dir}); Prefect UI: {settings.prefect_ui_url}")


@stack_app.command("down")
def stack_down() -> None:
    """Stop every process of the local stack and drop its replication slots."""
    stack = _local_stack()
    dropped = stack.LocalStack(stack.StackSettings().recorded(), PROJECT_DIR).down()
    typer.echo(f"local stack is down; dropped replication slots: {', '.join(dropped) or 'none'}")


@stack_app.command("status")
def stack_status(config: ExternalOption = None) -> None:
    """Show each component's pid, health, address and log file (and MongoDB sources with --config)."""
    stack = _local_stack()
    statuses = stack.LocalStack(stack.StackSettings().recorded(), PROJECT_DIR).status()
    for s in statuses:
        state = "healthy" if s.healthy else ("unhealthy" if s.pid else "stopped")
        typer.echo(f"{s.name:<15} {state:<10} pid={s.pid or '-':<8} {s.address:<28} log={s.log_file}")
    healthy = all(s.healthy for s in statuses)
    for source in _mongo_sources(config):
        mongo = stack.check_replica_set(source)
        healthy = healthy and mongo.healthy
        state = "healthy" if mongo.healthy else "unhealthy"
        typer.echo(f"{'mongodb:' + mongo.source:<15} {state:<10} {'(external)':<12} {mongo.detail}")
    if not healthy:
        raise typer.Exit(code=1)


def demo(config: ConfigOption = Path("floe.yaml")) -> None:
    """Start the local stack, seed the demo database, replicate it into Iceberg and reconcile."""
    stack = _local_stack()
    settings = stack.StackSettings()
    with settings.prefect_context():
        sys.exit(stack.run_demo(config, PROJECT_DIR))
