"""The scheduled ``maintain`` flow: keep merge-on-read tables fast to read and their storage bounded."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact

from floe_cdc.core.config import load_config
from floe_cdc.core.errors import FloeError, Transient
from floe_cdc.pipeline.maintenance import maintain as run_maintain


class MaintenanceFailed(FloeError, Transient):
    """The catalog or object store failed on some tables; the next scheduled run tries again."""


@flow(name="maintain")
def maintain(config_path: str = "floe.yaml", tables: list[str] | None = None) -> list[dict[str, Any]]:
    """Rewrite data files with many deletes and small files, expire snapshots, remove orphan
    files, for *tables* (all configured tables and the quarantine table when empty). Safe while
    ``replicate`` runs: every rewrite commits only on the snapshot it read."""
    artifact = create_progress_artifact(0.0, key="floe-maintain-progress", description="Tables maintained")
    results = run_maintain(
        load_config(config_path),
        tables or None,
        lambda done, total: update_progress_artifact(artifact, round(100 * done / total, 1)),
    )
    rows = [{**asdict(r), "notes": "; ".join(r.notes)} for r in results]
    failed = [r for r in results if r.error]
    summary = (
        f"Maintenance: {sum(r.files_rewritten for r in results)} data files rewritten, "
        f"{sum(r.delete_files_removed for r in results)} delete files retired, "
        f"{sum(r.snapshots_expired for r in results)} snapshots expired, "
        f"{sum(r.orphan_files_removed for r in results)} orphan files removed"
    )
    get_run_logger().info(summary)
    create_table_artifact(key="floe-maintain", table=rows, description=summary)
    if failed:
        raise MaintenanceFailed("; ".join(f"{r.table}: {r.error}" for r in failed))
    return rows
