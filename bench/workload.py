"""The benchmarks' table and change batches, the same for every engine given the same seed.

A table ``(id bigint, name text, amount numeric(12,2), placed timestamptz)`` loaded in
``files`` files of consecutive ids (as replication leaves a snapshot), then batches of random
keys: 50% updates of existing rows, 10% deletes, 40% inserts of new ids, no key twice in a
batch. ``placed`` spreads rows over 30 days, and an update moves its row to another day (what a
table partitioned by ``day(placed)`` must follow).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from floe_cdc.core.changes import META_FIELDS, ChangeBatch, Column, make_position

COLUMNS = [
    Column("id", pa.int64(), False, "INT8"),
    Column("name", pa.string()),
    Column("amount", pa.decimal128(12, 2)),
    Column("placed", pa.timestamp("us", tz="UTC")),
]
_DAYS = 30
_START_US = 1_793_491_200_000_000  # 2026-11-01T00:00:00Z
DATA_SCHEMA = pa.schema([pa.field(c.name, c.type, c.nullable) for c in COLUMNS])
MIX = {"u": 0.5, "d": 0.1, "c": 0.4}


def rows(ids: np.ndarray, tag: str, step: int = 0) -> pa.Table:
    """Rows of *ids*, their text tagged *tag*; *step* moves each row to another hour of the 30 days."""
    id_array = pa.array(ids, pa.int64())
    hours = (ids * 7919 + step) % (_DAYS * 24)
    return pa.Table.from_arrays(
        [
            id_array,
            pc.binary_join_element_wise(tag, pc.cast(id_array, pa.string()), "-"),
            pc.cast(pa.array(ids % 100_000, pa.int32()), pa.decimal128(12, 2)),
            pa.array(_START_US + hours * 3_600_000_000, pa.timestamp("us", tz="UTC")),
        ],
        schema=DATA_SCHEMA,
    )


@dataclass(frozen=True)
class Changes:
    """One batch: an operation per key (updates, then inserts, then deletes), the rows of the
    keys inserted or updated, and the source position of its first change."""

    ops: list[str]
    upserts: pa.Table
    deletes: np.ndarray
    first_position: int

    def change_batch(self, table: str, offset: int) -> ChangeBatch:
        """The batch as Floe's merge receives it from the decoder (a delete carries its key)."""
        count = len(self.ops)
        gone = pa.table(
            {
                "id": pa.array(self.deletes, pa.int64()),
                **{c.name: pa.nulls(len(self.deletes), c.type) for c in COLUMNS[1:]},
            },
            schema=DATA_SCHEMA,
        )
        data = pa.concat_tables([self.upserts, gone])
        meta = [
            pa.array(self.ops, pa.string()),
            pa.array(range(count), pa.int64()),
            pa.array([make_position(self.first_position + i) for i in range(count)], META_FIELDS[2].type),
            pa.array([0] * count, pa.int32()),
            pa.nulls(count, META_FIELDS[4].type),
            pa.array(range(offset, offset + count), pa.int64()),
            pa.nulls(count, META_FIELDS[6].type),
        ]
        return ChangeBatch(
            table,
            "bench",
            "public.bench",
            ["id"],
            COLUMNS,
            pa.Table.from_arrays([*data.columns, *meta], schema=pa.schema([*data.schema, *META_FIELDS])),
            offsets={"bench": {0: offset + count}},
        )

    def parquet_bytes(self) -> int:
        """The changed rows written once, as Parquet: the denominator of write amplification."""
        sink = io.BytesIO()
        pq.write_table(self.upserts, sink, compression="zstd")
        return sink.tell()


def initial_batch(ids: np.ndarray) -> Changes:
    """An initial file's rows as snapshot reads, positioned by id."""
    return Changes(["r"] * len(ids), rows(ids, "v0"), np.array([], np.int64), int(ids[0]) + 1)


def initial_files(total: int, files: int) -> Iterator[np.ndarray]:
    """The ids of each initial file: consecutive ranges."""
    yield from np.array_split(np.arange(total, dtype=np.int64), files)


def change_batches(total: int, size: int, count: int, seed: int) -> Iterator[Changes]:
    """*count* batches of *size* changes on a table of ids ``0 .. total-1``, positions after the
    initial load's; each batch's first position is ``total + size * number + 1``."""
    rng = np.random.default_rng(seed)
    alive = np.arange(total, dtype=np.int64)
    next_id = total
    for number in range(count):
        updates, deletes = int(size * MIX["u"]), int(size * MIX["d"])
        inserts = size - updates - deletes
        picked = rng.choice(alive, updates + deletes, replace=False)
        new_ids = np.arange(next_id, next_id + inserts, dtype=np.int64)
        next_id += inserts
        ids = np.concatenate([picked[:updates], new_ids, picked[updates:]])
        ops = ["u"] * updates + ["c"] * inserts + ["d"] * deletes
        alive = np.concatenate([np.setdiff1d(alive, picked[updates:], assume_unique=True), new_ids])
        first = total + size * number + 1
        yield Changes(ops, rows(ids[: updates + inserts], f"v{first}", first), picked[updates:], first)
