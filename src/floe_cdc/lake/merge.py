"""Apply a ChangeBatch to an Iceberg table as one merge-on-read commit.

pyiceberg's ``Table.upsert`` binds an ``In(key, [...])`` filter (tens of microseconds per key),
compares whole rows and rewrites every data file holding a changed key; its cost grows with the
table. This merge instead:
1. reduces the batch to the last change per key by source position (``lake.changeset``),
2. finds the stored rows the changes supersede through the table's key index (``key_index``):
   a stored row whose source position is newer than the incoming change is kept, so replays
   never regress a row,
3. writes the new row versions as data files and one position delete file for the rows they
   supersede (on a v3 table, a deletion vector per data file), and commits them, the schema
   changes and the checkpoint properties in a single snapshot (a row delta); worn data files are
   rewritten in passing within a budget.
A truncate, a completed re-snapshot, a new column with a default or a renamed key column take
the copy-on-write path once instead: the files that can hold a changed key (by manifest
statistics) are matched with Arrow hash joins and rewritten. See docs/merge-on-read.md.
pyiceberg's private parts it needs (writing data files, checking rows against the schema, the
row delta) come from ``pyiceberg_adapter``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, GreaterThanOrEqual, LessThanOrEqual
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table

from floe_cdc.core.changes import (
    DELETE,
    OP_COLUMN,
    PARTITION_COLUMN,
    POS_COLUMN,
    UNAVAILABLE_COLUMN,
    UPSERT_OPS,
    ChangeBatch,
)
from floe_cdc.core.config import ReplicateConfig
from floe_cdc.core.errors import FloeError, Transient
from floe_cdc.lake.catalog import AWAY, away_error
from floe_cdc.lake.changeset import match_rows, position_scalar, reduce
from floe_cdc.lake.checkpoint import Checkpoint, read_checkpoint
from floe_cdc.lake.deletion_vectors import as_vector, is_vector, read_vector, union, write_vectors
from floe_cdc.lake.key_index import KeyIndex, applied_deletes
from floe_cdc.lake.layout import sort_rows
from floe_cdc.lake.pyiceberg_adapter import (
    V3,
    RowDelta,
    check_schema_compatible,
    live_files,
    side_by_side,
    transaction,
    write_position_deletes,
    write_rows,
)
from floe_cdc.lake.resnapshot_mark import RESNAPSHOT_PROPERTY
from floe_cdc.lake.schema import POSITION_FIELD, Evolution, evolve

log = logging.getLogger("floe.merge")

# Iceberg's table property for the scope of a position delete file: ``partition`` (Floe's
# default: one file per partition per commit) or ``file`` (one per data file per commit). See
# docs/merge-on-read.md for what each costs readers.
DELETE_GRANULARITY = "write.delete.granularity"


class ConcurrentWriteError(FloeError, Transient):
    """Another writer committed to the table after this batch's offsets were read."""


class VectorsRefused(FloeError):
    """The object store refuses the Puffin file of a v3 table's deletion vectors."""


@dataclass(frozen=True)
class Compaction:
    """Data files a merge rewrites in passing, in its own commit: those whose deleted share
    reaches *delete_ratio* once the merge's deletes land, most worn first, while their live rows
    stay within *rows_per_change* times the batch's events. Readers then never face a pile of
    dead rows, and the merge's cost still follows its change; files too large for that budget
    wait for ``floe maintain``."""

    delete_ratio: float
    rows_per_change: float

    @classmethod
    def of(cls, settings: ReplicateConfig) -> Compaction | None:
        """The compaction the replicate settings ask for (None when they turn it off)."""
        if not settings.compact_rows_per_change:
            return None
        return cls(settings.compact_delete_ratio, settings.compact_rows_per_change)


@dataclass
class MergeResult:
    table: str
    events: int
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    replayed: int = 0
    quarantined: int = 0
    truncated: bool = False
    files_rewritten: int = 0
    files_added: int = 0
    delete_files_added: int = 0
    schema_changes: list[str] = field(default_factory=list)
    snapshot_id: int | None = None

    def then(self, later: MergeResult) -> MergeResult:
        """This merge and a *later* one of the same table, told as one (a run that commits often)."""
        counts = ("events", "inserted", "updated", "deleted", "replayed", "quarantined")
        files = ("files_rewritten", "files_added", "delete_files_added")
        return MergeResult(
            self.table,
            **{name: getattr(self, name) + getattr(later, name) for name in counts + files},
            truncated=self.truncated or later.truncated,
            schema_changes=self.schema_changes + later.schema_changes,
            snapshot_id=later.snapshot_id,
        )


