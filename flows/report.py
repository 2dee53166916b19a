"""The per-table result of a cycle, as log lines, a return value and a Prefect table artifact."""

from __future__ import annotations

from typing import Any

from iceberg.checkpoint import Checkpoint
from iceberg.merge import MergeResult
from soda_checks.reconcile import ReconcileResult


def _outcome(check: ReconcileResult | None) -> str:
    if check is None:
        return "not run"
    if check.passed is None:
        return f"error: {check.error}"
    return "pass" if check.passed else "FAIL"


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
) -> list[dict[str, Any]]:
    """One row per table: what this cycle changed, where the table stands, whether it reconciles."""
    by_table = {check.table: check for check in checks}
    rows = []
    for table in tables:
        merge, check, checkpoint = merges.get(table), by_table.get(table), checkpoints.get(table)
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
                "source_rows": check.source_count if check else None,
                "iceberg_rows": check.iceberg_count if check else None,
                "reconciliation": _outcome(check),
                "connector": (connectors or {}).get(table, ""),
                "error": (failures or {}).get(table, ""),
            }
        )
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """A plain-text table for terminals and logs."""
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
        "source_rows",
        "iceberg_rows",
        "reconciliation",
        "connector",
    ]
    if any(row.get("error") for row in rows):
        columns.append("error")
    cells = [[("" if row[c] is None else str(row[c])) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join(lines)
