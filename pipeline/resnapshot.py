"""``floe resnapshot``: read tables again from the source, through Debezium's blocking snapshot.

This is the way out when a table cannot follow its source any more (a column type changed in a
way Iceberg cannot follow) and the way to repair a table one doubts. The Iceberg table is
marked first, so that until the snapshot completes an incompatible column is replaced rather
than stopping the table; then the connector is signalled. The rows read again win over older
changes by their source position, changes made meanwhile stream on after them, and the completed
snapshot removes rows the source no longer has: the table ends equal to the source.
"""

from __future__ import annotations

from dataclasses import dataclass

from cdc.connect_client import ConnectClient
from cdc.connectors import exact
from cdc.consumer import ChangeConsumer
from cdc.signals import request_snapshot
from floe.config import PipelineConfig
from floe.errors import ConfigError
from iceberg.catalog import load_table, open_catalog
from iceberg.schema import RESNAPSHOT_PROPERTY, mark_resnapshot
from soda_checks.reconcile import SourceCount, count_source


def request_resnapshot(config: PipelineConfig, tables: list[str]) -> list[str]:
    """Mark and signal each of *tables*; return one line per table saying what happens next."""
    by_source = config.tables_by_source(tables)
    with ConnectClient(config.connect.url, config.connect.timeout_seconds) as client:
        for source, _ in by_source:
            stored = client.get_config(source.connector_name) or {}
            if "kafka" not in stored.get("signal.enabled.channels", "").split(","):
                raise ConfigError(
                    f"connector {source.connector_name} does not read Floe's signals yet; run 'floe "
                    "connectors apply' first, then 'floe resnapshot' again"
                )
    catalog = open_catalog(config.iceberg)
    for _, refs in by_source:
        for table in refs:
            iceberg_table = load_table(catalog, config.iceberg.namespace, table.target_name)
            if iceberg_table is not None:
                mark_resnapshot(iceberg_table)
    lines = []
    for source, refs in by_source:
        request_snapshot(config.kafka, source, refs, exact)
        lines += [
            f"{ref.target_name}: re-snapshot of {source.source_table(ref)} requested from "
            f"{source.connector_name}; the next 'floe replicate' runs apply it"
            for ref in refs
        ]
    return lines


@dataclass
class TableProgress:
    table: str
    read: int  # rows the connector has read again so far (snapshot events in the topic)
    total: int | None  # the source's rows when the re-snapshot was requested
    done: bool  # Iceberg has applied the completed snapshot

    @property
    def fraction(self) -> float:
        if self.done:
            return 1.0
        if not self.total:
            return 0.0
        return min(self.read / self.total, 0.99)


class ResnapshotWatch:
    """Follows requested re-snapshots: the snapshot events the connector writes to each table's
    topic (read on from where the topic ended at the request) against the source's row count,
    and the table's mark, which the merge that applies the completed snapshot removes."""

    def __init__(self, config: PipelineConfig, tables: list[str]) -> None:
        self.config = config
        self.chosen = config.tables(tables)
        self.catalog = open_catalog(config.iceberg)
        self.consumer = ChangeConsumer(config.kafka)
        self.read = {ref.target_name: 0 for _, ref in self.chosen}
        self.next = {ref.target_name: self.consumer.end_offsets(s.topic_for(ref)) for s, ref in self.chosen}
        self.total = self._source_rows(tables)

    def _source_rows(self, tables: list[str]) -> dict[str, int | None]:
        """Each table's source rows, counted per source in one transaction (None: not counted)."""
        totals: dict[str, int | None] = {}
        for source, refs in self.config.tables_by_source(tables):
            for name, counted in count_source(source, refs).items():
                totals[name] = counted.count if isinstance(counted, SourceCount) else None
        return totals

    def close(self) -> None:
        self.consumer.close()

    def poll(self) -> list[TableProgress]:
        progress = []
        for source, ref in self.chosen:
            name, positions = ref.target_name, self.next[ref.target_name]
            for record in self.consumer.scan(source.topic_for(ref), positions, 1.0, set()):
                positions[record.partition] = record.offset + 1
                # A byte search, not a parse: rows may be megabytes, and inside the payload's
                # string values quotes are escaped, so only the event's own op can match.
                if record.value is not None and b'"op":"r"' in record.value:
                    self.read[name] += 1
            table = load_table(self.catalog, self.config.iceberg.namespace, name)
            done = table is not None and RESNAPSHOT_PROPERTY not in table.properties
            progress.append(TableProgress(name, self.read[name], self.total[name], done))
        return progress
