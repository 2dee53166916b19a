"""``floe stack up | down | status`` and ``floe demo``: the embedded local stack, for development
and the demo. The only commands that import the local stack (``floe_cdc.stack``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from floe_cdc.cli.common import PROJECT_DIR, ConfigOption, fail, prefect_env
from floe_cdc.core.errors import FloeError

stack_app = typer.Typer(help="The embedded local stack.", no_args_is_help=True)


ExternalOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Pipeline configuration whose MongoDB sources (existing replica sets) to check"
    ),
]


def _mongo_sources(config: Path | None) -> list:
    if config is None:
        return []
    from floe_cdc.core.config import MongoSource, load_config

    return [s for s in load_config(config).sources if isinstance(s, MongoSource)]


@stack_app.command("up")
def stack_up(config: ExternalOption = None) -> None:
    """Start PostgreSQL, the Kafka broker, Kafka Connect with Debezium and the Prefect server.

    With --config, also check that each MongoDB source's replica set is reachable and can serve
    change streams (Floe does not run MongoDB itself).
    """
    from floe_cdc.stack.mongodb import require_replica_sets
    from floe_cdc.stack.settings import StackSettings
    from floe_cdc.stack.stack import LocalStack

    settings = StackSettings()
    try:
        mongo = _mongo_sources(config)
        LocalStack(settings, PROJECT_DIR).up()
        for status in require_replica_sets(mongo):
            typer.echo(f"MongoDB source {status.source}: {status.detail}")
    except FloeError as exc:
        fail(exc)
    typer.echo(f"local stack is up (state in {settings.state_dir}); Prefect UI: {settings.prefect_ui_url}")


@stack_app.command("down")
def stack_down() -> None:
    """Stop every process of the local stack and drop its replication slots."""
    from floe_cdc.stack.settings import StackSettings
    from floe_cdc.stack.stack import LocalStack

    dropped = LocalStack(StackSettings().recorded(), PROJECT_DIR).down()
    typer.echo(f"local stack is down; dropped replication slots: {', '.join(dropped) or 'none'}")


@stack_app.command("status")
def stack_status(config: ExternalOption = None) -> None:
    """Show each component's pid, health, address and log file (and MongoDB sources with --config)."""
    from floe_cdc.stack.mongodb import check_replica_set
    from floe_cdc.stack.settings import StackSettings
    from floe_cdc.stack.stack import LocalStack

    statuses = LocalStack(StackSettings().recorded(), PROJECT_DIR).status()
    for s in statuses:
        state = "healthy" if s.healthy else ("unhealthy" if s.pid else "stopped")
        typer.echo(f"{s.name:<15} {state:<10} pid={s.pid or '-':<8} {s.address:<28} log={s.log_file}")
    healthy = all(s.healthy for s in statuses)
    try:
        sources = _mongo_sources(config)
    except FloeError as exc:
        fail(exc)
    for source in sources:
        mongo = check_replica_set(source)
        healthy = healthy and mongo.healthy
        state = "healthy" if mongo.healthy else "unhealthy"
        typer.echo(f"{'mongodb:' + mongo.source:<15} {state:<10} {'(external)':<12} {mongo.detail}")
    if not healthy:
        raise typer.Exit(code=1)


def demo(config: ConfigOption = Path("floe.yaml")) -> None:
    """Start the local stack, seed the demo database, replicate it into Iceberg and reconcile."""
    from floe_cdc.stack.settings import StackSettings

    prefect_env(StackSettings().prefect_client_env())
    from floe_cdc.stack.demo.run import run_demo

    try:
        code = run_demo(config, PROJECT_DIR)
    except FloeError as exc:
        fail(exc)
    sys.exit(code)
