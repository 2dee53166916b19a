"""Apply a ChangeBatch to an Iceberg table as one copy-on-write commit.

pyiceberg's ``Table.upsert`` binds an ``In(key, [...])`` filter (tens of microseconds per key)
and compares whole rows; its cost grows with the table. This merge instead:
1. keeps the last change per key (by order in the batch); a truncate drops everything before it,
2. plans only the data files whose key range can hold a changed key (manifest statistics),
3. removes the changed keys from those files with an Arrow hash lookup and rewrites them,
4. writes the new row versions, and commits deleted + added files, the schema changes and the
   checkpoint properties in a single snapshot.
The private pyiceberg helpers used here (``_dataframe_to_data_files``,
``_check_pyarrow_schema_compatible``) are the ones ``Table.append`` itself uses.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue, And, BooleanExpression, GreaterThanOrEqual, LessThanOrEqual
from pyiceberg.io.pyarrow import ArrowScan, _check_pyarrow_schema_compatible, _dataframe_to_data_files
from pyiceberg.table import Table

from floe.changes import DELETE, OP_COLUMN, SEQ_COLUMN, TRUNCATE, UPSERT_OPS, ChangeBatch
from floe.errors import FloeError, Transient
from iceberg.checkpoint import Checkpoint, read_checkpoint
from iceberg.schema import evolve


class ConcurrentWriteError(FloeError, Transient):
    """Another writer committed to the table after this batch's offsets were read."""


@dataclass
class MergeResult:
    table: str
    events: int
    inserted: int = 0
    updated: int = 0
    deleted: int = 0
    truncated: bool = False
    files_rewritten: int = 0
    files_added: int = 0
    schema_changes: list[str] = field(default_factory=list)
    snapshot_id: int | None = None


