"""Reconcile tables: the Iceberg side read here, the counting and checking by ``reconcile``.

Three modes. ``count`` compares the row counts as they are now: on a source that keeps writing
they may differ for honest reasons. ``exact`` compares a PostgreSQL source's counts with the
Iceberg table once it has applied every change the counts saw, corrected for the changes it
applied beyond them (``pipeline.exact_reconciliation``): a mismatch is lost or duplicated data.
``keys`` does the same and also compares the rows by hashes, naming the keys that differ.
"""

from __future__ import annotations

from pyiceberg.catalog import Catalog

from floe_cdc.core.config import MongoSource, PipelineConfig
from floe_cdc.core.errors import ConfigError
from floe_cdc.lake import quarantine
from floe_cdc.lake.catalog import load_table, open_catalog, reading
from floe_cdc.lake.lookup import key_columns
from floe_cdc.lake.schema import POSITION_FIELD
from floe_cdc.pipeline.exact_reconciliation import Compared, reconcile_exactly
from floe_cdc.reconcile.mongo_counts import count_documents
from floe_cdc.reconcile.reconcile import (
    Counted,
    Counter,
    ReconcileResult,
    SourceCount,
    check_counts,
    count_source,
)
from floe_cdc.reconcile.user_checks import checked_tables, run_user_checks, sodacl_documents, sodacl_files

MODES = ("count", "exact", "keys")
DEFAULT_WAIT_SECONDS = 300.0
DEFAULT_KEY_LIMIT = 20


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ConfigError(f"reconcile mode {mode!r} is not one of {', '.join(MODES)}; choose one of them")


def reconcile(
    config: PipelineConfig,
    tables: list[str] | None = None,
    counter: Counter = count_documents,
    mode: str = "count",
    wait_seconds: float = DEFAULT_WAIT_SECONDS,
    key_limit: int = DEFAULT_KEY_LIMIT,
) -> list[ReconcileResult]:
    """Source row counts against Iceberg row counts for the chosen tables (all by default)."""
    check_mode(mode)
    chosen = config.tables(tables)
    catalog = open_catalog(config.iceberg)
    namespace = config.iceberg.namespace
    with reading(config.iceberg.quarantine_table):
        waiting = quarantine.pending_counts(quarantine.open_quarantine(catalog, config.iceberg))
    counted: dict[str, Counted] = {}
    stored = {}
    exact: dict[str, Compared] = {}
    for source, refs in config.tables_by_source(tables):
        if mode == "count" or isinstance(source, MongoSource):
            for table in refs:
                with reading(f"{namespace}.{table.target_name}"):
                    iceberg_table = load_table(catalog, namespace, table.target_name)
                    stored[table.target_name] = None if iceberg_table is None else key_columns(iceberg_table)
            note = "" if mode == "count" else f"compared by count: {mode} mode needs a PostgreSQL source"
            for name, taken in count_source(source, refs, counter).items():
                counted[name] = (
                    SourceCount(taken.count, note=note) if isinstance(taken, SourceCount) else taken
                )
            continue
        limit = key_limit if mode == "keys" else None
        with reading(", ".join(f"{namespace}.{table.target_name}" for table in refs)):
            exact.update(reconcile_exactly(config, catalog, source, refs, wait_seconds, limit))
    for name, compared in exact.items():
        counted[name], stored[name] = compared.counted, compared.stored
    results = check_counts(chosen, stored, waiting, counted, mode)
    for result in results:
        compared = exact.get(result.table)
        if compared is None:
            continue
        result.differing_keys = compared.differing
        if compared.left_out:
            result.note = f"row values compared without {', '.join(compared.left_out)}"
        if result.differing_keys and result.passed:
            result.passed = False
    if config.checks is not None:
        _user_checks(config, catalog, config.checks.path, results)
    return results


def _user_checks(config: PipelineConfig, catalog: Catalog, path: str, results: list[ReconcileResult]) -> None:
    """The user's SodaCL checks at *path* (``checks.path``) of the reconciled tables, onto their
    results."""
    documents = sodacl_documents(sodacl_files(path))
    by_table = {result.table: result for result in results}
    namespace = config.iceberg.namespace
    readers = {}
    for name in sorted(checked_tables(documents) & by_table.keys()):
        with reading(f"{namespace}.{name}"):
            table = load_table(catalog, namespace, name)
        if table is not None:
            # Floe's own column left out: the checks see the table's data columns, as readers do.
            readers[name] = lambda table=table: table.scan().to_arrow().drop_columns([POSITION_FIELD])
    if readers:
        with reading(", ".join(f"{namespace}.{name}" for name in readers)):
            outcomes = run_user_checks(documents, readers)
        for name, checks in outcomes.items():
            by_table[name].checks = checks
