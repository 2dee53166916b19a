"""The ``floe`` command line.

Prefect reads its settings at import time, so commands import flows lazily, after
``_prefect_env`` has pointed Prefect at the local stack's server when no PREFECT_API_URL is set.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from floe.errors import ConfigError, ConnectError, FloeError
from floe.secrets import install_log_masking, masked_line

app = typer.Typer(help="Floe: change-data-capture replication into Apache Iceberg.", no_args_is_help=True)
stack_app = typer.Typer(help="The embedded local stack.", no_args_is_help=True)
connectors_app = typer.Typer(help="Debezium connectors on Kafka Connect.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(connectors_app, name="connectors")
quarantine_app = typer.Typer(
    help="Change events set aside because they could not be applied.", no_args_is_help=True
)
app.add_typer(quarantine_app, name="quarantine")

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", envvar="FLOE_CONFIG", help="Pipeline configuration file")
]
TablesOption = Annotated[
    list[str] | None, typer.Option("--table", "-t", help="Only this table (repeatable); default: all")
]
PROJECT_DIR = Path.cwd()


def _setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("httpx", "pyiceberg", "soda"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    install_log_masking()


def _prefect_env(local_stack: bool = False) -> None:
    """Point Prefect at the local stack's server when no PREFECT_API_URL is set and a stack was
    started from here (or *local_stack* is about to start one); otherwise Prefect's own settings
    apply, and nothing is created in the working directory."""
    from localstack.prefect_server import client_env
    from localstack.settings import StackSettings

    settings = StackSettings()
    if "PREFECT_API_URL" not in os.environ and (local_stack or settings.recorded_file.exists()):
        for key, value in client_env(settings.recorded()).items():
            os.environ.setdefault(key, value)
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "floe")
    import prefect  # noqa: F401  (sets up Prefect's console handlers, read with the settings above)

    _hide_tracebacks()


def _fail(exc: Exception) -> None:
    typer.secho(f"error: {exc}", fg=typer.colors.RED, err=True)
    raise typer.Exit(code=1)


class _WithoutTraceback(logging.Filter):
    """Console output of an error shows its message, not its traceback (``--verbose`` shows it).

    Prefect logs a failed flow's or task's exception with its traceback; the message stays, and
    the command's own ``error:`` line says what to do.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not _VERBOSE:
            record.exc_info, record.exc_text, record.stack_info = None, None, None
        return True


_VERBOSE = False


_QUIET = _WithoutTraceback()


def _hide_tracebacks() -> None:
    """Attach the filter to every console handler, Prefect's included (set up when it is imported);
    attaching it again to a handler that has it does nothing."""
    loggers = [logging.getLogger(), *(logging.getLogger(name) for name in logging.root.manager.loggerDict)]
    for logger in loggers:
        for handler in getattr(logger, "handlers", []):
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.addFilter(_QUIET)


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show tracebacks of errors (for bug reports)")
    ] = False,
) -> None:
    global _VERBOSE
    _VERBOSE = verbose
    _setup_logging()
    _hide_tracebacks()


def run() -> None:
    """The ``floe`` console script: an error no command anticipated is one line, not a traceback."""
    try:
        app(standalone_mode=True)
    except Exception as exc:
        if _VERBOSE:
            raise
        typer.secho(
            f"error: {type(exc).__name__}: {masked_line(exc)} (run 'floe --verbose ...' for the traceback)",
            fg=typer.colors.RED,
            err=True,
        )
        sys.exit(1)


ExternalOption = Annotated[
    Path | None,
    typer.Option(
        "--config", "-c", help="Pipeline configuration whose MongoDB sources (existing replica sets) to check"
    ),
]


def _mongo_sources(config: Path | None) -> list:
    if config is None:
        return []
    from floe.config import MongoSource, load_config

    return [s for s in load_config(config).sources if isinstance(s, MongoSource)]


