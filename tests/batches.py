"""Build ChangeBatch values from Python rows, for merge-engine tests."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from floe_cdc.core.changes import META_FIELDS, ChangeBatch, Column, make_position

Event = tuple  # (op, row) or (op, row, position) or (op, row, position, unavailable columns)


def make_batch(
    table: str,
    key: list[str],
    columns: list[Column],
    events: list[Event],
    offset: int = 0,
    snapshot_completed: int | None = None,
) -> ChangeBatch:
    """*events* in arrival order; without a position, each event is one source step after the last.

    Delete rows need only the key. Positions are given as plain step numbers.
    """
    rows: list[dict[str, Any]] = []
    meta: dict[str, list[Any]] = {f.name: [] for f in META_FIELDS}
    for index, event in enumerate(events):
        op, row = event[0], event[1]
        step = event[2] if len(event) > 2 else offset + index + 1
        unavailable = event[3] if len(event) > 3 else None
        rows.append(row)
        for name, value in zip(
            meta, (op, index, make_position(step), 0, unavailable, index, None), strict=True
        ):
            meta[name].append(value)
    arrays = [pa.array([row.get(c.name) for row in rows], type=c.type) for c in columns]
    arrays += [pa.array(meta[f.name], type=f.type) for f in META_FIELDS]
    schema = pa.schema([*(pa.field(c.name, c.type) for c in columns), *META_FIELDS])
    return ChangeBatch(
        table=table,
        source="test",
        source_table=f"public.{table}",
        key=key,
        columns=columns,
        data=pa.Table.from_arrays(arrays, schema=schema),
        offsets={f"topic.{table}": {0: offset + len(events)}},
        position={"lsn": offset + len(events)},
        snapshot_completed=make_position(snapshot_completed) if snapshot_completed is not None else None,
    )
