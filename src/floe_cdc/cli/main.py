"""The ``floe`` command line: the production commands; ``cli.stack`` adds the local stack's."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer

from floe_cdc.capture import infrastructure
from floe_cdc.capture.deploy import apply_connectors, connector_states
from floe_cdc.cli import common
from floe_cdc.cli.common import (
    PROJECT_DIR,
    ConfigOption,
    OneLineErrors,
    TablesOption,
    extra,
    hide_tracebacks,
    setup_logging,
    writing_to,
)
from floe_cdc.cli.stack import demo, stack_app
from floe_cdc.core.config import load_config
from floe_cdc.core.errors import ConfigError, ConnectRejected, ReconciliationFailed
from floe_cdc.core.secrets import masked_line
from floe_cdc.flows import pause as flows
from floe_cdc.flows.deployments import config_reference
from floe_cdc.flows.deployments import deploy as deploy_flows
from floe_cdc.flows.infrastructure import prefect_objects
from floe_cdc.flows.maintain import maintain as maintain_flow
from floe_cdc.flows.reconcile import reconcile as reconcile_flow
from floe_cdc.flows.replicate import STOP
from floe_cdc.flows.replicate import replicate as replicate_flow
from floe_cdc.flows.report import format_rows
from floe_cdc.lake import quarantine
from floe_cdc.lake.catalog import open_catalog
from floe_cdc.pipeline.direct_resnapshot import resnapshot_table, split_direct
from floe_cdc.pipeline.initial_load import TableLoad, load_direct_sources
from floe_cdc.pipeline.reconciliation import check_mode
from floe_cdc.pipeline.replay import replay_quarantined
from floe_cdc.pipeline.resnapshot import request_resnapshot

app = typer.Typer(
    cls=OneLineErrors,
    help="Floe: change-data-capture replication into Apache Iceberg.",
    no_args_is_help=True,
)
connectors_app = typer.Typer(help="Debezium connectors on Kafka Connect.", no_args_is_help=True)
app.add_typer(stack_app, name="stack")
app.add_typer(connectors_app, name="connectors")
quarantine_app = typer.Typer(
    help="Change events set aside because they could not be applied.", no_args_is_help=True
)
app.add_typer(quarantine_app, name="quarantine")
terraform_app = typer.Typer(help="Floe's own Terraform provider, for infra/terraform/envs/local.")
app.add_typer(terraform_app, name="terraform")
app.command()(demo)


@app.callback()
def main(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show tracebacks of errors (for bug reports)")
    ] = False,
) -> None:
    common.VERBOSE = verbose
    setup_logging()
    hide_tracebacks()


def run() -> None:
    """The ``floe`` console script: an error no command anticipated is one line too, naming its
    type and how to see the traceback (``OneLineErrors`` turns the anticipated ones into lines)."""
    try:
        app(standalone_mode=True)
    except Exception as exc:
        if common.VERBOSE:
            raise
        typer.secho(
            f"error: {type(exc).__name__}: {masked_line(exc)} (run 'floe --verbose ...' for the traceback)",
            fg=typer.colors.RED,
            err=True,
        )
        sys.exit(1)


@connectors_app.command("apply")
def connectors_apply(config: ConfigOption = Path("floe.yaml")) -> None:
    """Create or update the Debezium connectors of every source, validated by Connect first. The
    tables of a new source with initial_load: direct are loaded into Iceberg first."""
    pipeline = load_config(config)
    for load in load_direct_sources(pipeline, progress=_echo_load):
        typer.echo(f"{load.source}: loaded {sum(t.rows for t in load.tables):,} rows directly")
    for name, state in apply_connectors(pipeline).items():
        typer.echo(f"{name}: {state}")


def _echo_load(table: TableLoad) -> None:
    typer.echo(
        f"  {table.table}: {table.rows:,} rows in {table.chunks} chunks{' (done)' if table.done else ''}"
    )


@connectors_app.command("status")
def connectors_status(config: ConfigOption = Path("floe.yaml")) -> None:
    """Show the state of each source's connector and its tasks; exit 1 unless all are RUNNING."""
    states = connector_states(load_config(config))
    for state in states:
        typer.echo(f"{state.name}: {state.state}")
    failures = [state.failure for state in states if state.failure]
    if failures:
        raise ConnectRejected("; ".join(failures))
    if not all(state.running for state in states):
        raise typer.Exit(code=1)