def conform(data: pa.Table, target: pa.Schema) -> pa.Table:
    """Columns in the table's order and types; columns the data lacks become nulls."""
    arrays = []
    for target_field in target:
        if target_field.name in data.column_names:
            arrays.append(data[target_field.name].cast(target_field.type))
        else:
            arrays.append(pa.nulls(data.num_rows, target_field.type))
    return pa.Table.from_arrays(arrays, schema=target)


def _prune_filter(keys: pa.Table, first: str) -> BooleanExpression:
    """A key-range filter on the first key column, for file pruning by manifest statistics."""
    if isinstance(keys.schema.field(first).type, pa.BaseExtensionType) or keys.num_rows == 0:
        return AlwaysTrue()
    bounds = pc.min_max(keys[first])
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is None or high is None:
        return AlwaysTrue()
    return And(GreaterThanOrEqual(first, low), LessThanOrEqual(first, high))


def _stream(batch: ChangeBatch) -> str | None:
    """The one stream a table's batch comes from; None for a replay of quarantined events."""
    return next(iter(batch.offsets)) if len(batch.offsets) == 1 else None


def _watermarks(batch: ChangeBatch) -> dict[str, dict[int, int]]:
    """Highest source position per partition of the batch's stream."""
    stream = _stream(batch)
    if batch.data.num_rows == 0 or stream is None:
        return {}
    grouped = (
        batch.data.select([PARTITION_COLUMN, POS_COLUMN])
        .group_by(PARTITION_COLUMN)
        .aggregate([(POS_COLUMN, "max")])
    )
    return {stream: {p: int(m) for p, m in zip(*grouped.to_pydict().values(), strict=True)}}


def merge_batch(
    table: Table,
    batch: ChangeBatch,
    checkpoint: Checkpoint,
    indexes: dict[str, KeyIndex] | None = None,
    compaction: Compaction | None = None,
) -> MergeResult:
    """Merge *batch* into *table* in one commit that also records the advanced *checkpoint*.

    *checkpoint* is the one the batch was consumed from. If the table has moved on since, the
    batch is stale and is refused; the table is created with commit retries off, so that a commit
    racing another writer fails instead of being re-applied on top of it.

    *indexes* keeps each table's key index between merges (a long-running replicator); an index
    that does not describe the table's current snapshot is rebuilt. *compaction* lets the merge
    rewrite worn data files in passing.
    """
    current = read_checkpoint(table)
    if current.snapshot_id != checkpoint.snapshot_id:
        raise ConcurrentWriteError(
            f"table {batch.table} was committed to by another writer (snapshot {current.snapshot_id}) after "
            f"this batch was read from snapshot {checkpoint.snapshot_id}; nothing was written, the next "
            "cycle reads from the new offsets"
        )
    with committing(batch.table, "nothing was written, the next cycle reads from the new offsets"):
        return _Merge(table, batch, checkpoint, _current_index(table, batch, indexes), compaction).run()


@contextlib.contextmanager
def committing(table: str, outcome: str) -> Iterator[None]:
    """A commit to *table* that loses a race with another writer raises ConcurrentWriteError,
    saying what became of the write (*outcome*); a catalog or object store that goes away, its
    error naming the table."""
    try:
        yield
    except (CommitFailedException, ValidationException) as exc:
        raise ConcurrentWriteError(
            f"table {table}: commit lost a race with another writer ({exc}); {outcome}"
        ) from exc
    except AWAY as exc:
        raise away_error(table, exc) from exc


