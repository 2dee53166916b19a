"""The one type that crosses from ``cdc/`` to ``iceberg/``: a columnar batch of changes to a table.

Columns are typed with Arrow types chosen from the source's declared types; ``iceberg/`` maps
them to Iceberg types. Each row carries its operation and its order within the batch, so that
the merge can keep the last change per key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

OP_COLUMN = "__floe_op"
SEQ_COLUMN = "__floe_seq"
META_COLUMNS = (OP_COLUMN, SEQ_COLUMN)

# Operations, as Debezium names them.
CREATE, UPDATE, DELETE, READ, TRUNCATE = "c", "u", "d", "r", "t"
UPSERT_OPS = (CREATE, UPDATE, READ)


@dataclass(frozen=True)
class Column:
    """A replicated column: its Arrow type, nullability and the source's own type name."""

    name: str
    type: pa.DataType
    nullable: bool = True
    source_type: str = ""
    logical: str | None = None  # "json" for JSON documents kept as text


@dataclass
class ChangeBatch:
    """All changes of one cycle for one table, in source order.

    ``data`` holds the table's columns plus ``__floe_op`` and ``__floe_seq``. For deletes only
    the key columns are meaningful. ``offsets`` are the next Kafka offsets to read per topic and
    partition once this batch is committed; ``position`` is the source position of its last event.
    """

    table: str
    source: str
    source_table: str
    key: list[str]
    columns: list[Column]
    data: pa.Table
    offsets: dict[str, dict[int, int]] = field(default_factory=dict)
    position: dict[str, Any] = field(default_factory=dict)
    skipped: int = 0

    @property
    def size(self) -> int:
        return self.data.num_rows

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)
