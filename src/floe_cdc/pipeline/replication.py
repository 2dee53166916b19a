"""Replication's long-lived parts and its steps: checkpoints, decoding, merging a table's changes.

``replication_stream`` drives them as Kafka delivers; replays of quarantined events reuse them.
Each table's commit carries its own Kafka offsets, so tables advance independently and a
failure in one never rewinds another. Events that cannot be applied go to the quarantine table
before the table's commit, so a crash in between loses nothing (recording them again is
idempotent).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.table import Table

from floe_cdc.capture.consumer import ChangeConsumer
from floe_cdc.capture.envelope import KafkaRecord, TopicDecoder, canonical_key, quarantine_record
from floe_cdc.capture.mongodb.decoder import DocumentDecoder
from floe_cdc.capture.mongodb.shape import KEY_COLUMN
from floe_cdc.capture.source_catalog import column_ids
from floe_cdc.core.changes import ChangeBatch, Quarantined, with_current_names
from floe_cdc.core.config import MongoSource, PipelineConfig, PostgresSource, Source, TableRef, TargetRef
from floe_cdc.core.errors import SchemaMappingError
from floe_cdc.lake import quarantine
from floe_cdc.lake.append import append_rows
from floe_cdc.lake.catalog import AWAY, away_error, load_table, open_catalog, reading
from floe_cdc.lake.checkpoint import Checkpoint, read_checkpoint
from floe_cdc.lake.history import PARTITION_BY as HISTORY_PARTITION_BY
from floe_cdc.lake.history import SOURCE_POSITION, history_batch, history_name
from floe_cdc.lake.key_index import KeyIndex
from floe_cdc.lake.key_index_store import IndexStore
from floe_cdc.lake.layout import evolve_layout
from floe_cdc.lake.lookup import StoredTable
from floe_cdc.lake.maintenance import expire_snapshots
from floe_cdc.lake.merge import Compaction, ConcurrentWriteError, MergeResult, merge_batch
from floe_cdc.lake.schema import POSITION_FIELD, column_history, create_table, key_names
from floe_cdc.lake.soft_deletes import soften
from floe_cdc.pipeline.lineage import Lineage
from floe_cdc.pipeline.snapshot_completion import Completion

log = logging.getLogger("floe.replication")

# Key indexes by catalog and namespace, then by table, for the life of the process: one-shot
# runs in one process (a worker's, a test's) each make a new Replicator, and rebuilding a large
# table's index every run would cost what merge-on-read saves. Each merge checks that an
# index describes the table's current snapshot, and rebuilds it otherwise (another writer, a
# maintenance rewrite), so a kept index is never trusted blindly.
_KEY_INDEXES: dict[tuple[str, ...], dict[str, KeyIndex]] = {}


@dataclass(frozen=True)
class Target:
    """A replicated table: where its changes come from and where they go."""

    source: Source
    table: TargetRef

    @property
    def name(self) -> str:
        return self.table.target_name

    @property
    def topic(self) -> str:
        return self.source.topic_for(self.table)


@dataclass
class TableChanges:
    """One table's change events of a cycle: the records as read and their decoded batch.

    The records travel with the batch because merging needs them again: to quarantine them all
    under the ``quarantine`` policy, to supersede quarantined entries, and to decode them again
    when a column turns out to have been renamed.
    """

    records: list[KafkaRecord]
    batch: ChangeBatch

    @property
    def table(self) -> str:
        return self.batch.table


class Replicator:
    """Holds the long-lived parts of replication (catalog, consumer, schema caches)."""

    def __init__(
        self,
        config: PipelineConfig,
        tables: list[str] | None = None,
        column_lookup: Callable[[PostgresSource, TableRef], dict[str, int]] = column_ids,
    ) -> None:
        """*column_lookup* reads a source table's column ids (its catalog, by default)."""
        self.config = config
        self.column_lookup = column_lookup
        self.targets = {t.target_name: Target(s, t) for s, t in config.tables(tables)}
        self.catalog = open_catalog(config.iceberg)
        self._consumer: ChangeConsumer | None = None
        self.decoders = {target.topic: self._decoder(target) for target in self.targets.values()}
        self._quarantine: Table | None = None
        # Each table as this replicator last loaded or committed it (a commit updates the object):
        # merging on it spares a catalog load per commit. Safe because every Floe commit asserts
        # the snapshot it was planned on: if another writer committed since, the commit fails.
        self._tables: dict[str, Table] = {}
        self._laid_out: set[str] = set()  # tables whose layout this run has checked
        self._pending: tuple[int | None, pa.Table] | None = None  # by the quarantine table's snapshot
        where = (
            config.iceberg.namespace,
            *sorted(f"{k}={v}" for k, v in config.iceberg.catalog_properties().items()),
        )
        self.indexes = _KEY_INDEXES.setdefault(where, {})
        self._merged_at: dict[str, float] = {}  # each table's last merge, for the index budget
        self.index_store = IndexStore(config.replicate.index_dir, config.replicate.index_save_rows)
        self.compaction = Compaction.of(config.replicate)
        self.lineage = Lineage.of(config)

    def _decoder(self, target: Target) -> TopicDecoder | DocumentDecoder:
        source = target.source
        if isinstance(source, MongoSource):
            return DocumentDecoder(
                target.name, source.name, source.database, target.table, lambda: self._stored(target.name)
            )
        return TopicDecoder(target.name, source.name, source.source_table(target.table))

    @property
    def consumer(self) -> ChangeConsumer:
        if self._consumer is None:
            self._consumer = ChangeConsumer(self.config.kafka)
        return self._consumer

    def close(self) -> None:
        """Save the key indexes that changed, so that the next run does not build them."""
        try:
            self.save_indexes(wait=True)
        finally:
            self.index_store.close()
            if self._consumer is not None:
                self._consumer.close()

    def prefetch_indexes(self) -> None:
        """Start loading the saved key indexes of the tables this replicator has loaded and holds
        no index of, while the stream reads its first changes."""
        for name, table in self._tables.items():
            key = key_names(table.schema())
            if name in self.targets and name not in self.indexes and key:
                self.index_store.prefetch(name, table, key, POSITION_FIELD)

    def save_indexes(self, wait: bool = False) -> None:
        """Save the big tables' key indexes that changed since their last save (on a thread of
        their own unless *wait*): a new run then reads only what was committed after."""
        tables = {name: table for name, table in self._tables.items() if name in self.targets}
        self.index_store.save(self.indexes, tables, wait)

    def __enter__(self) -> Replicator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def quarantine_table(self) -> Table:
        if self._quarantine is None:
            self._quarantine = quarantine.open_quarantine(self.catalog, self.config.iceberg)
        return self._quarantine

    def _stored(self, name: str) -> StoredTable | None:
        table = self.load(name)
        return StoredTable(table, KEY_COLUMN) if table is not None else None

    def load(self, name: str) -> Table | None:
        """The table as the catalog has it now (None before its first commit)."""
        table = load_table(self.catalog, self.config.iceberg.namespace, name)
        if table is not None:
            self._tables[name] = table
        return table

    def table(self, name: str) -> Table | None:
        """The table as this replicator last loaded or committed it."""
        return self._tables.get(name) or self.load(name)

    def checkpoints(self) -> dict[str, Checkpoint]:
        """Each table's checkpoint, loaded afresh; the quarantine table is loaded again when next
        used, so that entries another process resolved are seen."""
        found = {}
        for name in self.targets:
            with reading(f"{self.config.iceberg.namespace}.{name}"):
                found[name] = read_checkpoint(self.load(name))
        self._quarantine = None
        return found

    def complete(
        self, changes: dict[str, TableChanges], checkpoint: Checkpoint, completion: Completion
    ) -> None:
        """Let the table's batch carry *completion* once the table holds the whole scan; a table
        without changes this cycle gets an empty batch for it."""
        target = self.targets[completion.table]
        current = changes.get(target.name)
        offsets = dict(checkpoint.offsets.get(target.topic, {}))
        if current is not None:
            offsets.update(current.batch.offsets.get(target.topic, {}))
        if not completion.reached(offsets):
            return
        if current is None:
            table = self.load(target.name)
            if table is None:
                return
            key = key_names(table.schema())
            source_table = target.source.source_table(target.table)
            batch = ChangeBatch.empty(target.name, target.source.name, source_table, key)
            current = changes[target.name] = TableChanges([], batch)
        current.batch.snapshot_completed = completion.floor
        log.info(
            "re-snapshot of %s complete (%s rows scanned): stored rows positioned below %s that were not "
            "read again go",
            target.name,
            completion.scan.rows,
            completion.floor,
        )

    def decode_table(
        self, name: str, records: list[KafkaRecord], properties: dict[str, str] | None = None
    ) -> ChangeBatch:
        """Decode *records* of one table, taking columns renamed at the source by their new name
        (from the table's *properties*, loaded when not given)."""
        decoder = self.decoders[self.targets[name].topic]
        if isinstance(decoder, TopicDecoder):
            if properties is None:
                table = self.load(name)
                properties = dict(table.properties) if table is not None else {}
            decoder.column_history = column_history(properties)
        return decoder.decode(records)

    def identify_columns(
        self, batch: ChangeBatch, table: Table | None, records: list[KafkaRecord]
    ) -> ChangeBatch:
        """The batch with its columns' source identities; decoded again if a column was renamed.

        The source is asked only when the batch names a column that Iceberg or the recorded
        identities do not know yet (a new table, a new or a renamed column).
        """
        target = self.targets[batch.table]
        decoder = self.decoders[target.topic]
        if not isinstance(target.source, PostgresSource) or not isinstance(decoder, TopicDecoder):
            return batch
        history = column_history(table.properties if table is not None else {})
        names = {column.name for column in batch.columns}
        known = set(table.schema().column_names) if table is not None else set()
        if names - (known & {seen[-1] for seen in history.values()}):
            current = self.column_lookup(target.source, target.table)
            history = with_current_names(history, current, sorted(names))
            if history != decoder.column_history:
                decoder.column_history = history
                batch = decoder.decode(records)
        batch.column_history = history
        return batch

    def expire_snapshots(self, name: str) -> None:
        """Expire and thin the snapshots of a table this replicator commits to, by the ``maintain``
        settings: at a commit a second, its metadata (which every commit writes and parses)
        would otherwise grow by 3,600 snapshots an hour until ``floe maintain`` runs. A race with
        another writer or a store away only postpones it. The table's history table too."""
        if name in self.targets and self.targets[name].table.history:
            self.expire_snapshots(history_name(name))
        table = self._tables.get(name)
        if table is None:
            return
        try:
            expired = expire_snapshots(table, self.config.maintain)
        except (CommitFailedException, ValidationException, *AWAY) as exc:
            self._tables.pop(name, None)
            log.warning("snapshots of %s not expired this time: %s", name, exc)
            return
        if expired:
            log.info("expired %d snapshots of %s", expired, name)

    def prepare(self, changes: TableChanges, table: Table | None = None) -> tuple[ChangeBatch, Table]:
        """The batch with its columns identified, and its Iceberg table (*table*, else loaded, and
        created the first time). The first step of merging, for a stream and for a replay alike."""
        table = table or self.load(changes.table)
        batch = self.identify_columns(changes.batch, table, changes.records)
        if self.targets[batch.table].table.deletes == "soft":
            batch = soften(batch)
        if table is None:
            options = self.config.table_options(batch.table)
            table = create_table(self.catalog, self.config.iceberg.namespace, batch, **options)
            self._tables[batch.table] = table
            self._laid_out.add(batch.table)
            log.info("created Iceberg table %s.%s", self.config.iceberg.namespace, batch.table)
        elif batch.table not in self._laid_out:
            self._laid_out.add(batch.table)
            self._evolve_layout(batch.table, table)
        return batch, table

    def _evolve_layout(self, name: str, table: Table) -> None:
        """Give *table* the partition spec and sort order its configuration sets, once per run:
        a changed ``partition_by`` or ``sort_by`` is Iceberg partition (or sort order) evolution.
        A setting left unset leaves the table as it is, whoever changed it."""
        options = self.config.table_options(name)
        qualified = f"{self.config.iceberg.namespace}.{name}"
        changes = evolve_layout(table, options["partition_by"], options["sort_by"], qualified)
        for change in changes:
            log.info("table %s.%s: %s", self.config.iceberg.namespace, name, change)

    def merge(self, changes: TableChanges, checkpoint: Checkpoint) -> MergeResult:
        """Quarantine what cannot be applied, then merge the rest in one commit, on the table as
        this replicator last committed it.

        A commit that loses to a writer that does not replicate (``floe maintain``'s rewrites, a
        user's schema change: the table's offsets are still *checkpoint*'s) is merged again at
        once on the new snapshot; one that loses to another replicator fails, and so does a
        catalog or object store that goes away (transient: the stream applies the batch again).
        """
        name = changes.table
        try:
            try:
                return self._merge(changes, checkpoint, self.table(name))
            except ConcurrentWriteError:
                table = self.load(name)
                if read_checkpoint(table).snapshot_id != checkpoint.snapshot_id:
                    raise
                log.info("table %s: another writer committed first; merging again on its snapshot", name)
                return self._merge(changes, checkpoint, table)
        except Exception as exc:
            self._tables.pop(name, None)  # whatever failed, the next merge loads the table afresh
            if isinstance(exc, AWAY):
                raise away_error(name, exc) from exc
            raise

    def _bound_index_memory(self, current: str) -> None:
        """Keep the key indexes within ``replicate.index_memory_mb``: let go of the indexes of the
        tables merged longest ago (saved first, so that loading them again costs a read and a
        catch-up, not a build), then, if *current*'s alone is too big, memory-map its long runs."""
        budget = self.config.replicate.index_memory_mb * 2**20
        used = sum(index.memory_bytes for index in self.indexes.values())
        for name in sorted(self.indexes, key=lambda n: self._merged_at.get(n, 0.0)):
            if used <= budget:
                return
            if name == current or name not in self._tables:
                continue
            self.index_store.save({name: self.indexes[name]}, {name: self._tables[name]}, wait=True)
            used -= self.indexes.pop(name).memory_bytes
            log.info("key index of %s let go: the key indexes take more than replicate.index_memory_mb", name)
        index = self.indexes.get(current)
        if used > budget and index is not None:
            moved = index.spill(self.index_store.directory / "mapped")
            if moved:
                log.info(
                    "key index of %s: %.1f MB of sorted runs memory-mapped from %s "
                    "(replicate.index_memory_mb)",
                    current,
                    moved / 2**20,
                    self.index_store.directory,
                )

    def _merge(self, changes: TableChanges, checkpoint: Checkpoint, table: Table | None) -> MergeResult:
        self._merged_at[changes.table] = time.monotonic()
        batch, table = self.prepare(changes, table)
        self.set_aside(batch.quarantined)
        if batch.table not in self.indexes and table.current_snapshot() is not None:
            index = self.index_store.restore(batch.table, table, batch.key, POSITION_FIELD)
            if index is not None:
                self.indexes[batch.table] = index
        if self.targets[batch.table].table.history:
            self._record_history(batch)  # first: a stop between the two commits loses nothing
        try:
            result = merge_batch(table, batch, checkpoint, self.indexes, self.compaction)
        except SchemaMappingError as exc:
            if self.targets[batch.table].table.on_incompatible_change != "quarantine":
                raise
            self.set_aside([quarantine_record(batch.table, r, str(exc)) for r in changes.records])
            result = merge_batch(table, batch.without_rows(), checkpoint, self.indexes, self.compaction)
            result.quarantined = len(changes.records)
        self._bound_index_memory(batch.table)
        self._supersede(batch, changes.records)
        log.info(
            "merged %s: %d events -> +%d ~%d -%d rows, %d replayed, %d quarantined%s (snapshot %s)",
            batch.table,
            result.events,
            result.inserted,
            result.updated,
            result.deleted,
            result.replayed,
            result.quarantined,
            ", truncated" if result.truncated else "",
            result.snapshot_id,
        )
        for change in result.schema_changes:
            log.info("schema of %s: %s", batch.table, change)
        if self.lineage is not None:
            self.lineage.merged(table, batch, result)
        return result

    def _record_history(self, batch: ChangeBatch) -> None:
        """Append *batch*'s changes that ``<table>_history`` does not hold yet, with its offsets."""
        name = history_name(batch.table)
        table = self._tables.get(name) or self.load(name)
        stored = read_checkpoint(table) if table is not None else Checkpoint()
        rows = history_batch(batch, stored)
        if rows is None:
            return
        if table is None:
            options = self.config.table_options(batch.table)
            table = create_table(
                self.catalog,
                self.config.iceberg.namespace,
                rows,
                options["format_version"],
                partition_by=HISTORY_PARTITION_BY,
                sort_by=[SOURCE_POSITION],
                append_only=True,
            )
            log.info("created Iceberg table %s.%s", self.config.iceberg.namespace, name)
        append_rows(table, rows, stored.merged_with(rows.offsets, rows.position, {}, rows.stamps))
        self._tables[name] = table
        log.info("history of %s: %d changes appended to %s", batch.table, rows.size, name)

    def set_aside(self, items: list[Quarantined]) -> None:
        if not items:
            return
        key_texts = {item.key: canonical_key(item.key) for item in items}
        added = quarantine.record(self.quarantine_table, items, key_texts)
        for item in items[:20]:
            log.error(
                "quarantined an event of table %s (topic %s, partition %d, offset %d): %s. "
                "Fix the cause, then run 'floe quarantine replay --table %s'",
                item.table,
                item.topic,
                item.partition,
                item.offset,
                item.error,
                item.table,
            )
        if len(items) > 20:
            log.error("... and %d more quarantined events; see 'floe quarantine list'", len(items) - 20)
        log.info("%d new entries in the quarantine table", added)

    def _supersede(self, batch: ChangeBatch, records: list[KafkaRecord]) -> None:
        """Entries of this table whose key has since been changed by a merged event are obsolete."""
        pending = self._pending_entries()
        pending = pending.filter(pc.equal(pending["table"], batch.table))
        if pending.num_rows == 0:
            return
        poisoned = {(q.topic, q.partition, q.offset) for q in batch.quarantined}
        latest: dict[tuple[str, int, str], int] = {}
        for record in records:
            text = canonical_key(record.key)
            if text and (record.topic, record.partition, record.offset) not in poisoned:
                latest[(record.topic, record.partition, text)] = record.offset
        count = quarantine.supersede(self.quarantine_table, pending, latest)
        if count:
            log.info("%d quarantined events of %s were superseded by later changes", count, batch.table)

    def _pending_entries(self) -> pa.Table:
        """The quarantine table's pending entries, read again only when its snapshot changes: a
        stream merges far more often than anything is quarantined or replayed, and reloads the
        quarantine table every ``replicate.refresh_seconds``."""
        table = self.quarantine_table
        snapshot = table.current_snapshot()
        seen = snapshot.snapshot_id if snapshot else None
        if self._pending is None or self._pending[0] != seen:
            self._pending = (seen, quarantine.entries(table))
        return self._pending[1]