def _current_index(table: Table, batch: ChangeBatch, indexes: dict[str, KeyIndex] | None) -> KeyIndex | None:
    """The table's key index from *indexes*, caught up to the current snapshot if another writer
    committed since (``floe maintain``'s rewrites, a user's delete), else built (and kept there).
    None when a key column is renamed by this very batch: it is not in the table yet, and the
    merge reads the files this once."""
    indexes = {} if indexes is None else indexes
    index = indexes.pop(batch.table, None)  # back in once it describes the current snapshot
    if not set(table.schema().column_names).issuperset(batch.key):
        return None
    known = index is not None and index.snapshot_id is not None and table.snapshot_by_id(index.snapshot_id)
    if index is not None and index.key == batch.key and known:
        current = table.current_snapshot()
        if index.snapshot_id != (current and current.snapshot_id):
            index.catch_up(table, applied_deletes(live_files(table.metadata, table.io, index.snapshot_id)))
    else:
        began = time.monotonic()
        index = KeyIndex.build(table, batch.key, POSITION_FIELD)
        log.info("key index of %s built: %d rows in %.2fs", batch.table, len(index), time.monotonic() - began)
    indexes[batch.table] = index
    return index


@dataclass
class _Matches:
    """What matching the incoming changes against stored rows found.

    ``rejected``: incoming rows older than the stored row of their key. ``incoming`` and
    ``existing``: aligned, the incoming rows that replace a stored row, and those stored rows.
    """

    rejected: list[int] = field(default_factory=list)
    incoming: list[pa.ChunkedArray] = field(default_factory=list)
    existing: list[pa.Table] = field(default_factory=list)


@dataclass
class _PositionDeletes:
    """The stored rows a merge supersedes: their index entries, and their positions by file."""

    entries: np.ndarray
    by_file: dict[str, list[int]] = field(default_factory=dict)


