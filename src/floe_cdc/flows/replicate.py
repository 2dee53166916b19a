"""The ``replicate`` flow: changes committed per table as they come; reconciled and reported after."""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_client, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists
from prefect.runtime import flow_run
from prefect.states import Cancelled, State

from floe_cdc.capture.consumer import ChangeConsumer
from floe_cdc.capture.deploy import ConnectorState, connector_states
from floe_cdc.core.config import PipelineConfig, load_config
from floe_cdc.core.errors import ConnectError, FloeError, ReplicationFailed, ReplicationStopped, Transient
from floe_cdc.flows.alerts import emit_alerts, emit_reported
from floe_cdc.flows.freshness import publish_freshness
from floe_cdc.flows.report import cycle_markdown, format_rows, table_rows
from floe_cdc.lake.checkpoint import Checkpoint
from floe_cdc.pipeline.count_check import CountCheck
from floe_cdc.pipeline.health import (
    TableHealth,
    reconciliation_alerts,
    slot_alerts,
    table_alerts,
    table_health,
)
from floe_cdc.pipeline.reconciliation import DEFAULT_WAIT_SECONDS, reconcile
from floe_cdc.pipeline.replication import Replicator
from floe_cdc.pipeline.replication_stream import ReplicationStream, Step
from floe_cdc.reconcile.reconcile import ReconcileResult

log = logging.getLogger("floe.replicate")


_TOTALS = ("events", "inserted", "updated", "deleted")
_TASK = {"cache_policy": NONE, "persist_result": False}


def table_lock_names(namespace: str, tables: list[str]) -> list[str]:
    return [f"floe-replicate-{namespace}.{table}" for table in tables]


@task(name="ensure-table-locks", **_TASK)
def ensure_table_locks(namespace: str, tables: list[str]) -> list[str]:
    """Create the per-table concurrency limits (one slot each) that serialise replicate runs."""
    names = table_lock_names(namespace, tables)
    with get_client(sync_client=True) as client:
        for name in names:
            # A run starting at the same moment may create it first.
            with contextlib.suppress(ObjectAlreadyExists):
                client.upsert_global_concurrency_limit_by_name(name, limit=1)
    return names


@task(name="check-connectors", **_TASK)
def check_connectors(config: PipelineConfig) -> dict[str, ConnectorState]:
    """Each source's connector state by connector name, so that a failed task is never silent.

    Kafka Connect not answering does not stop replication (the events are in Kafka): it is
    reported as the state.
    """
    try:
        states = connector_states(config)
    except ConnectError as exc:
        get_run_logger().warning("connector states unknown: %s", exc)
        unknown = "unknown (Kafka Connect did not answer)"
        return {s.connector_name: ConnectorState(s.connector_name, unknown) for s in config.sources}
    for state in states:
        if state.failure:
            get_run_logger().error("%s", state.failure)
    return {state.name: state for state in states}


@task(name="reconcile-tables", **_TASK)
def reconcile_tables(config_path: str, tables: list[str] | None) -> list[ReconcileResult]:
    return reconcile(load_config(config_path), tables)


@task(name="check-health", **_TASK)
def check_health(
    config: PipelineConfig, checkpoints: dict[str, Checkpoint], checks: list[ReconcileResult]
) -> dict[str, TableHealth]:
    """Each table's lag, and an alert event for each threshold crossed. A failed count taken now
    is an alert only for a table with nothing waiting (otherwise the counts may differ by
    timing); one compared at a source position (exact mode) always is."""
    with ChangeConsumer(config.kafka) as consumer:
        health = {h.table: h for h in table_health(config, checkpoints, consumer)}
    settled = [
        c for c in checks if c.mode != "count" or (health.get(c.table) and health[c.table].lag_events == 0)
    ]
    alerts = table_alerts(config, list(health.values())) + slot_alerts(config)
    alerts += reconciliation_alerts(config, settled)
    for alert in alerts:
        get_run_logger().warning("alert %s: %s", alert.event, alert.message)
    emit_alerts(alerts)
    return health


@task(name="publish-report", **_TASK)
def publish_report(rows: list[dict[str, Any]], title: str) -> None:
    get_run_logger().info("%s\n%s", title, format_rows(rows))
    create_table_artifact(key="floe-replicate", table=rows, description=title)
    create_markdown_artifact(key="floe-replicate-summary", markdown=cycle_markdown(rows, title))


