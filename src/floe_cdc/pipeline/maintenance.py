"""Maintain every configured table (and the quarantine table): rewrite, expire, remove orphans."""

from __future__ import annotations

from collections.abc import Callable

from floe_cdc.core.config import PipelineConfig
from floe_cdc.lake.catalog import AWAY, away_error, load_table, open_catalog
from floe_cdc.lake.history import history_name
from floe_cdc.lake.maintenance import MaintainResult, maintain_table
from floe_cdc.lake.resnapshot_branch import BRANCH as RESNAPSHOT_BRANCH


def maintain(
    config: PipelineConfig,
    tables: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> list[MaintainResult]:
    """One result per table, chosen by *tables* (every configured table and the quarantine table
    when empty). A table the catalog or object store fails on is reported; the others go on.
    *progress* hears (tables done, tables in all) after each table."""
    chosen = [table for _, table in config.tables(tables)]
    names = [t.target_name for t in chosen] + [history_name(t.target_name) for t in chosen if t.history]
    if not tables:
        names.append(config.iceberg.quarantine_table)
    catalog = open_catalog(config.iceberg)
    results = []
    for name in names:
        try:
            table = load_table(catalog, config.iceberg.namespace, name)
            if table is None:
                results.append(MaintainResult(name, notes=["not created yet: nothing to maintain"]))
            elif RESNAPSHOT_BRANCH in table.metadata.refs:
                # A rewrite would move main, and the re-snapshot would have to read it all again.
                results.append(
                    MaintainResult(name, notes=["a direct re-snapshot is reading it: maintained later"])
                )
            else:
                results.append(maintain_table(table, name, config.maintain))
        except AWAY as exc:
            results.append(MaintainResult(name, error=str(away_error(name, exc))))
        if progress is not None:
            progress(len(results), len(names))
    return results
