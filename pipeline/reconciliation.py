"""Reconcile tables: the Iceberg side read here, the counting and checking by ``soda_checks``."""

from __future__ import annotations

from floe.config import PipelineConfig
from iceberg import quarantine
from iceberg.catalog import load_table, open_catalog
from iceberg.lookup import key_columns
from soda_checks.mongo_counts import count_documents
from soda_checks.reconcile import Counter, ReconcileResult, check_counts


def reconcile(
    config: PipelineConfig, tables: list[str] | None = None, counter: Counter = count_documents
) -> list[ReconcileResult]:
    """Source row counts against Iceberg row counts for the chosen tables (all by default)."""
    chosen = config.tables(tables)
    catalog = open_catalog(config.iceberg)
    namespace = config.iceberg.namespace
    waiting = quarantine.pending_counts(quarantine.open_quarantine(catalog, config.iceberg))
    stored = {}
    for _, table in chosen:
        iceberg_table = load_table(catalog, namespace, table.target_name)
        stored[table.target_name] = key_columns(iceberg_table) if iceberg_table is not None else None
    return check_counts(chosen, stored, waiting, counter)
