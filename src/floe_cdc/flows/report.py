"""The per-table result of a cycle, as log lines, a return value and a Prefect table artifact."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console
from rich.table import Table

from floe_cdc.lake.checkpoint import Checkpoint
from floe_cdc.lake.merge import MergeResult
from floe_cdc.pipeline.health import TableHealth
from floe_cdc.reconcile.reconcile import ReconcileResult


def _outcome(check: ReconcileResult | None, lag: TableHealth | None = None) -> str:
    """The reconciliation column. Counts taken while changes of the table still wait in Kafka
    differ by timing, not by loss: ``pending`` then, and ``FAIL`` only for counts that should
    agree (nothing waiting, or the exact modes, which compare at one source position)."""
    if check is None:
        return "not run"
    if check.failed_checks:
        return f"FAIL (checks: {', '.join(check.failed_checks)})"
    if check.passed is None:
        return f"error: {check.error}"
    if check.differing_keys:
        return f"FAIL ({len(check.differing_keys)} keys differ)"
    if check.passed:
        return "pass"
    if check.mode == "count" and lag is not None and lag.lag_events:
        return f"pending ({lag.lag_events} events waiting)"
    return "FAIL"


def _position(checkpoint: Checkpoint | None) -> int | str | None:
    """Where the table stands in its source: a PostgreSQL LSN, or a MongoDB ``ts_ms:ord``."""
    position = checkpoint.position if checkpoint else {}
    if "lsn" in position:
        return position["lsn"]
    if "ts_ms" in position:
        return f"{position['ts_ms']}:{position.get('ord', 0)}"
    return None


def table_rows(
    tables: list[str],
    merges: dict[str, MergeResult],
    checkpoints: dict[str, Checkpoint],
    checks: list[ReconcileResult],
    failures: dict[str, str] | None = None,
    connectors: dict[str, str] | None = None,
    health: dict[str, TableHealth] | None = None,
) -> list[dict[str, Any]]:
    """One row per table: what this cycle changed, where the table stands, how far behind it is,
    whether it reconciles."""
    by_table = {check.table: check for check in checks}
    rows = []
    for table in tables:
        merge, check, checkpoint = merges.get(table), by_table.get(table), checkpoints.get(table)
        lag = (health or {}).get(table)
        rows.append(
            {
                "table": table,
                "events": merge.events if merge else 0,
                "inserted": merge.inserted if merge else 0,
                "updated": merge.updated if merge else 0,
                "deleted": merge.deleted if merge else 0,
                "replayed": merge.replayed if merge else 0,
                "quarantined": check.quarantined if check else (merge.quarantined if merge else 0),
                "schema_changes": "; ".join(merge.schema_changes) if merge else "",
                "source_position": _position(checkpoint),
                "lag_events": lag.lag_events if lag else None,
                "lag_seconds": None if lag is None or lag.lag_seconds is None else round(lag.lag_seconds, 1),
                "source_rows": check.source_count if check else None,
                "iceberg_rows": check.iceberg_count if check else None,
                "reconciliation": _outcome(check, lag),
                "connector": (connectors or {}).get(table, ""),
                "error": (failures or {}).get(table, ""),
            }
        )
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A plain-text table for terminals and logs (rich, without colours or markup)."""
    if not rows:
        return "(no tables)"
    columns = [
        "table",
        "events",
        "inserted",
        "updated",
        "deleted",
        "quarantined",
        "source_position",
        "lag_events",
        "lag_seconds",
        "source_rows",
        "iceberg_rows",
        "reconciliation",
        "connector",
    ]
    if any(row.get("error") for row in rows):
        columns.append("error")
    table = Table(box=None, pad_edge=False, header_style=None)
    for column in columns:
        table.add_column(column, no_wrap=True, overflow="ignore")
    for row in rows:
        table.add_row(*("" if row[c] is None else str(row[c]) for c in columns))
    console = Console(file=io.StringIO(), width=100_000, color_system=None, markup=False, highlight=False)
    console.print(table)
    return "\n".join(line.rstrip() for line in console.file.getvalue().splitlines())


_MODE_TEXT = {
    "count": "Row counts as they are now; on a source that keeps writing they may differ for a moment.",
    "exact": (
        "Source counts taken at a source position, compared once Iceberg had applied every change "
        "they saw, corrected by the net rows of the changes Iceberg applied beyond them: a "
        "mismatch means lost or duplicated data."
    ),
    "keys": "As exact, and rows compared by hashes: the keys that differ are named.",
}


def _cell(value: object) -> str:
    return "" if value is None else str(value).replace("|", "\\|")


def reconciliation_markdown(results: list[ReconcileResult], mode: str) -> str:
    """The reconciliation as a person reads it in the Prefect UI: outcome, both counts, the
    correction, and the keys that differ."""
    lines = [
        f"# Reconciliation: {mode} mode",
        "",
        _MODE_TEXT.get(mode, ""),
        "",
        "| table | outcome | source rows | correction | Iceberg should hold | Iceberg rows "
        "| at source position | quarantined |",
        "|---|---|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        expected = None if r.source_count is None else r.source_count + r.correction
        cells = [r.table, _outcome(r), r.source_count, r.correction, expected, r.iceberg_count]
        lines.append("| " + " | ".join(_cell(c) for c in [*cells, r.source_position, r.quarantined]) + " |")
    for r in results:
        if r.differing_keys:
            lines += ["", f"## {r.table}: rows that differ (first {len(r.differing_keys)})", ""]
            lines += [f"- `{key}`" for key in r.differing_keys]
        if r.note:
            lines += ["", f"*{r.table}: {r.note}*"]
    for r in (r for r in results if r.checks):
        lines += ["", f"## {r.table}: SodaCL checks", "", "| check | outcome | value |", "|---|---|---|"]
        lines += [f"| {_cell(c['name'])} | {c['outcome']} | {_cell(c.get('value'))} |" for c in r.checks]
    return "\n".join(lines)


def cycle_markdown(rows: list[dict[str, Any]], title: str) -> str:
    """A replicate run in a few lines: what it merged, how far behind each table is, whether it
    reconciles, and what went wrong."""
    lines = [
        f"# {title}",
        "",
        "| table | +rows | ~rows | -rows | lag (s) | waiting events | reconciliation |",
    ]
    lines.append("|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        cells = [row["table"], row["inserted"], row["updated"], row["deleted"], row["lag_seconds"]]
        cells += [row["lag_events"], row["reconciliation"]]
        lines.append("| " + " | ".join(_cell(c) for c in cells) + " |")
    problems = [f"- **{row['table']}**: {row['error']}" for row in rows if row.get("error")]
    paused = [row["table"] for row in rows if str(row.get("connector", "")).startswith("PAUSED")]
    if paused:
        lines += ["", f"Paused (left alone): {', '.join(paused)}"]
    if problems:
        lines += ["", "## Problems", "", *problems]
    return "\n".join(lines)
