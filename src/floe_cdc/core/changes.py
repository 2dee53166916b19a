"""The one type that crosses from ``capture`` to ``lake``: a columnar batch of changes to a table.

Columns are typed with Arrow types chosen from the source's declared types; ``lake`` maps
them to Iceberg types. Each row also carries:
- its operation and its order within the batch,
- its source position, a number that orders the changes of one key (for PostgreSQL built from
  Debezium's ``sequence``; for MongoDB from ``ts_ms`` and the cluster time's ``ord``). Replays and
  re-snapshots are made harmless by comparing positions, never by trusting delivery,
- the partition it came from, because positions are only ordered within one partition,
- the names of columns whose value the source did not send (unchanged TOASTed values),
- the Kafka offset of its record and the time the source committed it (what a history table
  records; none for rows a direct load read).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

OP_COLUMN = "__floe_op"
SEQ_COLUMN = "__floe_seq"
POS_COLUMN = "__floe_pos"
PARTITION_COLUMN = "__floe_partition"
UNAVAILABLE_COLUMN = "__floe_unavailable"
OFFSET_COLUMN = "__floe_offset"
SOURCE_TS_COLUMN = "__floe_source_ts"
POSITION_TYPE = pa.decimal128(38, 0)
SOURCE_TS_TYPE = pa.timestamp("ms", tz="UTC")
META_FIELDS = (
    pa.field(OP_COLUMN, pa.string(), False),
    pa.field(SEQ_COLUMN, pa.int64(), False),
    pa.field(POS_COLUMN, POSITION_TYPE, False),
    pa.field(PARTITION_COLUMN, pa.int32(), False),
    pa.field(UNAVAILABLE_COLUMN, pa.list_(pa.string()), True),
    pa.field(OFFSET_COLUMN, pa.int64(), True),  # the Kafka offset of the change's record
    pa.field(SOURCE_TS_COLUMN, SOURCE_TS_TYPE, True),  # when the source committed the change
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


def current_names(names: list[str], history: dict[int, list[str]]) -> list[str]:
    """The current name of each of *names*, the columns of one event schema, in source order.

    *history* holds, per source column id, the names the column has had (oldest first). A name
    that several columns have had (``RENAME v TO w`` then ``ADD COLUMN v``) is told apart by
    position: an event schema lists columns in the order of their ids (PostgreSQL's attnum), so
    its neighbours bound its id. Names *history* does not know stay as they are.
    """
    owners: dict[str, list[int]] = {}
    for column_id, seen in history.items():
        for name in set(seen):
            owners.setdefault(name, []).append(column_id)
    candidates = [sorted(owners.get(name, [])) for name in names]
    chosen: list[int | None] = [ids[0] if len(ids) == 1 else None for ids in candidates]
    for index, ids in enumerate(candidates):
        if len(ids) < 2:
            continue
        low = max((c for c in chosen[:index] if c is not None), default=-1)
        high = min((c for c in chosen[index + 1 :] if c is not None), default=1 << 62)
        fitting = [c for c in ids if low < c < high]
        holder = [c for c in ids if history[c][-1] == names[index]]
        chosen[index] = fitting[0] if len(fitting) == 1 else (holder[0] if holder else None)
    return [name if c is None else history[c][-1] for name, c in zip(names, chosen, strict=True)]


def with_current_names(
    history: dict[int, list[str]], column_ids: dict[str, int], names: list[str]
) -> dict[int, list[str]]:
    """*history* with each of *names* recorded under its source column id (*column_ids*, the
    source's current names); a name the source no longer has is left out."""
    updated = {column_id: list(seen) for column_id, seen in history.items()}
    for name in names:
        column_id = column_ids.get(name)
        if column_id is None:
            continue
        seen = updated.setdefault(column_id, [])
        if not seen or seen[-1] != name:
            seen.append(name)
    return updated


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
    which rows the snapshot did not contain are gone from the source. ``column_history`` holds,
    per source column id, the names the column has had (oldest first): a rename at the source
    becomes a rename in Iceberg. ``summary`` goes into the commit's snapshot properties (a direct
    load's progress, say).
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
    column_history: dict[int, list[str]] = field(default_factory=dict)
    summary: dict[str, str] = field(default_factory=dict)  # more snapshot properties of the commit

    @property
    def size(self) -> int:
        return self.data.num_rows

    @classmethod
    def empty(cls, table: str, source: str, source_table: str, key: list[str]) -> ChangeBatch:
        """A batch with no changes (and no offsets: committing it advances none)."""
        no_rows = pa.Table.from_arrays(
            [pa.array([], f.type) for f in META_FIELDS], schema=pa.schema(META_FIELDS)
        )
        return cls(table, source, source_table, key, [], no_rows)

    def without_rows(self) -> ChangeBatch:
        """The same batch with no changes: committing it only advances the offsets."""
        return dataclasses.replace(
            ChangeBatch.empty(self.table, self.source, self.source_table, self.key),
            offsets=self.offsets,
            stamps=self.stamps,
            position=self.position,
        )

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)
