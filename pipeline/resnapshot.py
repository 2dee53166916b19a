"""``floe resnapshot``: read tables again from the source, through Debezium's blocking snapshot.

This is the way out when a table cannot follow its source any more (a column type changed in a
way Iceberg cannot follow) and the way to repair a table one doubts. The Iceberg table is
marked first, so that until the snapshot completes an incompatible column is replaced rather
than stopping the table; then the connector is signalled. The rows read again win over older
changes by their source position, changes made meanwhile stream on after them, and the completed
snapshot removes rows the source no longer has: the table ends equal to the source.
"""

from __future__ import annotations

from cdc.connect_client import ConnectClient
from cdc.connectors import exact
from cdc.signals import request_snapshot
from floe.config import PipelineConfig, Source, TargetRef
from floe.errors import ConfigError
from iceberg.catalog import load_table, open_catalog
from iceberg.schema import mark_resnapshot


def request_resnapshot(config: PipelineConfig, tables: list[str]) -> list[str]:
    """Mark and signal each of *tables*; return one line per table saying what happens next."""
    chosen = config.tables(tables)
    by_source: dict[str, tuple[Source, list[TargetRef]]] = {}
    for source, table in chosen:
        by_source.setdefault(source.name, (source, []))[1].append(table)
    with ConnectClient(config.connect.url, config.connect.timeout_seconds) as client:
        for source, _ in by_source.values():
            stored = client.get_config(source.connector_name) or {}
            if "kafka" not in stored.get("signal.enabled.channels", "").split(","):
                raise ConfigError(
                    f"connector {source.connector_name} does not read Floe's signals yet; run 'floe "
                    "connectors apply' first, then 'floe resnapshot' again"
                )
    catalog = open_catalog(config.iceberg)
    for _, table in chosen:
        iceberg_table = load_table(catalog, config.iceberg.namespace, table.target_name)
        if iceberg_table is not None:
            mark_resnapshot(iceberg_table)
    lines = []
    for source, refs in by_source.values():
        request_snapshot(config.kafka, source, refs, exact)
        lines += [
            f"{ref.target_name}: re-snapshot of {source.source_table(ref)} requested from "
            f"{source.connector_name}; the next 'floe replicate' runs apply it"
            for ref in refs
        ]
    return lines
