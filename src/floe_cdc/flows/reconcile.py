"""The ad-hoc ``reconcile`` flow: compare source and Iceberg tables (count, exact or keys mode)."""

from __future__ import annotations

from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from floe_cdc.core.config import load_config
from floe_cdc.core.errors import ReconciliationFailed
from floe_cdc.flows.alerts import emit_alerts
from floe_cdc.flows.report import reconciliation_markdown
from floe_cdc.pipeline.health import reconciliation_alerts
from floe_cdc.pipeline.reconciliation import DEFAULT_KEY_LIMIT, DEFAULT_WAIT_SECONDS
from floe_cdc.pipeline.reconciliation import reconcile as run_reconcile


@flow(name="reconcile")
def reconcile(
    config_path: str = "floe.yaml",
    tables: list[str] | None = None,
    mode: Literal["count", "exact", "keys"] = "count",
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    key_limit: int = DEFAULT_KEY_LIMIT,
) -> list[dict[str, Any]]:
    """Reconcile *tables* (all configured tables when empty).

    ``count`` compares row counts as they are now; ``exact`` (PostgreSQL sources) waits up to
    *wait_seconds* for Iceberg to apply every change the source count saw and corrects for the
    changes applied beyond it, so a mismatch means lost or duplicated data; ``keys`` also
    compares rows by hashes and names up to *key_limit* differing keys.
    """
    config = load_config(config_path)
    results = run_reconcile(config, tables or None, mode=mode, wait_seconds=wait_seconds, key_limit=key_limit)
    rows = [r.as_dict() for r in results]
    failed = [r.table for r in results if not r.passed or r.failed_checks]
    summary = f"Reconciliation ({mode}): {len(results) - len(failed)}/{len(results)} tables pass"
    if failed:
        summary += f"; failing: {', '.join(failed)}"
    get_run_logger().info(summary)
    create_table_artifact(key="floe-reconcile", table=rows, description=summary)
    create_markdown_artifact(key="floe-reconcile-summary", markdown=reconciliation_markdown(results, mode))
    emit_alerts(reconciliation_alerts(config, results))
    if failed:
        raise ReconciliationFailed(summary, rows)  # the run shows as Failed: the automation's trigger
    return rows