@app.command()
def replicate(
    config: ConfigOption = Path("floe.yaml"),
    tables: TablesOption = None,
    once: Annotated[
        bool,
        typer.Option("--once/--follow", help="Until nothing new comes, or until stopped (a long-lived run)"),
    ] = True,
) -> None:
    """Run the replicate flow: commit each table's changes as they come, reconcile, report. Ctrl-C
    or SIGTERM commits what was read and stops; a second one stops at once."""
    STOP.install()  # before the run starts too; the run puts it back in place (its on_running hook)
    try:
        rows = replicate_flow(config_path=str(config), tables=tables, follow=not once)
    except KeyboardInterrupt:
        typer.echo("interrupted; the next run goes on from the last commit", err=True)
        raise typer.Exit(code=130) from None
    typer.echo(format_rows(rows))
    if STOP.requested.is_set():
        typer.echo("stopped")


@app.command()
def reconcile(
    config: ConfigOption = Path("floe.yaml"),
    tables: TablesOption = None,
    mode: Annotated[
        str,
        typer.Option(
            "--mode",
            help="count: counts now; exact: counts at a source position, corrected for the changes "
            "Iceberg applied beyond it (PostgreSQL); keys: exact, and name the keys whose rows differ",
        ),
    ] = "count",
    wait_seconds: Annotated[
        float, typer.Option("--wait-seconds", help="exact/keys: how long Iceberg may take to catch up")
    ] = 300.0,
) -> None:
    """Run the reconcile flow: source tables against Iceberg tables, through Soda."""
    try:
        check_mode(mode)
        rows = reconcile_flow(config_path=str(config), tables=tables, mode=mode, wait_seconds=wait_seconds)
    except ReconciliationFailed as exc:
        rows = exc.rows
    for row in rows:
        outcome = "pass" if row["passed"] else ("error" if row["passed"] is None else "FAIL")
        correction = f" correction={row['correction']:+d}" if row["mode"] != "count" else ""
        typer.echo(
            f"{row['table']:<20} {outcome:<6} source={row['source_count']}{correction} "
            f"iceberg={row['iceberg_count']} quarantined={row['quarantined']}"
            + (f" ({row['error']})" if row["error"] else "")
        )
        for key in row["differing_keys"]:
            typer.echo(f"    differs: {key}")
    unchecked = [row for row in rows if row["passed"] is None]
    if unchecked:
        names = ", ".join(row["table"] for row in unchecked)
        raise ReconciliationFailed(f"could not reconcile {names}: {unchecked[0]['error']}", rows)
    if not all(row["passed"] for row in rows):
        raise typer.Exit(code=1)


SourceOption = Annotated[str, typer.Option("--source", help="Source name, as in floe.yaml")]


@app.command()
def pause(source: SourceOption, config: ConfigOption = Path("floe.yaml")) -> None:
    """Pause a source: its connector stops and replicate leaves its tables alone."""
    _switch_source("pause", source, config)


@app.command()
def resume(source: SourceOption, config: ConfigOption = Path("floe.yaml")) -> None:
    """Resume a paused source: its connector reads on and replicate merges its tables again."""
    _switch_source("resume", source, config)


def _switch_source(action: str, source: str, config: Path) -> None:

    row = getattr(flows, action)(source=source, config_path=str(config))
    typer.echo(f"{row['source']}: {action}d ({row['connector']} {row['state']})")


@app.command()
def maintain(config: ConfigOption = Path("floe.yaml"), tables: TablesOption = None) -> None:
    """Run the maintain flow: rewrite files with many deletes, compact small files, expire
    snapshots and remove orphan files. Safe while replicate runs."""
    rows = maintain_flow(config_path=str(config), tables=tables)
    for row in rows:
        typer.echo(
            f"{row['table']:<20} rewrote {row['files_rewritten']} files into {row['files_written']}, "
            f"retired {row['delete_files_removed']} delete files, "
            f"expired {row['snapshots_expired']} snapshots, "
            f"removed {row['orphan_files_removed']} orphan files"
            + (f" ({row['notes']})" if row["notes"] else "")
        )


