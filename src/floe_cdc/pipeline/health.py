"""How far behind each table is, and what deserves an alert.

Measured at the end of each replicate run: the events waiting in each table's topic beyond its
checkpoint, the age of its newest applied change while more wait (the lag), the time since its
last commit, and the WAL each PostgreSQL source keeps for its replication slot. What crosses a
threshold under ``alerts:`` becomes an ``Alert``: one line naming the table (or slot), what is
wrong and the fix, for the flows to emit as a Prefect event.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from floe_cdc.capture.consumer import ChangeConsumer
from floe_cdc.capture.slot_status import slot_status
from floe_cdc.core.config import PipelineConfig, PostgresSource
from floe_cdc.core.errors import FloeError
from floe_cdc.lake.checkpoint import Checkpoint
from floe_cdc.reconcile.reconcile import ReconcileResult

LAGGING, STALLED, WAL_RETAINED, RECONCILIATION_FAILED = (
    "floe.table.lagging",
    "floe.table.stalled",
    "floe.slot.wal-retained",
    "floe.reconciliation.failed",
)


@dataclass(frozen=True)
class TableHealth:
    table: str
    topic: str
    lag_events: int | None  # None: the broker did not say
    lag_seconds: float | None  # 0 when nothing waits; None before the first change
    idle_minutes: float | None  # since the table's last commit


@dataclass(frozen=True)
class Alert:
    """One alert: its event name, what it is about (a table or a slot) and its message."""

    event: str
    subject: str
    message: str
    payload: dict


def _source_seconds(checkpoint: Checkpoint) -> float | None:
    stamp = checkpoint.position.get("ts_ms")
    return None if stamp is None else int(stamp) / 1000


def table_health(
    config: PipelineConfig, checkpoints: dict[str, Checkpoint], consumer: ChangeConsumer
) -> list[TableHealth]:
    """Each checkpointed table's lag now (*checkpoints* read after the run's merges)."""
    now = time.time()
    health = []
    for source, ref in config.tables(list(checkpoints)):
        checkpoint, topic = checkpoints[ref.target_name], source.topic_for(ref)
        try:
            ends = consumer.end_offsets(topic)
        except FloeError:
            ends = None
        applied = checkpoint.offsets.get(topic, {})
        waiting = None if ends is None else sum(max(end - applied.get(p, 0), 0) for p, end in ends.items())
        newest = _source_seconds(checkpoint)
        lag = 0.0 if waiting == 0 else (None if newest is None else max(now - newest, 0.0))
        idle = None if checkpoint.committed_ms is None else (now - checkpoint.committed_ms / 1000) / 60
        health.append(TableHealth(ref.target_name, topic, waiting, lag, idle))
    return health


def table_alerts(config: PipelineConfig, health: list[TableHealth]) -> list[Alert]:
    """Lagging and stalled tables, each with its fix."""
    limits, alerts = config.alerts, []
    namespace = config.iceberg.namespace
    for h in health:
        name = f"{namespace}.{h.table}"
        facts = {"table": name, "lag_events": h.lag_events, "lag_seconds": h.lag_seconds}
        if h.lag_seconds is not None and h.lag_seconds > limits.lag_seconds and h.lag_events:
            alerts.append(
                Alert(
                    LAGGING,
                    name,
                    f"table {name} is {h.lag_seconds:.0f}s behind its source with {h.lag_events} change "
                    f"events waiting in {h.topic} (alerts.lag_seconds is {limits.lag_seconds:g}); let "
                    "replicate run more often or consume more per cycle (replicate.max_events, "
                    "replicate.max_seconds), or give the table's source a worker of its own",
                    facts,
                )
            )
        if h.idle_minutes is not None and h.idle_minutes > limits.stall_minutes and h.lag_events:
            alerts.append(
                Alert(
                    STALLED,
                    name,
                    f"table {name} has had no commit for {h.idle_minutes:.0f} min while {h.lag_events} "
                    f"change events wait in {h.topic} (alerts.stall_minutes is {limits.stall_minutes:g}); "
                    f"read the error of the latest replicate run for {name}, fix its cause, then run "
                    f"'floe replicate --table {h.table}'",
                    {**facts, "idle_minutes": h.idle_minutes},
                )
            )
    return alerts


def slot_alerts(config: PipelineConfig) -> list[Alert]:
    """PostgreSQL sources whose replication slot makes them keep more WAL than allowed."""
    alerts = []
    limit = config.alerts.retained_wal_mb
    for source in config.sources:
        if not isinstance(source, PostgresSource):
            continue
        try:
            slot = slot_status(source)
        except FloeError:
            continue  # the source being away shows in the run's own errors
        if slot is None or slot.retained_wal_bytes <= limit * 1024 * 1024:
            continue
        retained = slot.retained_wal_bytes / 1024 / 1024
        alerts.append(
            Alert(
                WAL_RETAINED,
                f"{source.name}.{slot.slot}",
                f"replication slot {slot.slot} makes PostgreSQL source {source.name} keep {retained:.0f} MB "
                f"of WAL (alerts.retained_wal_mb is {limit:g}); resume or repair its connector "
                f"('floe connectors status', 'floe resume --source {source.name}'), or drop the slot if "
                "the source is retired",
                {
                    "source": source.name,
                    "slot": slot.slot,
                    "retained_mb": round(retained, 1),
                    "active": slot.active,
                },
            )
        )
    return alerts


def reconciliation_alerts(config: PipelineConfig, results: list[ReconcileResult]) -> list[Alert]:
    """Tables whose reconciliation failed (not those that could not be checked: their run says
    why), and tables that failed one of the user's SodaCL checks."""
    alerts = [_checks_alert(config, r) for r in results if r.failed_checks]
    for r in results:
        if r.passed is not False:
            continue
        name = f"{config.iceberg.namespace}.{r.table}"
        correction = f" {r.correction:+d} for changes applied since" if r.correction else ""
        differing = f"; rows differ: {', '.join(r.differing_keys[:5])}" if r.differing_keys else ""
        alerts.append(
            Alert(
                RECONCILIATION_FAILED,
                name,
                f"table {name} failed {r.mode} reconciliation: source {r.source_table} has {r.source_count} "
                f"rows{correction}, Iceberg {r.iceberg_count}{differing}; run 'floe reconcile --mode keys "
                f"--table {r.table}' to see which rows differ, then 'floe resnapshot --table {r.table}' to "
                "repair the table",
                {"table": name, **{k: v for k, v in r.as_dict().items() if k != "table"}},
            )
        )
    return alerts


def _checks_alert(config: PipelineConfig, result: ReconcileResult) -> Alert:
    """The alert of a table that failed some of the user's SodaCL checks: the reconciliation's
    event, so that the automation that notifies of a failed reconciliation notifies of it too."""
    name = f"{config.iceberg.namespace}.{result.table}"
    failed = [c for c in result.checks if c["name"] in result.failed_checks]
    told = "; ".join(
        f"'{c['name']}' {'could not run: ' + c['reason'] if c.get('reason') else c['outcome']}"
        + ("" if c.get("value") is None else f" (measured {c['value']})")
        for c in failed
    )
    path = config.checks.path if config.checks else "checks.path"
    return Alert(
        RECONCILIATION_FAILED,
        name,
        f"table {name} failed {len(failed)} of its SodaCL checks: {told}; the checks are in {path}",
        {"table": name, "checks": failed},
    )
