"""The ``replicate`` flow: one cycle of consume -> merge per table -> reconcile -> report."""

from __future__ import annotations

import contextlib
import logging
import time
from pathlib import Path
from typing import Any

from prefect import flow, get_client, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists
from prefect.states import State
from prefect.utilities.annotations import quote

from floe_cdc.capture.consumer import ChangeConsumer
from floe_cdc.capture.deploy import ConnectorState, connector_states
from floe_cdc.core.config import PipelineConfig, load_config
from floe_cdc.core.errors import ConnectError, ReplicationFailed, ReplicationStopped, Transient
from floe_cdc.flows.alerts import emit_alerts
from floe_cdc.flows.freshness import publish_freshness
from floe_cdc.flows.report import cycle_markdown, format_rows, table_rows
from floe_cdc.lake.checkpoint import Checkpoint
from floe_cdc.lake.merge import MergeResult
from floe_cdc.pipeline.health import (
    TableHealth,
    reconciliation_alerts,
    slot_alerts,
    table_alerts,
    table_health,
)
from floe_cdc.pipeline.reconciliation import reconcile
from floe_cdc.pipeline.replication import Replicator, TableChanges
from floe_cdc.reconcile.reconcile import ReconcileResult

log = logging.getLogger("floe.replicate")


_TOTALS = ("events", "inserted", "updated", "deleted")
_TASK = {"cache_policy": NONE, "persist_result": False}


def _transient(task: object, task_run: object, state: State) -> bool:
    """Prefect retries a task only when its error may pass by itself (a ``Transient`` error)."""
    try:
        state.result()
    except Exception as exc:
        return isinstance(exc, Transient)
    return False


# Reading may meet a catalog or broker that is briefly away. Merging is not retried in place: a
# merge that lost a race was read from offsets another writer has moved past (next cycle).
_RETRIED = {**_TASK, "retries": 2, "retry_delay_seconds": 5, "retry_condition_fn": _transient}


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


@task(name="read-checkpoints", **_RETRIED)
def read_checkpoints(replicator: Replicator) -> dict[str, Checkpoint]:
    return replicator.checkpoints()


@task(name="consume-changes", **_RETRIED)
def consume_changes(replicator: Replicator, checkpoints: dict[str, Checkpoint]) -> dict[str, TableChanges]:
    changes, consumed = replicator.consume(checkpoints)
    get_run_logger().info("consumed %d events (%s)", consumed.count, consumed.stopped_because)
    return changes


@task(name="merge-table", task_run_name="merge-{changes.table}", **_TASK)
def merge_table(replicator: Replicator, changes: TableChanges, checkpoint: Checkpoint) -> MergeResult:
    return replicator.merge(changes, checkpoint)


@task(name="reconcile-tables", **_TASK)
def reconcile_tables(config_path: str, tables: list[str] | None) -> list[ReconcileResult]:
    return reconcile(load_config(config_path), tables)


@task(name="check-health", **_TASK)
def check_health(
    config: PipelineConfig, checkpoints: dict[str, Checkpoint], checks: list[ReconcileResult]
) -> dict[str, TableHealth]:
    """Each table's lag, and an alert event for each threshold crossed. A failed count is an
    alert only for a table with nothing waiting: otherwise the counts may differ by timing."""
    with ChangeConsumer(config.kafka) as consumer:
        health = {h.table: h for h in table_health(config, checkpoints, consumer)}
    settled = [c for c in checks if health.get(c.table) and health[c.table].lag_events == 0]
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


@flow(name="replicate")
def replicate(
    config_path: str = "floe.yaml", tables: list[str] | None = None, reconcile_after: bool = True
) -> list[dict[str, Any]]:
    """Consume what is available, merge it per table in one Iceberg commit each, then reconcile."""
    config = load_config(config_path)
    chosen = config.tables(tables)
    names = [table.target_name for _, table in chosen]
    connectors = check_connectors(config)
    connector_of = {table.target_name: connectors.get(source.connector_name) for source, table in chosen}
    # A paused source ('floe pause') is left alone: its tables are neither merged nor reconciled.
    active = [name for name in names if not (connector_of[name] and connector_of[name].paused)]
    if len(active) < len(names):
        get_run_logger().info(
            "paused, left alone this cycle: %s ('floe resume --source <name>' resumes)",
            ", ".join(sorted(set(names) - set(active))),
        )
    merges, failures, after = _merge_tables(config, active) if active else ({}, {}, {})
    checks = reconcile_tables(config_path, active) if reconcile_after and active else []
    states = {name: state.state for name, state in connector_of.items() if state}
    health = check_health(config, after, checks) if after else {}
    rows = table_rows(names, merges, after, checks, {n: str(e) for n, e in failures.items()}, states, health)
    events = sum(m.events for m in merges.values())
    publish_report(rows, f"Replication cycle: {events} change events merged into {len(merges)} tables")
    chart = publish_freshness_chart(config, names, return_state=True)
    if chart.is_failed():  # a picture never fails the replication it shows
        get_run_logger().warning("freshness chart not published: %s", chart.message)
    problems = [f"table {name} was not merged: {exc}" for name, exc in failures.items()]
    failed_tasks = sorted({state.failure for state in connector_of.values() if state and state.failure})
    if failed_tasks or any(not isinstance(exc, Transient) for exc in failures.values()):
        # A failed task or an incompatible change needs a person; following on cannot help.
        raise ReplicationStopped("; ".join(problems + failed_tasks))
    if problems:
        raise ReplicationFailed("; ".join(problems))
    return rows


def _merge_tables(
    config: PipelineConfig, names: list[str]
) -> tuple[dict[str, MergeResult], dict[str, BaseException], dict[str, Checkpoint]]:
    """Consume and merge *names*, holding their locks; each table's result or failure, and the
    checkpoints after."""
    locks = ensure_table_locks(config.iceberg.namespace, names)
    # One run at a time per table: a second run waits here, then reads the offsets the first committed.
    with (
        concurrency(
            locks, timeout_seconds=config.replicate.lock_timeout_seconds, lease_duration=60, strict=True
        ),
        Replicator(config, names) as replicator,
    ):
        checkpoints = read_checkpoints(replicator)
        consumed = consume_changes(replicator, checkpoints)
        merges, failures = {}, {}
        for name, changes in consumed.items():
            # One table's failure must not stop the others: each commits on its own.
            # quote: Prefect would otherwise visit every record of the batch, for seconds per cycle.
            state = merge_table(replicator, quote(changes), checkpoints[name], return_state=True)
            outcome = state.result(raise_on_failure=False)
            if isinstance(outcome, BaseException):
                failures[name] = outcome
            else:
                merges[name] = outcome
        replicator.commit_for_monitoring([consumed[name] for name in merges])
        return merges, failures, replicator.checkpoints()


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