@quarantine_app.command("list")
def quarantine_list(
    config: ConfigOption = Path("floe.yaml"),
    tables: TablesOption = None,
    all_entries: Annotated[bool, typer.Option("--all", help="Also replayed and superseded entries")] = False,
) -> None:
    """Show quarantined events: table, topic, partition, offset, status and reason."""
    loaded = load_config(config)
    table = quarantine.open_quarantine(open_catalog(loaded.iceberg), loaded.iceberg)
    rows = quarantine.entries(table, tables, None if all_entries else quarantine.PENDING).to_pylist()
    for row in rows:
        typer.echo(
            f"{row['table']:<20} {row['topic']}[{row['partition']}]@{row['offset']:<8} {row['status']:<10} "
            f"{row['quarantined_at']:%Y-%m-%d %H:%M:%S}  {row['error']}"
        )
    typer.echo(f"{len(rows)} {'entries' if all_entries else 'pending entries'}")


@quarantine_app.command("replay")
def quarantine_replay(config: ConfigOption = Path("floe.yaml"), tables: TablesOption = None) -> None:
    """Re-apply pending quarantined events, after their cause is fixed; never duplicates a row."""
    outcomes = replay_quarantined(load_config(config), tables)
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
    """Read tables again from the source while replication goes on (Debezium incremental snapshot;
    blocking for MongoDB; read here, straight into Iceberg, for sources with initial_load:
    direct); ends equal to the source."""
    if not tables:
        raise ConfigError("name each table to read again with --table (e.g. --table orders)")
    pipeline = load_config(config)
    direct, others = split_direct(pipeline, tables)
    for source, ref in direct:
        read = resnapshot_table(pipeline, source, ref, progress=_echo_load)
        typer.echo(
            f"{ref.target_name}: re-snapshotted directly, {read.rows:,} rows read from "
            f"{source.source_table(ref)}; the next 'floe replicate' applies the changes made meanwhile"
        )
    for line in request_resnapshot(pipeline, others) if others else []:
        typer.echo(line)


@app.command()
def render(
    config: ConfigOption = Path("floe.yaml"),
    out: Annotated[Path, typer.Option("--out", help="Directory for the JSON files")] = Path("rendered"),
) -> None:
    """Write what Terraform applies as JSON (connectors, topics, PostgreSQL replication objects,
    Prefect objects), with every secret left out; infra/terraform's modules read it."""
    pipeline = load_config(config)
    files = {
        "connectors.json": infrastructure.connectors(pipeline),
        "topics.json": infrastructure.topics(pipeline),
        "postgres.json": infrastructure.replication(pipeline),
        "prefect.json": prefect_objects(
            pipeline, config_reference(config.resolve(), PROJECT_DIR), PROJECT_DIR
        ),
    }
    with writing_to("--out", out):
        out.mkdir(parents=True, exist_ok=True)
        for name, data in files.items():
            (out / name).write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    typer.echo(f"wrote {', '.join(files)} to {out}")


@app.command()
def deploy(config: ConfigOption = Path("floe.yaml")) -> None:
    """Register the deployments (prefect.yaml, and replicate per source) and the alert automations."""
    for line in deploy_flows(config.resolve(), PROJECT_DIR):
        typer.echo(line)


@terraform_app.command("setup")
def terraform_setup(
    directory: Annotated[
        Path, typer.Option("--dir", help="Where the provider mirror and the CLI configuration go")
    ] = Path(".floe/terraform"),
    plugin_mirror: Annotated[
        list[Path] | None,
        typer.Option(
            "--plugin-mirror",
            help="A filesystem mirror of other providers (hashicorp/aws) for machines without a registry",
        ),
    ] = None,
) -> None:
    """Install Floe's Terraform provider (floe/floe) into a filesystem mirror and write the CLI
    configuration that finds it; export TF_CLI_CONFIG_FILE as printed before 'terraform init'."""
    mirrors = plugin_mirror or []
    for mirror in mirrors:
        if not mirror.is_dir():
            raise ConfigError(f"--plugin-mirror {mirror} is not a directory; give the folder of a mirror")
    with writing_to("--dir", directory):
        config = extra("floe_cdc.terraform", "terraform").install(directory, mirrors)
    typer.echo(f"export TF_CLI_CONFIG_FILE={config.resolve()}")