@stack_app.command("up")
def stack_up(config: ExternalOption = None) -> None:
    """Start PostgreSQL, the Kafka broker, Kafka Connect with Debezium and the Prefect server.

    With --config, also check that each MongoDB source's replica set is reachable and can serve
    change streams (Floe does not run MongoDB itself).
    """
    from localstack.mongodb import require_replica_sets
    from localstack.settings import StackSettings
    from localstack.stack import LocalStack

    settings = StackSettings()
    try:
        mongo = _mongo_sources(config)
        LocalStack(settings, PROJECT_DIR).up()
        for status in require_replica_sets(mongo):
            typer.echo(f"MongoDB source {status.source}: {status.detail}")
    except FloeError as exc:
        _fail(exc)
    typer.echo(f"local stack is up (state in {settings.state_dir}); Prefect UI: {settings.prefect_ui_url}")


@stack_app.command("down")
def stack_down() -> None:
    """Stop every process of the local stack and drop its replication slots."""
    from localstack.settings import StackSettings
    from localstack.stack import LocalStack

    dropped = LocalStack(StackSettings().recorded(), PROJECT_DIR).down()
    typer.echo(f"local stack is down; dropped replication slots: {', '.join(dropped) or 'none'}")


@stack_app.command("status")
def stack_status(config: ExternalOption = None) -> None:
    """Show each component's pid, health, address and log file (and MongoDB sources with --config)."""
    from localstack.mongodb import check_replica_set
    from localstack.settings import StackSettings
    from localstack.stack import LocalStack

    statuses = LocalStack(StackSettings().recorded(), PROJECT_DIR).status()
    for s in statuses:
        state = "healthy" if s.healthy else ("unhealthy" if s.pid else "stopped")
        typer.echo(f"{s.name:<15} {state:<10} pid={s.pid or '-':<8} {s.address:<28} log={s.log_file}")
    healthy = all(s.healthy for s in statuses)
    try:
        sources = _mongo_sources(config)
    except FloeError as exc:
        _fail(exc)
    for source in sources:
        mongo = check_replica_set(source)
        healthy = healthy and mongo.healthy
        state = "healthy" if mongo.healthy else "unhealthy"
        typer.echo(f"{'mongodb:' + mongo.source:<15} {state:<10} {'(external)':<12} {mongo.detail}")
    if not healthy:
        raise typer.Exit(code=1)


@connectors_app.command("apply")
def connectors_apply(config: ConfigOption = Path("floe.yaml")) -> None:
    """Create or update the Debezium connectors of every source, validated by Connect first."""
    from cdc.deploy import apply_connectors
    from floe.config import load_config

    try:
        for name, state in apply_connectors(load_config(config)).items():
            typer.echo(f"{name}: {state}")
    except FloeError as exc:
        _fail(exc)


@connectors_app.command("status")
def connectors_status(config: ConfigOption = Path("floe.yaml")) -> None:
    """Show the state of each source's connector and its tasks; exit 1 unless all are RUNNING."""
    from cdc.deploy import connector_states
    from floe.config import load_config

    try:
        states = connector_states(load_config(config))
    except FloeError as exc:
        _fail(exc)
    for state in states:
        typer.echo(f"{state.name}: {state.state}")
    failures = [state.failure for state in states if state.failure]
    if failures:
        _fail(ConnectError("; ".join(failures)))
    if not all(state.running for state in states):
        raise typer.Exit(code=1)


@app.command()
def replicate(
    config: ConfigOption = Path("floe.yaml"),
    tables: TablesOption = None,
    once: Annotated[
        bool, typer.Option("--once/--follow", help="One cycle, or cycles until interrupted")
    ] = True,
) -> None:
    """Run the replicate flow: consume, merge into Iceberg, reconcile."""
    _prefect_env()
    from floe.config import load_config
    from flows.replicate import replicate as replicate_flow
    from flows.report import format_rows

    try:
        interval = load_config(config).replicate.follow_interval_seconds
        while True:
            try:
                rows = replicate_flow(config_path=str(config), tables=tables)
                typer.echo(format_rows(rows))
            except FloeError as exc:
                if once:
                    raise
                # Following keeps going: the failing table is retried next cycle, others advance.
                logging.getLogger("floe.replicate").error("cycle failed: %s", exc)
            if once:
                return
            time.sleep(interval)
    except FloeError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        typer.echo("stopped")


