"""The quarantine table: change events that could not be applied, kept whole with the reason.

One Iceberg table per namespace (``iceberg.quarantine_table``), keyed by topic, partition and
offset, so that recording the same event twice (after a crash) keeps one entry. An entry is
``pending`` until it is replayed, or ``superseded`` when a later change of the same key has been
merged (replaying it then would undo that change). Volumes are small, so pyiceberg's own
``upsert`` serves here; the replication tables use ``lake.merge``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.catalog import Catalog
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import BinaryType, IntegerType, LongType, NestedField, StringType, TimestamptzType

from floe_cdc.core.changes import Quarantined
from floe_cdc.core.config import IcebergConfig
from floe_cdc.lake.catalog import load_table, new_table

PENDING, REPLAYED, SUPERSEDED = "pending", "replayed", "superseded"
IDENTITY = ["topic", "partition", "offset"]

SCHEMA = Schema(
    NestedField(1, "topic", StringType(), required=True),
    NestedField(2, "partition", IntegerType(), required=True),
    NestedField(3, "offset", LongType(), required=True),
    NestedField(4, "table", StringType(), required=True),
    NestedField(5, "key", BinaryType(), required=False),
    NestedField(6, "key_text", StringType(), required=False, doc="canonical JSON of the event's key"),
    NestedField(7, "value", BinaryType(), required=False, doc="the raw event, as received"),
    NestedField(8, "error", StringType(), required=True),
    NestedField(9, "status", StringType(), required=True, doc="pending, replayed or superseded"),
    NestedField(10, "quarantined_at", TimestamptzType(), required=True),
    NestedField(11, "resolved_at", TimestamptzType(), required=False),
    identifier_field_ids=[1, 2, 3],
)


def open_quarantine(catalog: Catalog, config: IcebergConfig) -> Table:
    table = load_table(catalog, config.namespace, config.quarantine_table)
    if table is not None:
        return table
    setting = "iceberg.quarantine_table"
    return new_table(catalog, config.namespace, config.quarantine_table, SCHEMA, setting, properties={})


def _rows(items: Iterable[Quarantined], key_texts: dict[bytes | None, str | None]) -> pa.Table:
    now = dt.datetime.now(dt.UTC)
    records = [
        {
            "topic": q.topic,
            "partition": q.partition,
            "offset": q.offset,
            "table": q.table,
            "key": q.key,
            "key_text": key_texts.get(q.key),
            "value": q.value,
            "error": q.error,
            "status": PENDING,
            "quarantined_at": now,
            "resolved_at": None,
        }
        for q in items
    ]
    return pa.Table.from_pylist(records, schema=SCHEMA.as_arrow())


def record(table: Table, items: list[Quarantined], key_texts: dict[bytes | None, str | None]) -> int:
    """Add *items*; an event already recorded keeps its entry. Returns how many were new."""
    if not items:
        return 0
    result = table.upsert(_rows(items, key_texts), join_cols=IDENTITY, when_matched_update_all=False)
    return result.rows_inserted


def entries(table: Table, tables: list[str] | None = None, status: str | None = PENDING) -> pa.Table:
    rows = table.scan().to_arrow()
    if tables:
        rows = rows.filter(pc.is_in(rows["table"], value_set=pa.array(tables)))
    if status:
        rows = rows.filter(pc.equal(rows["status"], status))
    return rows.sort_by(
        [("table", "ascending"), ("topic", "ascending"), ("partition", "ascending"), ("offset", "ascending")]
    )


def resolve(table: Table, rows: pa.Table, status: str, errors: dict[tuple, str] | None = None) -> None:
    """Set the status of *rows* (entries of this table); *errors* updates the reason of some."""
    if rows.num_rows == 0:
        return
    now = dt.datetime.now(dt.UTC)
    updated = rows.to_pylist()
    for row in updated:
        identity = (row["topic"], row["partition"], row["offset"])
        if errors and identity in errors:
            row["error"] = errors[identity]
        else:
            row["status"], row["resolved_at"] = status, now
    table.upsert(
        pa.Table.from_pylist(updated, schema=SCHEMA.as_arrow()),
        join_cols=IDENTITY,
        when_not_matched_insert_all=False,
    )


def supersede(table: Table, pending: pa.Table, latest: dict[tuple[str, int, str], int]) -> int:
    """Mark those *pending* entries superseded that a later merged change of the same key follows.

    *latest* maps (topic, partition, key text) to the offset of the last merged change of that key.
    """
    stale = [
        row
        for row in pending.to_pylist()
        if row["offset"] < latest.get((row["topic"], row["partition"], row["key_text"]), -1)
    ]
    resolve(table, pa.Table.from_pylist(stale, schema=SCHEMA.as_arrow()), SUPERSEDED)
    return len(stale)


def pending_counts(table: Table) -> dict[str, int]:
    rows = entries(table)
    if rows.num_rows == 0:
        return {}
    counted = rows.group_by("table").aggregate([("offset", "count")])
    return dict(zip(counted["table"].to_pylist(), counted["offset_count"].to_pylist(), strict=True))
