"""The one type that crosses from ``cdc/`` to ``iceberg/``: a columnar batch of changes to a table.

Columns are typed with Arrow types chosen from the source's declared types; ``iceberg/`` maps
them to Iceberg types. Each row also carries:
- its operation and its order within the batch,
- its source position, a number that orders the changes of one key (for PostgreSQL built from
  Debezium's ``sequence``; for MongoDB from ``ts_ms`` and the cluster time's ``ord``). Replays and
  re-snapshots are made harmless by comparing positions, never by trusting delivery,
- the partition it came from, because positions are only ordered within one partition,
- the names of columns whose value the source did not send (unchanged TOASTed values).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

OP_COLUMN = "__floe_op"
SEQ_COLUMN = "__floe_seq"
POS_COLUMN = "__floe_pos"
PARTITION_COLUMN = "__floe_partition"
UNAVAILABLE_COLUMN = "__floe_unavailable"
POSITION_TYPE = pa.decimal128(38, 0)
META_FIELDS = (
    pa.field(OP_COLUMN, pa.string(), False),
    pa.field(SEQ_COLUMN, pa.int64(), False),
    pa.field(POS_COLUMN, POSITION_TYPE, False),
    pa.field(PARTITION_COLUMN, pa.int32(), False),
    pa.field(UNAVAILABLE_COLUMN, pa.list_(pa.string()), True),
)

# Operations, as Debezium names them.
CREATE, UPDATE, DELETE, READ, TRUNCATE = "c", "u", "d", "r", "t"
UPSERT_OPS = (CREATE, UPDATE, READ)


def make_position(major: int, minor: int = 0) -> int:
    """One comparable number from a two-part source position (each part below 2**64)."""
    return (major << 64) | minor


@dataclass(frozen=True)
class Column:
    """A replicated column: its Arrow type, nullability and the source's own type name."""

    name: str
    type: pa.DataType
    nullable: bool = True
    source_type: str = ""
    logical: str | None = None  # "json" for JSON documents kept as text
    default: Any = None  # the source's default, applied to existing rows when the column is new


@dataclass(frozen=True)
class Quarantined:
    """A change event that could not be applied, kept whole with the reason."""

    table: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    error: str


@dataclass
class ChangeBatch:
    """All changes of one cycle for one table, in source order.

    ``data`` holds the table's columns plus the ``__floe_*`` columns. For deletes only the key
    columns are meaningful. ``offsets`` are the next offsets to read per stream and partition
    once this batch is committed, ``stamps`` the timestamps of the last records read there (to
    recognise that record when reading on); ``position`` is the source position of its last event.
    ``snapshot_completed`` is the position of a completed (re-)snapshot of the table, after
    which rows the snapshot did not contain are gone from the source.
    """

    table: str
    source: str
    source_table: str
    key: list[str]
    columns: list[Column]
    data: pa.Table
    offsets: dict[str, dict[int, int]] = field(default_factory=dict)
    stamps: dict[str, dict[int, int]] = field(default_factory=dict)
    position: dict[str, Any] = field(default_factory=dict)
    skipped: int = 0
    quarantined: list[Quarantined] = field(default_factory=list)
    snapshot_completed: int | None = None

    @property
    def size(self) -> int:
        return self.data.num_rows

    def without_rows(self) -> ChangeBatch:
        """The same batch with no changes: committing it only advances the offsets."""
        empty = pa.Table.from_arrays(
            [pa.array([], f.type) for f in META_FIELDS], schema=pa.schema(META_FIELDS)
        )
        return ChangeBatch(
            self.table,
            self.source,
            self.source_table,
            self.key,
            [],
            empty,
            self.offsets,
            self.stamps,
            self.position,
        )

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)
