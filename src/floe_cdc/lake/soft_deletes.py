"""Soft deletes (a table's ``deletes: soft``): a row deleted at the source stays in Iceberg, flagged.

Two columns of Floe's own: ``_floe_deleted`` (false for a live row, true once deleted) and
``_floe_deleted_at`` (when Floe applied the delete). A delete becomes an update of the row that
sets the flag and keeps every other column as stored: its columns are marked as not sent, as an
unchanged TOASTed value is, so that the merge takes them from the batch's earlier changes of the
key or from the stored row (a delete event carries only the key). A row inserted again at the
source is live again. The reconciliations count and compare only live rows (``live_rows``).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import AlwaysTrue, BooleanExpression, EqualTo, IsNull, Or
from pyiceberg.schema import Schema

from floe_cdc.core.changes import DELETE, OP_COLUMN, UNAVAILABLE_COLUMN, UPDATE, ChangeBatch, Column

DELETED_COLUMN = "_floe_deleted"
DELETED_AT_COLUMN = "_floe_deleted_at"
OWN_COLUMNS = (DELETED_COLUMN, DELETED_AT_COLUMN)
_DELETED_AT_TYPE = pa.timestamp("us", tz="UTC")


def soften(batch: ChangeBatch, applied_at: datetime | None = None) -> ChangeBatch:
    """*batch* with its deletes turned into updates that flag the row, and every row's flag set."""
    data = batch.data
    deleted = pc.equal(data[OP_COLUMN], DELETE)
    others = [c.name for c in batch.columns if c.name not in batch.key and c.name not in OWN_COLUMNS]
    unavailable = [
        others if is_delete else missing
        for is_delete, missing in zip(deleted.to_pylist(), data[UNAVAILABLE_COLUMN].to_pylist(), strict=True)
    ]
    when = pa.scalar(applied_at or datetime.now(UTC), _DELETED_AT_TYPE)
    data = data.set_column(
        data.schema.get_field_index(OP_COLUMN),
        data.schema.field(OP_COLUMN),
        pc.if_else(deleted, UPDATE, data[OP_COLUMN]),
    )
    data = data.set_column(
        data.schema.get_field_index(UNAVAILABLE_COLUMN),
        data.schema.field(UNAVAILABLE_COLUMN),
        pa.array(unavailable, data[UNAVAILABLE_COLUMN].type),
    )
    data = data.append_column(pa.field(DELETED_COLUMN, pa.bool_(), False), deleted)
    data = data.append_column(
        pa.field(DELETED_AT_COLUMN, _DELETED_AT_TYPE),
        pc.if_else(deleted, when, pa.scalar(None, _DELETED_AT_TYPE)),
    )
    columns = [c for c in batch.columns if c.name not in OWN_COLUMNS] + [
        Column(DELETED_COLUMN, pa.bool_(), True),
        Column(DELETED_AT_COLUMN, _DELETED_AT_TYPE, True),
    ]
    return dataclasses.replace(batch, columns=columns, data=data)


def live_rows(schema: Schema) -> BooleanExpression:
    """The rows a reader of the source would see: those not flagged deleted (all of a table
    without soft deletes)."""
    if DELETED_COLUMN not in {field.name for field in schema.fields}:
        return AlwaysTrue()
    return Or(IsNull(DELETED_COLUMN), EqualTo(DELETED_COLUMN, False))