@task(name="publish-freshness", **_TASK)
def publish_freshness_chart(config: PipelineConfig, names: list[str]) -> None:
    publish_freshness(config, names)


class StopSignals:
    """Ctrl-C and SIGTERM (what systemd, Kubernetes and Prefect's Cancel send) alike: the first
    lets the running step commit what it read and the run report, then stop; the second interrupts."""

    def __init__(self) -> None:
        self.requested = threading.Event()

    def install(self, *_: object) -> None:
        """An ``on_running`` hook of the run: Prefect puts a SIGTERM handler of its own in place
        for the run (it would end the run Crashed), then runs this one, which replaces it."""
        signal.signal(signal.SIGINT, self._request)
        signal.signal(signal.SIGTERM, self._request)

    def _request(self, signum: int, frame: object) -> None:
        if self.requested.is_set():
            raise KeyboardInterrupt
        self.requested.set()
        # Not a log call: the signal may have interrupted one holding the logging lock.
        sys.stderr.write("stopping at the next commit (Ctrl-C or SIGTERM again to interrupt)\n")


STOP = StopSignals()


@flow(name="replicate", on_running=[STOP.install])
def replicate(
    config_path: str = "floe.yaml",
    tables: list[str] | None = None,
    reconcile_after: bool = True,
    follow: bool = False,
) -> list[dict[str, Any]] | State:
    """Commit each table as its changes come from Kafka.

    One-shot (the default): until nothing new comes for ``replicate.idle_seconds`` (or
    ``max_seconds`` pass), then reconcile and report. *follow*: until the run is cancelled or
    stopped, with connector states, health, alerts and the report every
    ``replicate.report_seconds`` and the count check every ``replicate.reconcile_seconds``; the
    key indexes and the Kafka consumer stay warm for the run's whole life.
    """
    config = load_config(config_path)
    names = [table.target_name for _, table in config.tables(tables)]
    connectors = check_connectors(config)
    active = _active(config, names, connectors)
    if not active:
        return _report(Report(config, config_path, names, connectors), Step(), {}, [])
    settings = config.replicate
    # One writer per table: a second run waits here, then reads the offsets the first committed.
    with (
        concurrency(
            ensure_table_locks(config.iceberg.namespace, active),
            timeout_seconds=settings.lock_timeout_seconds,
            lease_duration=60,
            strict=True,
        ),
        Replicator(config, active) as replicator,
        ReplicationStream(replicator) as stream,
    ):
        if follow:
            rows = _follow(Report(config, config_path, names, connectors), stream, reconcile_after)
            return _cancelled() or rows
        step = stream.step(settings.max_seconds, STOP.requested, until_idle=True)
        after = stream.checkpoints
    # Reported after the locks are released: the next run of these tables need not wait for it.
    # Counted now on both sides: the run has committed everything it read. Not after a failed
    # table: what failed it (a catalog away, say) is the error to report.
    counted = reconcile_after and after and not step.failures
    checks = reconcile_tables(config_path, list(after)) if counted else []
    return _report(Report(config, config_path, names, connectors), step, after, checks)


def _follow(report: Report, stream: ReplicationStream, reconcile_after: bool) -> list[dict[str, Any]]:
    """Steps until stopped or cancelled, each followed by its report; a transient error makes the
    stream read again from the tables' checkpoints after ``replicate.retry_seconds``. Every
    ``replicate.reconcile_seconds`` a count check starts beside the stream (:class:`CountCheck`),
    and the first report after it has ended shows it."""
    config, settings = report.config, report.config.replicate
    rows: list[dict[str, Any]] = []
    last_check = time.monotonic()
    check: CountCheck | None = None
    while not STOP.requested.is_set():
        try:
            step = stream.step(settings.report_seconds, STOP.requested)
            checks = (check.take() if check else None) or []
            if stream.replicator.lineage is not None:  # the outcome the next commits' events carry
                stream.replicator.lineage.reconciled(checks)
            due = reconcile_after and time.monotonic() - last_check >= settings.reconcile_seconds
            if due and (check is None or not check.running):
                last_check = time.monotonic()
                check = CountCheck(config, list(stream.checkpoints), DEFAULT_WAIT_SECONDS)
            report = Report(config, report.config_path, report.names, check_connectors(config))
            rows = _report(report, step, stream.checkpoints, checks)
        except FloeError as exc:
            if not isinstance(exc, Transient):
                raise  # a terminal error needs a person: following on would repeat it forever
            # It may pass: the stream reads again from the tables' checkpoints.
            get_run_logger().error("%s; retrying in %gs", exc, settings.retry_seconds)
            stream.reset()
            STOP.requested.wait(settings.retry_seconds)
    return rows