class _Merge:
    """One merge: the reduced changes matched against the table's files."""

    def __init__(
        self,
        table: Table,
        batch: ChangeBatch,
        checkpoint: Checkpoint,
        index: KeyIndex | None,
        compaction: Compaction | None,
    ) -> None:
        self.table, self.batch, self.checkpoint, self.index = table, batch, checkpoint, index
        self.compaction = compaction
        self.reduced = reduce(batch.data, batch.key, checkpoint.watermarks.get(_stream(batch), {}))
        self.result = MergeResult(
            table=batch.table,
            events=batch.size,
            replayed=self.reduced.replayed,
            quarantined=len(batch.quarantined),
            truncated=self.reduced.truncated_at is not None,
        )
        # Stored rows positioned below the floor are gone at the source (truncated, or missing
        # from a completed re-snapshot). A completion with floor 0 removes only the mark.
        floors = [p for p in (self.reduced.truncated_at, batch.snapshot_completed) if p]
        self.floor = max(floors) if floors else None

    def run(self) -> MergeResult:
        latest = self.reduced.latest
        if self.batch.snapshot_completed is not None:
            latest = latest.filter(
                pc.greater_equal(latest[POS_COLUMN], position_scalar(self.batch.snapshot_completed))
            )
        with transaction(self.table) as tx:
            resnapshot = RESNAPSHOT_PROPERTY in self.table.properties
            batch = self.batch
            evolution = evolve(tx, batch.table, batch.columns, batch.column_history, resnapshot)
            if resnapshot and batch.snapshot_completed is not None:
                tx.remove_properties(RESNAPSHOT_PROPERTY)
            self.result.schema_changes = evolution.changes
            metadata = tx.table_metadata
            target = metadata.schema().as_arrow()
            incoming = conform(latest.append_column(POSITION_FIELD, latest[POS_COLUMN]), target)
            deletes = None
            if self.floor is not None or evolution.defaults or self.index is None:
                # Every stored row is read: rows below the floor go, a new default fills in.
                removed, kept, matches = self._match_files(metadata, target, incoming, evolution)
            else:
                matches, deletes = self._locate(metadata, target, latest, incoming)
                removed, kept = self._compact_in_passing(metadata, target, deletes)
            upserts = self._accepted_upserts(latest, incoming, matches)
            self.result.replayed += len(matches.rejected)
            new_rows = pa.concat_tables([*kept, upserts]) if kept else upserts
            new_rows = sort_rows(new_rows, metadata.sort_order(), metadata.schema())
            check_schema_compatible(metadata, new_rows.schema)
            added = self._commit(tx, metadata, removed, new_rows, deletes)
        snapshot = self.table.current_snapshot()
        self.result.snapshot_id = snapshot.snapshot_id if snapshot else None
        if deletes is not None and all(rows is not None for _, rows in added):
            # Each new file's rows, in order: their positions are known. Otherwise the index
            # catches up from the files at the next merge.
            gone = [data_file.file_path for data_file in removed]
            self.index.advance(deletes.entries, added, self.result.snapshot_id, gone)
        return self.result

    def _locate(
        self, metadata: Any, target: pa.Schema, latest: pa.Table, incoming: pa.Table
    ) -> tuple[_Matches, _PositionDeletes]:
        """Match the incoming keys through the key index: no data file is read, except for the
        stored rows of updates that lack a column (unchanged TOASTed values)."""
        located = self.index.locate(incoming)
        incoming_pos = incoming[POSITION_FIELD].take(pa.array(located.incoming, pa.int64()))
        # A stored row is never newer than its file's newest row: only the rows of files with a
        # row newer than their change (a replay, a re-snapshot's rows) are read to compare.
        unsure = np.nonzero(
            pc.greater(pc.fill_null(located.newest, position_scalar(0)), incoming_pos).to_numpy(
                zero_copy_only=False
            )
        )[0]
        stale = np.zeros(len(located.incoming), bool)
        if len(unsure):
            files = [located.file[i] for i in unsure]
            stored = self._stored_rows(metadata, target, files, located.pos[unsure])[POSITION_FIELD]
            stale[unsure] = pc.greater(
                pc.fill_null(stored, position_scalar(0)), incoming_pos.take(pa.array(unsure))
            ).to_numpy(zero_copy_only=False)
        win = ~stale
        matches = _Matches(rejected=located.incoming[stale].tolist())
        matches.incoming = [pa.chunked_array([pa.array(located.incoming[win], pa.int64())])]
        chosen = np.nonzero(win)[0]
        files = [located.file[i] for i in chosen]
        positions = located.pos[win]
        if any(latest[UNAVAILABLE_COLUMN].to_pylist()):
            matches.existing = [self._stored_rows(metadata, target, files, positions)]
        deletes = _PositionDeletes(located.entry[win])
        for path, position in zip(files, positions.tolist(), strict=True):
            deletes.by_file.setdefault(path, []).append(position)
        return matches, deletes

    def _compact_in_passing(
        self, metadata: Any, target: pa.Schema, deletes: _PositionDeletes
    ) -> tuple[list[DataFile], list[pa.Table]]:
        """The worn data files this merge removes, and their live rows, which it writes again
        with its own; their entries join the ones the merge deletes from the index."""
        if self.compaction is None:
            return [], []
        budget = int(self.compaction.rows_per_change * self.batch.size)
        worn = self.index.worn_files(deletes.entries, self.compaction.delete_ratio, budget)
        removed, kept = [], []
        for path, entries, positions in worn:
            data_file = self.index.data_files[path]
            removed.append(data_file)
            deletes.by_file.pop(path, None)
            deletes.entries = np.concatenate([deletes.entries, entries])
            if len(positions):
                kept.append(self._rows_at(metadata, target, data_file, positions))
        return removed, kept

    def _stored_rows(
        self, metadata: Any, target: pa.Schema, files: list[str], positions: np.ndarray
    ) -> pa.Table:
        """The stored rows at *files*/*positions*, in that order."""
        order = np.arange(len(files))
        parts, placed = [], []
        for path in dict.fromkeys(files):
            mine = np.array([i for i, f in enumerate(files) if f == path], np.int64)
            parts.append(self._rows_at(metadata, target, self.index.data_files[path], positions[mine]))
            placed.append(order[mine])
        if not parts:
            return target.empty_table()
        return pa.concat_tables(parts).take(pa.array(np.argsort(np.concatenate(placed))))

    def _rows_at(
        self, metadata: Any, target: pa.Schema, data_file: DataFile, positions: np.ndarray
    ) -> pa.Table:
        """The rows of *data_file* at *positions*: the file is read without its delete files, so
        that positions are file positions."""
        rows = ArrowScan(metadata, self.table.io, metadata.schema(), AlwaysTrue()).to_table(
            [FileScanTask(data_file)]
        )
        return conform(rows, target).take(pa.array(positions, pa.int64()))

    def _candidates(self, incoming: pa.Table, full_scan: bool) -> list[Any]:
        if self.table.current_snapshot() is None:
            return []
        if full_scan:
            return list(self.table.scan().plan_files())
        if incoming.num_rows == 0:
            return []
        return list(self.table.scan(row_filter=_prune_filter(incoming, self.batch.key[0])).plan_files())

    def _match_files(
        self, metadata: Any, target: pa.Schema, incoming: pa.Table, evolution: Evolution
    ) -> tuple[list[Any], list[pa.Table], _Matches]:
        """Files to replace, the rows of them to keep, and what the incoming rows matched."""
        key = self.batch.key
        removed, kept = [], []
        matches = _Matches()
        full_scan = self.floor is not None or bool(evolution.defaults)
        for task in self._candidates(incoming, full_scan):
            existing = conform(
                ArrowScan(metadata, self.table.io, metadata.schema(), AlwaysTrue()).to_table([task]), target
            )
            drop = pa.array(np.zeros(existing.num_rows, bool))  # typed: a file may have no live row
            if self.floor is not None:
                below = pc.less(
                    pc.fill_null(existing[POSITION_FIELD], position_scalar(0)), position_scalar(self.floor)
                )
                drop = pc.or_(drop, below)
                self.result.deleted += int(pc.sum(below).as_py() or 0)
            pairs = match_rows(existing, incoming, key, (POSITION_FIELD, POSITION_FIELD))
            if pairs.num_rows:
                existing_pos = pc.fill_null(pairs["__existing_pos"], position_scalar(0))
                stale = pc.greater(existing_pos, pairs["__incoming_pos"])
                matches.rejected += pc.filter(pairs["__incoming"], stale).to_pylist()
                winners = pairs.filter(pc.invert(stale))
                matches.incoming.append(winners["__incoming"])
                matches.existing.append(existing.take(winners["__existing"]))
                hit = pc.is_in(
                    pa.array(range(existing.num_rows), pa.int64()),
                    value_set=winners["__existing"].combine_chunks(),
                )
                if self.floor is not None:  # already counted as deleted by the floor
                    self.result.deleted -= int(pc.sum(pc.and_(hit, drop)).as_py() or 0)
                drop = pc.or_(drop, hit)
            if not pc.any(drop).as_py() and not evolution.defaults:
                continue
            removed.append(task.file)
            survivors = existing.filter(pc.invert(drop))
            for name, default in evolution.defaults.items():
                index = survivors.schema.get_field_index(name)
                filled = pc.fill_null(survivors[name], pa.scalar(default, survivors.schema.field(name).type))
                survivors = survivors.set_column(index, survivors.schema.field(name), filled)
            kept.append(survivors)
        return removed, kept, matches

    def _accepted_upserts(self, latest: pa.Table, incoming: pa.Table, matches: _Matches) -> pa.Table:
        """Incoming upserts that won against the stored rows, with TOASTed columns filled in."""
        indices = pa.array(range(incoming.num_rows), pa.int64())
        accepted = pc.invert(pc.is_in(indices, value_set=pa.array(matches.rejected, pa.int64())))
        winners = pa.chunked_array([c for part in matches.incoming for c in part.chunks], pa.int64())
        replacing = pc.is_in(indices, value_set=winners.combine_chunks())
        is_upsert = pc.is_in(latest[OP_COLUMN], value_set=pa.array(UPSERT_OPS))
        is_delete = pc.equal(latest[OP_COLUMN], DELETE)
        self.result.updated = int(pc.sum(pc.and_(pc.and_(is_upsert, accepted), replacing)).as_py() or 0)
        self.result.inserted = int(
            pc.sum(pc.and_(pc.and_(is_upsert, accepted), pc.invert(replacing))).as_py() or 0
        )
        self.result.deleted += int(pc.sum(pc.and_(pc.and_(is_delete, accepted), replacing)).as_py() or 0)
        incoming = self._fill_unavailable(latest, incoming, winners, matches.existing)
        return incoming.filter(pc.and_(is_upsert, accepted))

    def _fill_unavailable(
        self, latest: pa.Table, incoming: pa.Table, winners: pa.ChunkedArray, existing_parts: list[pa.Table]
    ) -> pa.Table:
        """Columns the source did not send (unchanged TOASTed values) keep the stored value."""
        unavailable = latest[UNAVAILABLE_COLUMN].to_pylist()
        if not any(unavailable):
            return incoming
        stored = pa.concat_tables(existing_parts).to_pylist() if existing_parts else []
        stored_for = dict(zip(winners.to_pylist(), stored, strict=True))
        names = sorted({n for names in unavailable if names for n in names})
        values = {name: incoming[name].to_pylist() for name in names}
        for index, missing in enumerate(unavailable):
            for name in missing or ():
                row = stored_for.get(index)
                if row is None:
                    log.warning(
                        "table %s: no stored value for unchanged column %s of a row; it stays null",
                        self.batch.table,
                        name,
                    )
                    continue
                values[name][index] = row[name]
        for name in names:
            position = incoming.schema.get_field_index(name)
            incoming = incoming.set_column(
                position, incoming.schema.field(name), pa.array(values[name], incoming[name].type)
            )
        return incoming

    def _write_delete_files(
        self, metadata: Any, tx: Any, by_file: dict[str, list[int]]
    ) -> list[tuple[DataFile, list[DataFile]]]:
        """Position delete files for the rows *by_file* removes, one per partition or, by the
        table's ``write.delete.granularity``, per data file; each with the data files it covers."""
        groups: dict[Any, dict[DataFile, list[int]]] = {}
        by_data_file = metadata.properties.get(DELETE_GRANULARITY) == "file"
        for path, positions in by_file.items():
            data_file = self.index.data_files[path]
            group = path if by_data_file else (data_file.spec_id, str(data_file.partition))
            groups.setdefault(group, {})[data_file] = positions
        written = side_by_side(lambda group: write_position_deletes(tx, group), list(groups.values()))
        return [
            (delete_file, list(group)) for group, delete_file in zip(groups.values(), written, strict=True)
        ]

    def _add_vectors(self, delta: RowDelta, metadata: Any, by_file: dict[str, list[int]]) -> int:
        """A v3 table's deletion vectors for the rows *by_file* removes, in one Puffin file: a
        data file that has a vector gets one holding its rows and these, in place of it."""
        if not by_file:
            return 0
        vectors = {task.file.file_path: task.delete_files for task in live_files(metadata, self.table.io)}
        merged = {}
        for path, positions in by_file.items():
            earlier = [d for d in vectors.get(path, ()) if is_vector(d)]
            for vector in earlier:
                delta.remove_delete_file(vector)
            old = [read_vector(self.table.io, vector) for vector in earlier]
            merged[self.index.data_files[path]] = union(as_vector(np.asarray(positions, np.int64)), *old)
        try:
            written = write_vectors(metadata, self.table.io, merged)
        except OSError as exc:
            if "ACCESS_DENIED" not in str(exc):
                raise  # the store went away: transient
            raise VectorsRefused(
                f"table {self.batch.table}: the object store refused the Puffin file of its deletion "
                f"vectors (access denied): an Iceberg v3 table needs a store that takes Puffin files, "
                "and SeaweedFS's table buckets take only .parquet and .avro files; replicate the table "
                "as format_version: 2 (drop it, set format_version: 2 and load it again)"
            ) from exc
        for data_file, vector in written:
            delta.add_position_deletes(vector, [data_file])
        return len(written)

    def _commit(
        self, tx: Any, metadata: Any, removed: list[Any], new_rows: pa.Table, deletes: _PositionDeletes | None
    ) -> list[tuple[DataFile, pa.Table | None]]:
        batch = self.batch
        checkpoint = self.checkpoint.merged_with(
            batch.offsets, batch.position, _watermarks(batch), batch.stamps
        )
        properties = {**checkpoint.properties(), **batch.summary}
        properties["floe.events"] = str(batch.size)
        v2 = deletes if deletes is not None and metadata.format_version < V3 else None
        with ThreadPoolExecutor(max_workers=1) as beside:
            # A v2 table's delete files are written while its data files are: on an object store
            # each file is a request, and a partitioned merge writes two files per partition.
            pending = beside.submit(self._write_delete_files, metadata, tx, v2.by_file) if v2 else None
            written = write_rows(metadata, self.table.io, new_rows)
        added = [data_file for data_file, _ in written]
        delta = RowDelta(tx, properties)  # a fast append when it removes nothing
        for data_file in removed:
            delta.delete_data_file(data_file)
        if pending is not None:
            delete_files = pending.result()
            for delete_file, covered in delete_files:
                delta.add_position_deletes(delete_file, covered)
            self.result.delete_files_added = len(delete_files)
        elif deletes is not None:
            self.result.delete_files_added = self._add_vectors(delta, metadata, deletes.by_file)
        for data_file in added:
            delta.append_data_file(data_file)
        delta.commit()
        self.result.files_rewritten, self.result.files_added = len(removed), len(added)
        return written
