"""Exact reconciliation of a PostgreSQL source's tables while the source keeps writing.

The counts (and, in keys mode, the row hashes) are read in one snapshot, together with the WAL
position after it. Then the Iceberg tables must have applied everything that snapshot saw: the
replication slot has to confirm that position (so every such change is in Kafka; a logical
decoding message written after the count gives an idle source something to confirm) and the
table's topic must hold no change the snapshot saw beyond the table's checkpoint. The changes
the Iceberg table applied that the snapshot did not see give the correction (``capture.change_window``).
A difference left is lost or duplicated data, never timing.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import orjson
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.table import Table

from floe_cdc.capture.change_window import ChangeWindow, read_window
from floe_cdc.capture.consumer import ChangeConsumer
from floe_cdc.capture.envelope import split_envelope
from floe_cdc.capture.slot_status import mark_position, slot_status
from floe_cdc.core.config import PipelineConfig, PostgresSource, TableRef
from floe_cdc.core.source_snapshot import SourceSnapshot
from floe_cdc.lake.catalog import load_table
from floe_cdc.lake.checkpoint import Checkpoint, read_checkpoint
from floe_cdc.lake.lookup import key_columns
from floe_cdc.lake.schema import POSITION_FIELD, key_names
from floe_cdc.lake.soft_deletes import OWN_COLUMNS, live_rows
from floe_cdc.reconcile.mongo_counts import SourceCountError
from floe_cdc.reconcile.postgres_counts import SourceReader
from floe_cdc.reconcile.reconcile import Counted, SourceCount
from floe_cdc.reconcile.row_hashes import compare_rows, key_text, layout

log = logging.getLogger("floe.reconcile")


@dataclass
class Compared:
    """One table's exact comparison: its source count (or why there is none), the Iceberg key
    columns at the snapshot compared, and in keys mode the keys that differ."""

    counted: Counted
    stored: pa.Table | None = None  # key columns; None when there is nothing to count
    differing: list[str] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)


class _Exact:
    def __init__(
        self,
        config: PipelineConfig,
        catalog: Catalog,
        source: PostgresSource,
        wait_seconds: float,
        key_limit: int | None,
    ) -> None:
        self.config, self.catalog, self.source = config, catalog, source
        self.wait_seconds, self.key_limit = wait_seconds, key_limit

    def load(self, ref: TableRef) -> Table | None:
        return load_table(self.catalog, self.config.iceberg.namespace, ref.target_name)

    def run(self, refs: list[TableRef]) -> dict[str, Compared]:
        before = {ref.target_name: read_checkpoint(self.load(ref)) for ref in refs}
        try:
            with SourceReader(self.source) as reader:
                counts = {ref.target_name: reader.count(ref) for ref in refs}
                log.info("counted %s at %s", self.source.name, reader.snapshot.position)
                # Something to stream past the count's position, should the source be idle.
                mark_position(self.source)
                return self._compare(reader, refs, before, counts)
        except SourceCountError as exc:
            return {ref.target_name: Compared(str(exc)) for ref in refs}

    def _compare(
        self,
        reader: SourceReader,
        refs: list[TableRef],
        before: dict[str, Checkpoint],
        counts: dict[str, int],
    ) -> dict[str, Compared]:
        snapshot = reader.snapshot
        waiting = {ref.target_name: ref for ref in refs}
        done: dict[str, Compared] = {}
        deadline = time.monotonic() + self.wait_seconds
        with ChangeConsumer(self.config.kafka) as consumer:
            while waiting and time.monotonic() < deadline:
                if self._slot_behind(snapshot) is None:
                    for name, ref in list(waiting.items()):
                        compared = self._try(reader, consumer, ref, before[name], counts[name])
                        if compared is not None:
                            done[name] = compared
                            del waiting[name]
                if waiting:
                    time.sleep(1.0)
        why = self._slot_behind(snapshot) if waiting else None
        for name in waiting:
            done[name] = Compared(
                f"Iceberg table {name} did not reach source position {snapshot.position} within "
                f"{self.wait_seconds:g}s ({why or 'changes the count saw are not applied yet'}); check "
                "that replicate runs and the connector is RUNNING ('floe connectors status'), then "
                "reconcile again"
            )
        return done

    def _slot_behind(self, snapshot: SourceSnapshot) -> str | None:
        """Why the connector has not yet put every change the snapshot saw into Kafka; None if it has."""
        slot = slot_status(self.source)
        if slot is None:
            return f"replication slot {self.source.slot} does not exist: run 'floe connectors apply'"
        if slot.confirmed_lsn is None or slot.confirmed_lsn < snapshot.lsn:
            return f"the connector has not confirmed position {snapshot.position} on slot {slot.slot} yet"
        return None

    def _try(
        self, reader: SourceReader, consumer: ChangeConsumer, ref: TableRef, before: Checkpoint, count: int
    ) -> Compared | None:
        """The table's comparison, or None while it has not applied everything the count saw."""
        table = self.load(ref)
        snapshot = reader.snapshot
        if table is None:
            return Compared(SourceCount(count, position=snapshot.position))
        topic = self.source.topic_for(ref)
        now = read_checkpoint(table)
        window = read_window(
            consumer, topic, before.offsets.get(topic, {}), now.offsets.get(topic, {}), snapshot
        )
        if window.pending:
            return None
        if window.unknown:
            return Compared(f"no exact count of {ref.target_name}: {window.unknown}; reconcile again")
        compared = Compared(SourceCount(count, window.correction, snapshot.position), key_columns(table))
        if self.key_limit:
            self._compare_keys(reader, ref, table, window, compared)
        return compared

    def _compare_keys(
        self, reader: SourceReader, ref: TableRef, table: Table, window: ChangeWindow, compared: Compared
    ) -> None:
        schema = table.schema()
        key = key_names(schema)
        columns = [f.name for f in schema.fields if f.name not in (POSITION_FIELD, *OWN_COLUMNS)]
        salt = self.source.hash_salt.get_secret_value() if self.source.hash_salt else None
        plan = layout(reader.column_types(ref), columns, key, ref.hash, salt)
        snapshot_id = table.current_snapshot().snapshot_id

        def iceberg_rows(columns: list[str]) -> pa.RecordBatchReader:
            return table.scan(
                row_filter=live_rows(schema), selected_fields=tuple(columns), snapshot_id=snapshot_id
            ).to_arrow_batch_reader()

        excused = {_key_of(raw, key) for raw in window.touched}
        differing = compare_rows(reader, ref, plan, iceberg_rows, excused, self.key_limit or 0)
        compared.differing = [str(d) for d in differing]
        compared.left_out = plan.left_out


def _key_of(raw: bytes, key: list[str]) -> str:
    """The key text of a Kafka key (a JSON envelope holding the key columns)."""
    payload = orjson.loads(split_envelope(raw)[1])
    return key_text([payload.get(name) for name in key])


def reconcile_exactly(
    config: PipelineConfig,
    catalog: Catalog,
    source: PostgresSource,
    refs: list[TableRef],
    wait_seconds: float,
    key_limit: int | None = None,
) -> dict[str, Compared]:
    """Each of *refs* compared exactly (and by row hashes when *key_limit* is given)."""
    return _Exact(config, catalog, source, wait_seconds, key_limit).run(refs)