def _cancelled() -> State | None:
    """The run's final state when it stopped because it was cancelled (Prefect's Cancel sends the
    process SIGTERM after marking the run Cancelling): Cancelled, once its last commit is made.
    None when it stopped for another reason (Ctrl-C, a supervisor's SIGTERM)."""
    if not STOP.requested.is_set() or flow_run.id is None:
        return None
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run.id).state
    if state is None or not state.is_cancelling():
        return None
    return Cancelled(message="cancelled: stopped after committing every change it had read")


def _active(config: PipelineConfig, names: list[str], connectors: dict[str, ConnectorState]) -> list[str]:
    """The tables of sources that are not paused ('floe pause'): those are left alone."""
    connector_of = {t.target_name: connectors.get(s.connector_name) for s, t in config.tables(names)}
    active = [name for name in names if not (connector_of[name] and connector_of[name].paused)]
    if len(active) < len(names):
        get_run_logger().info(
            "paused, left alone: %s ('floe resume --source <name>' resumes)",
            ", ".join(sorted(set(names) - set(active))),
        )
    return active


@dataclass(frozen=True)
class Report:
    """What a report tells about: the configured tables and their connectors' states."""

    config: PipelineConfig
    config_path: str
    names: list[str]
    connectors: dict[str, ConnectorState]


def _report(
    report: Report, step: Step, after: dict[str, Checkpoint], checks: list[ReconcileResult]
) -> list[dict[str, Any]]:
    """Check health, publish the report with the count *checks*; then fail for the tables that
    failed and the connectors whose tasks failed."""
    config, names = report.config, report.names
    connector_of = {t.target_name: report.connectors.get(s.connector_name) for s, t in config.tables(names)}
    states = {name: state.state for name, state in connector_of.items() if state}
    health = check_health(config, after, checks) if after else {}
    errors = {n: str(e) for n, e in step.failures.items()}
    rows = table_rows(names, step.merges, after, checks, errors, states, health)
    publish_report(rows, f"Replication: {step.events} change events merged into {len(step.merges)} tables")
    emit_reported(names, step.events)
    chart = publish_freshness_chart(config, names, return_state=True)
    if chart.is_failed():  # a picture never fails the replication it shows
        get_run_logger().warning("freshness chart not published: %s", chart.message)
    problems = [f"table {name} was not merged: {exc}" for name, exc in step.failures.items()]
    failed_tasks = sorted({state.failure for state in connector_of.values() if state and state.failure})
    if failed_tasks or any(not isinstance(exc, Transient) for exc in step.failures.values()):
        # A failed task or an incompatible change needs a person; following on cannot help.
        raise ReplicationStopped("; ".join(problems + failed_tasks))
    if problems:
        raise ReplicationFailed("; ".join(problems))
    return rows


def replicate_until_caught_up(config_path: str | Path, timeout: float) -> list[dict[str, Any]]:
    """Run cycles until one finds nothing new and every table reconciles, or *timeout* passes.

    Returns the last cycle's rows with ``events``/``inserted``/``updated``/``deleted`` summed
    over all cycles, so the summary tells what the whole catch-up did.
    """
    deadline = time.monotonic() + timeout
    totals: dict[str, dict[str, int]] = {}
    while True:
        rows = replicate(config_path=str(config_path))
        for row in rows:
            table = totals.setdefault(row["table"], dict.fromkeys(_TOTALS, 0))
            for name in _TOTALS:
                table[name] += row[name]
        quiet = all(row["events"] == 0 for row in rows)
        if (quiet and all(row["reconciliation"] == "pass" for row in rows)) or time.monotonic() > deadline:
            if not quiet:
                log.warning("tables did not catch up within %.0fs", timeout)
            return [{**row, **totals[row["table"]]} for row in rows]
