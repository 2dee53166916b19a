"""The ad-hoc ``reconcile`` flow: compare source and Iceberg row counts for chosen tables."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_table_artifact

from floe.config import load_config
from pipeline.reconciliation import reconcile as run_reconcile


@flow(name="reconcile")
def reconcile(config_path: str = "floe.yaml", tables: list[str] | None = None) -> list[dict[str, Any]]:
    """Run the Soda reconciliation for *tables* (all configured tables when empty)."""
    results = run_reconcile(load_config(config_path), tables or None)
    rows = [r.as_dict() for r in results]
    failed = [r.table for r in results if not r.passed]
    summary = f"Reconciliation: {len(results) - len(failed)}/{len(results)} tables pass"
    if failed:
        summary += f"; failing: {', '.join(failed)}"
    get_run_logger().info(summary)
    create_table_artifact(key="floe-reconcile", table=rows, description=summary)
    return rows
