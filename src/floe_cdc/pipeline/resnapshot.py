"""``floe resnapshot``: read tables again from the source while replication goes on.

This is the way out when a table cannot follow its source any more (a column type changed in a
way Iceberg cannot follow) and the way to repair a table one doubts. The Iceberg table is
marked first, so that until the snapshot completes an incompatible column is replaced rather
than stopping the table; then the connector is signalled.

PostgreSQL tables are read by Debezium's incremental snapshot: in chunks by primary key while
streaming goes on, so the other tables never wait. The rows read again win over older changes
by their source position, changes made meanwhile win over the reads, and once the connector
reports the table read to the end, rows that were neither read again nor changed since the
request are removed (see ``pipeline.snapshot_completion``): the table ends equal to the source.
MongoDB collections are read by a blocking snapshot: Debezium's incremental snapshot of MongoDB
writes watermark documents into a signal collection of the source, and Floe's connectors never
write to a source.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from floe_cdc.capture.connect_client import ConnectClient
from floe_cdc.capture.connectors import exact
from floe_cdc.capture.consumer import ChangeConsumer
from floe_cdc.capture.notifications import read_finished_scans
from floe_cdc.capture.signals import SignalError, new_signal_id, notification_topic, request_snapshot
from floe_cdc.capture.slot_status import mark_position
from floe_cdc.core.config import PipelineConfig, PostgresSource, Source
from floe_cdc.core.errors import ConfigError, FloeError, Terminal
from floe_cdc.lake.catalog import load_table, open_catalog
from floe_cdc.lake.checkpoint import Checkpoint, read_checkpoint
from floe_cdc.lake.resnapshot_mark import (
    RESNAPSHOT_PROPERTY,
    ResnapshotMark,
    mark_resnapshot,
    read_mark,
    unmark_resnapshot,
)
from floe_cdc.reconcile.reconcile import SourceCount, count_source


class ResnapshotFailed(FloeError, Terminal):
    """The connector finished a table's scan without reading the table."""


def _check_connector(source: Source, stored: dict[str, str]) -> None:
    """The connector must read Floe's signals and, for PostgreSQL, snapshot incrementally
    without a signal table and report its progress."""
    wanted = {"signal.enabled.channels": "kafka"}
    if isinstance(source, PostgresSource):
        wanted |= {"read.only": "true", "notification.enabled.channels": "sink"}
    for name, value in wanted.items():
        if value not in stored.get(name, "").split(","):
            raise ConfigError(
                f"connector {source.connector_name} does not take Floe's re-snapshots yet ({name} is not "
                f"{value}); run 'floe connectors apply' first, then 'floe resnapshot' again"
            )


def _floor(checkpoint: Checkpoint) -> int:
    """Just above the table's highest applied position: every read and change after the request
    sorts at or above it.

    A change streamed after the request sorts above everything streamed before. A read carries
    the position of the connector's place in the stream when it is sent, which is past the
    commit of the last change applied; after an initial snapshot with nothing streamed since,
    the position marker written with the request (``mark_position``) moves that place on.
    """
    marks = [mark for parts in checkpoint.watermarks.values() for mark in parts.values()]
    return min(marks) + 1 if marks else 0


def request_resnapshot(config: PipelineConfig, tables: list[str]) -> list[str]:
    """Mark and signal each of *tables*; return one line per table saying what happens next.

    A table whose incremental re-snapshot is still running is refused: the connector would add it
    to the running snapshot once more, and the finish of the first scan could not be told from
    the finish of the second.
    """
    by_source = config.tables_by_source(tables)
    with ConnectClient(config.connect.url, config.connect.timeout_seconds) as client:
        for source, _ in by_source:
            _check_connector(source, client.get_config(source.connector_name) or {})
    catalog = open_catalog(config.iceberg)
    found = {
        ref.target_name: load_table(catalog, config.iceberg.namespace, ref.target_name)
        for _, refs in by_source
        for ref in refs
    }
    for name, table in found.items():
        mark = read_mark(dict(table.properties)) if table is not None else None
        if mark is not None and mark.incremental:
            raise ConfigError(
                f"table {name}: a re-snapshot requested at {mark.requested_at} is still running; wait until "
                "replicate has applied it (the resnapshot flow run shows its progress)"
            )
    lines = []
    with ChangeConsumer(config.kafka) as consumer:
        for source, refs in by_source:
            incremental = isinstance(source, PostgresSource)
            mark = ResnapshotMark(
                signal=new_signal_id() if incremental else None,
                notifications=consumer.end_offsets(notification_topic(source)) if incremental else {},
            )
            marked = [found[ref.target_name] for ref in refs if found[ref.target_name] is not None]
            if incremental:
                mark_position(source)
            for table in marked:
                mark_resnapshot(table, dataclasses.replace(mark, floor=_floor(read_checkpoint(table))))
            try:
                request_snapshot(config.kafka, source, refs, exact, mark.signal)
            except SignalError:
                for table in marked:
                    unmark_resnapshot(table)
                raise
            kind = "incremental" if incremental else "blocking"
            lines += [
                f"{ref.target_name}: {kind} re-snapshot of {source.source_table(ref)} requested from "
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
    the connector's notifications (a table it could not read fails the watch), and the table's
    mark, which the merge that applies the completed snapshot removes."""

    def __init__(self, config: PipelineConfig, tables: list[str]) -> None:
        self.config = config
        self.chosen = config.tables(tables)
        self.catalog = open_catalog(config.iceberg)
        self.consumer = ChangeConsumer(config.kafka)
        self.read = {ref.target_name: 0 for _, ref in self.chosen}
        self.next = {ref.target_name: self.consumer.end_offsets(s.topic_for(ref)) for s, ref in self.chosen}
        sources = {source.name: source for source, _ in self.chosen if isinstance(source, PostgresSource)}
        self.notified = {
            source.name: (source, self.consumer.end_offsets(notification_topic(source)))
            for source in sources.values()
        }
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

    def _check_scans(self) -> None:
        names = {(source.name, source.source_table(ref)): ref.target_name for source, ref in self.chosen}
        for source, start in self.notified.values():
            for scan in read_finished_scans(self.consumer, source, start):
                name = names.get((source.name, scan.collection))
                if name is not None and not scan.read_in_full:
                    raise ResnapshotFailed(
                        f"the connector {source.connector_name} ended the re-snapshot of {name} without "
                        f"reading {scan.collection} ({scan.status}); nothing was removed from {name}. Fix "
                        "the cause (the Kafka Connect worker's log says more), then re-snapshot it again"
                    )

    def poll(self) -> list[TableProgress]:
        """Each table's progress; raises ResnapshotFailed for a table the connector could not read."""
        self._check_scans()
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