def _storage(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Extension arrays (uuid) have no compute kernels; compare their storage instead."""
    if isinstance(column.type, pa.BaseExtensionType):
        if isinstance(column, pa.ChunkedArray):
            return pa.chunked_array([c.storage for c in column.chunks], type=column.type.storage_type)
        return column.storage
    return column


def _keys_only(table: pa.Table, key: list[str]) -> pa.Table:
    return pa.table({name: _storage(table[name]) for name in key})


def last_change_per_key(data: pa.Table, key: list[str]) -> tuple[pa.Table, bool]:
    """Rows after the last truncate, reduced to the last change per key; and whether a truncate
    was seen (then the table's existing rows are all gone)."""
    truncates = pc.equal(data[OP_COLUMN], TRUNCATE)
    truncated = pc.any(truncates).as_py() or False
    if truncated:
        last = pc.max(pc.filter(data[SEQ_COLUMN], truncates)).as_py()
        data = data.filter(pc.greater(data[SEQ_COLUMN], last))
    if data.num_rows == 0:
        return data, truncated
    keyed = _keys_only(data, key).append_column(SEQ_COLUMN, data[SEQ_COLUMN])
    latest = keyed.group_by(key, use_threads=False).aggregate([(SEQ_COLUMN, "max")])
    return data.filter(pc.is_in(data[SEQ_COLUMN], value_set=latest[f"{SEQ_COLUMN}_max"])), truncated


def key_mask(rows: pa.Table, keys: pa.Table, key: list[str]) -> pa.ChunkedArray | pa.Array:
    """True for each row of *rows* whose key appears in *keys*."""
    if len(key) == 1:
        values = _storage(keys[key[0]])
        value_set = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
        return pc.is_in(_storage(rows[key[0]]), value_set=value_set)
    indexed = _keys_only(rows, key).append_column("__row", pa.array(range(rows.num_rows), pa.int64()))
    hits = indexed.join(_keys_only(keys, key), keys=key, join_type="left semi", use_threads=False)
    return pc.is_in(indexed["__row"], value_set=hits["__row"].combine_chunks())


def _conform(data: pa.Table, target: pa.Schema) -> pa.Table:
    """Columns in the table's order and types; columns the batch lacks become nulls."""
    arrays = []
    for target_field in target:
        if target_field.name in data.column_names:
            arrays.append(data[target_field.name].cast(target_field.type))
        else:
            arrays.append(pa.nulls(data.num_rows, target_field.type))
    return pa.Table.from_arrays(arrays, schema=target)


def _prune_filter(
    keys: pa.Table, key: list[str], table_schema_types: dict[str, pa.DataType]
) -> BooleanExpression:
    """A key-range filter on the first key column, for file pruning by manifest statistics."""
    first = key[0]
    if isinstance(table_schema_types[first], pa.BaseExtensionType) or keys.num_rows == 0:
        return AlwaysTrue()
    bounds = pc.min_max(keys[first])
    low, high = bounds["min"].as_py(), bounds["max"].as_py()
    if low is None or high is None:
        return AlwaysTrue()
    return And(GreaterThanOrEqual(first, low), LessThanOrEqual(first, high))


def merge_batch(table: Table, batch: ChangeBatch, checkpoint: Checkpoint) -> MergeResult:
    """Merge *batch* into *table* in one commit that also records *checkpoint*.

    *checkpoint* is the one the batch was consumed from. If the table has moved on since, the
    batch is stale and is refused; the table is created with commit retries off, so that a commit
    racing another writer fails instead of being re-applied on top of it.
    """
    current = read_checkpoint(table)
    if current.snapshot_id != checkpoint.snapshot_id:
        raise ConcurrentWriteError(
            f"table {batch.table} was committed to by another writer (snapshot {current.snapshot_id}) after "
            f"this batch was read from snapshot {checkpoint.snapshot_id}; nothing was written, the next "
            "cycle reads from the new offsets"
        )
    try:
        return _merge(table, batch, checkpoint)
    except (CommitFailedException, ValidationException) as exc:
        raise ConcurrentWriteError(
            f"table {batch.table}: commit lost a race with another writer ({exc}); nothing was written, "
            "the next cycle reads from the new offsets"
        ) from exc


def _merge(table: Table, batch: ChangeBatch, checkpoint: Checkpoint) -> MergeResult:
    result = MergeResult(table=batch.table, events=batch.size)
    latest, result.truncated = last_change_per_key(batch.data, batch.key)
    upsert_mask = pc.is_in(latest[OP_COLUMN], value_set=pa.array(UPSERT_OPS))
    with table.transaction() as tx:
        result.schema_changes = evolve(tx, batch.table, batch.columns)
        metadata = tx.table_metadata
        target = metadata.schema().as_arrow()
        upserts = _conform(latest.filter(upsert_mask), target)
        changed_keys = _conform(latest, target).select(batch.key)
        deletes = latest.filter(pc.equal(latest[OP_COLUMN], DELETE))

        removed_files, kept_parts, removed_keys = [], [], []
        snapshot = table.current_snapshot()
        if snapshot is not None and (result.truncated or changed_keys.num_rows):
            row_filter = (
                AlwaysTrue()
                if result.truncated
                else _prune_filter(changed_keys, batch.key, {f.name: f.type for f in target})
            )
            for task in table.scan(row_filter=row_filter).plan_files():
                if result.truncated:
                    removed_files.append(task.file)
                    continue
                existing = _conform(
                    ArrowScan(metadata, table.io, metadata.schema(), AlwaysTrue()).to_table([task]), target
                )
                hits = key_mask(existing, changed_keys, batch.key)
                if not pc.any(hits).as_py():
                    continue
                removed_files.append(task.file)
                removed_keys.append(existing.filter(hits).select(batch.key))
                kept_parts.append(existing.filter(pc.invert(hits)))

        if result.truncated and snapshot is not None:
            result.deleted = int(snapshot.summary.get("total-records") or 0)
        matched = pa.concat_tables(removed_keys) if removed_keys else changed_keys.slice(0, 0)
        result.updated = (
            int(pc.sum(key_mask(upserts, matched, batch.key)).as_py() or 0) if upserts.num_rows else 0
        )
        result.inserted = upserts.num_rows - result.updated
        if deletes.num_rows and matched.num_rows:
            result.deleted += int(
                pc.sum(key_mask(_conform(deletes, target), matched, batch.key)).as_py() or 0
            )

        new_rows = pa.concat_tables([*kept_parts, upserts]) if kept_parts else upserts
        _check_pyarrow_schema_compatible(
            metadata.schema(), new_rows.schema, format_version=metadata.format_version
        )
        properties = checkpoint.merged_with(batch.offsets, batch.position).properties()
        properties["floe.events"] = str(batch.size)
        added = (
            list(_dataframe_to_data_files(table_metadata=metadata, df=new_rows, io=table.io))
            if new_rows.num_rows
            else []
        )
        producer = (
            tx.update_snapshot(snapshot_properties=properties).overwrite()
            if removed_files
            else tx.update_snapshot(snapshot_properties=properties).fast_append()
        )
        with producer as update:
            for data_file in removed_files:
                update.delete_data_file(data_file)
            for data_file in added:
                update.append_data_file(data_file)
        result.files_rewritten, result.files_added = len(removed_files), len(added)
    current = table.current_snapshot()
    result.snapshot_id = current.snapshot_id if current else None
    return result