@app.command()
def reconcile(config: ConfigOption = Path("floe.yaml"), tables: TablesOption = None) -> None:
    """Run the reconcile flow: source row counts against Iceberg row counts, through Soda."""
    _prefect_env()
    from flows.reconcile import reconcile as reconcile_flow

    try:
        rows = reconcile_flow(config_path=str(config), tables=tables)
    except FloeError as exc:
        _fail(exc)
    for row in rows:
        outcome = "pass" if row["passed"] else ("error" if row["passed"] is None else "FAIL")
        typer.echo(
            f"{row['table']:<20} {outcome:<6} source={row['source_count']} iceberg={row['iceberg_count']} "
            f"quarantined={row['quarantined']}" + (f" ({row['error']})" if row["error"] else "")
        )
    if not all(row["passed"] for row in rows):
        raise typer.Exit(code=1)


@quarantine_app.command("list")
def quarantine_list(
    config: ConfigOption = Path("floe.yaml"),
    tables: TablesOption = None,
    all_entries: Annotated[bool, typer.Option("--all", help="Also replayed and superseded entries")] = False,
) -> None:
    """Show quarantined events: table, topic, partition, offset, status and reason."""
    from floe.config import load_config
    from iceberg import quarantine
    from iceberg.catalog import open_catalog

    try:
        loaded = load_config(config)
        table = quarantine.open_quarantine(open_catalog(loaded.iceberg), loaded.iceberg.namespace)
        rows = quarantine.entries(table, tables, None if all_entries else quarantine.PENDING).to_pylist()
    except FloeError as exc:
        _fail(exc)
    for row in rows:
        typer.echo(
            f"{row['table']:<20} {row['topic']}[{row['partition']}]@{row['offset']:<8} {row['status']:<10} "
            f"{row['quarantined_at']:%Y-%m-%d %H:%M:%S}  {row['error']}"
        )
    typer.echo(f"{len(rows)} {'entries' if all_entries else 'pending entries'}")


@quarantine_app.command("replay")
def quarantine_replay(config: ConfigOption = Path("floe.yaml"), tables: TablesOption = None) -> None:
    """Re-apply pending quarantined events, after their cause is fixed; never duplicates a row."""
    from floe.config import load_config
    from floe.replay import replay_quarantined

    try:
        outcomes = replay_quarantined(load_config(config), tables)
    except FloeError as exc:
        _fail(exc)
    if not outcomes:
        typer.echo("nothing to replay: no pending quarantined events")
    for outcome in outcomes:
        detail = f" ({outcome.error})" if outcome.error else ""
        typer.echo(
            f"{outcome.table}: {outcome.replayed} replayed, {outcome.still_failing} still failing{detail}"
        )
    if any(outcome.still_failing for outcome in outcomes):
        raise typer.Exit(code=1)


@app.command()
def resnapshot(
    config: ConfigOption = Path("floe.yaml"),
    tables: TablesOption = None,
) -> None:
    """Read tables again from the source (Debezium blocking snapshot); ends equal to the source."""
    from floe.config import load_config
    from floe.resnapshot import request_resnapshot

    try:
        if not tables:
            raise ConfigError("name each table to read again with --table (e.g. --table orders)")
        for line in request_resnapshot(load_config(config), tables):
            typer.echo(line)
    except FloeError as exc:
        _fail(exc)


@app.command()
def deploy() -> None:
    """Register the deployments of prefect.yaml with the Prefect server."""
    _prefect_env()
    from localstack.prefect_server import deploy_all

    try:
        deploy_all(PROJECT_DIR)
    except FloeError as exc:
        _fail(exc)
    typer.echo("deployments registered: replicate (interval), reconcile (ad hoc)")


@app.command()
def demo(config: ConfigOption = Path("floe.yaml")) -> None:
    """Start the local stack, seed the demo database, replicate it into Iceberg and reconcile."""
    _prefect_env(local_stack=True)
    from floe.demo.run import run_demo

    try:
        code = run_demo(config, PROJECT_DIR)
    except FloeError as exc:
        _fail(exc)
    sys.exit(code)
