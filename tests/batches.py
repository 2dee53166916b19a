"""Build ChangeBatch values from Python rows, for merge-engine tests."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from floe.changes import OP_COLUMN, SEQ_COLUMN, ChangeBatch, Column


def make_batch(
    table: str,
    key: list[str],
    columns: list[Column],
    events: list[tuple[str, dict[str, Any]]],
    offset: int = 0,
) -> ChangeBatch:
    """*events* are (op, row) pairs in source order; delete rows need only the key."""
    arrays = [pa.array([row.get(c.name) for _, row in events], type=c.type) for c in columns]
    arrays += [pa.array([op for op, _ in events], pa.string()), pa.array(range(len(events)), pa.int64())]
    fields = [pa.field(c.name, c.type) for c in columns]
    fields += [pa.field(OP_COLUMN, pa.string(), False), pa.field(SEQ_COLUMN, pa.int64(), False)]
    return ChangeBatch(
        table=table,
        source="test",
        source_table=f"public.{table}",
        key=key,
        columns=columns,
        data=pa.Table.from_arrays(arrays, schema=pa.schema(fields)),
        offsets={f"topic.{table}": {0: offset + len(events)}},
        position={"lsn": offset + len(events)},
    )
