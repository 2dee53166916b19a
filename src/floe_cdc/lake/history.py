"""History tables (a table's ``history: true``): every change of the table, appended in source
order to ``<table>_history`` beside it.

One row per change: the operation (insert, update, delete, snapshot, truncate), the row's values
(after the change; for a delete, what the event carries of the row before it, the key at least),
the change's source position and source commit time, and when Floe committed it. Partitioned by
the day of the source commit time, with no key: an append-only table.

Exactly once, by its own offsets: the history table's commits carry the Kafka offsets it has
recorded, and each batch is appended before the current table's commit, keeping only the records
at or beyond those offsets. A run that stops between the two commits reads the batch again from
the current table's offsets; the history keeps none of it twice.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from floe_cdc.core.changes import (
    CREATE,
    DELETE,
    OFFSET_COLUMN,
    OP_COLUMN,
    PARTITION_COLUMN,
    POS_COLUMN,
    POSITION_TYPE,
    READ,
    SOURCE_TS_COLUMN,
    TRUNCATE,
    UPDATE,
    ChangeBatch,
    Column,
)
from floe_cdc.lake.checkpoint import Checkpoint
from floe_cdc.lake.soft_deletes import DELETED_COLUMN, OWN_COLUMNS

HISTORY_SUFFIX = "_history"
OPERATION = "_floe_op"
SOURCE_POSITION = "_floe_source_position"
SOURCE_TS = "_floe_source_ts"
COMMITTED_AT = "_floe_committed_at"
PARTITION_BY = [f"day({SOURCE_TS})"]
_TIME = pa.timestamp("us", tz="UTC")
_OPERATIONS = {CREATE: "insert", UPDATE: "update", DELETE: "delete", READ: "snapshot", TRUNCATE: "truncate"}
_COLUMNS = [
    Column(OPERATION, pa.string(), True),
    Column(SOURCE_POSITION, POSITION_TYPE, True),
    Column(SOURCE_TS, _TIME, True),
    Column(COMMITTED_AT, _TIME, True),
]


def history_name(table: str) -> str:
    return f"{table}{HISTORY_SUFFIX}"


def _unrecorded(data: pa.Table, recorded: dict[int, int]) -> pa.Array:
    """The rows whose record is at or beyond the history's offset of its partition."""
    partitions = data[PARTITION_COLUMN].to_pylist()
    offsets = data[OFFSET_COLUMN].to_pylist()
    return pa.array(
        [o is not None and o >= recorded.get(p, 0) for p, o in zip(partitions, offsets, strict=True)],
        pa.bool_(),
    )


def history_batch(
    batch: ChangeBatch, stored: Checkpoint, committed_at: datetime | None = None
) -> ChangeBatch | None:
    """*batch*'s changes that the history table (at checkpoint *stored*) does not hold yet, as
    history rows; None when there are none. A soft-deleted row (``deletes: soft`` turned the
    delete into an update) is recorded as the delete it was."""
    if not batch.offsets or batch.data.num_rows == 0:
        return None
    (topic,) = batch.offsets
    data = batch.data.filter(_unrecorded(batch.data, stored.offsets.get(topic, {})))
    if data.num_rows == 0:
        return None
    ops = data[OP_COLUMN].to_pylist()
    deleted = data[DELETED_COLUMN].to_pylist() if DELETED_COLUMN in data.column_names else [False] * len(ops)
    operations = pa.array(
        ["delete" if gone else _OPERATIONS.get(op, op) for op, gone in zip(ops, deleted, strict=True)],
        pa.string(),
    )
    when = pa.scalar(committed_at or datetime.now(UTC), _TIME)
    values = [c for c in batch.columns if c.name not in OWN_COLUMNS]
    extra = [
        operations,
        data[POS_COLUMN],
        data[SOURCE_TS_COLUMN].cast(_TIME),
        pa.repeat(when, data.num_rows),
    ]
    for column, array in zip(_COLUMNS, extra, strict=True):
        data = data.append_column(pa.field(column.name, column.type), array)
    nullable = [Column(c.name, c.type, True, c.source_type, c.logical) for c in values]
    return ChangeBatch(
        history_name(batch.table),
        batch.source,
        batch.source_table,
        [],
        nullable + _COLUMNS,
        data,
        offsets=batch.offsets,
        stamps=batch.stamps,
        position=batch.position,
        column_history=batch.column_history,
    )
