"""Merge throughput: Floe's merge engine against pyiceberg's ``Table.upsert``, side by side.

Both tables start from the same rows, in several data files, and receive the same change
batches (updates of random existing keys, inserts, deletes). pyiceberg needs two commits per
batch (``upsert``, then ``delete``); Floe commits once. At the end both tables must hold the same
rows, so the comparison is between two correct results.

    .venv/bin/python -m bench.merge_throughput [--rows 1000000] [--batch 20000] [--batches 3]

Prints a table and writes ``bench/results/merge_throughput.json``. Compare the ratio, not the
absolute times: the ratio holds on a noisy machine.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import In

from floe.changes import META_FIELDS, ChangeBatch, Column, make_position
from iceberg.checkpoint import read_checkpoint
from iceberg.merge import merge_batch
from iceberg.schema import POSITION_FIELD, create_table

COLUMNS = [
    Column("id", pa.int64(), False, "INT8"),
    Column("name", pa.string()),
    Column("amount", pa.decimal128(12, 2)),
]
RESULTS = Path(__file__).parent / "results" / "merge_throughput.json"


def _rows(ids: list[int], tag: str) -> dict[str, list]:
    return {
        "id": ids,
        "name": [f"{tag}-{i}" for i in ids],
        "amount": [Decimal(i % 100_000) / 100 for i in ids],
    }


def _batch(ops: list[str], rows: dict[str, list], first_position: int, offset: int) -> ChangeBatch:
    count = len(ops)
    arrays = [pa.array(rows[c.name], c.type) for c in COLUMNS]
    meta = [
        pa.array(ops, pa.string()),
        pa.array(range(count), pa.int64()),
        pa.array([make_position(first_position + i) for i in range(count)], META_FIELDS[2].type),
        pa.array([0] * count, pa.int32()),
        pa.nulls(count, META_FIELDS[4].type),
    ]
    schema = pa.schema([*(pa.field(c.name, c.type) for c in COLUMNS), *META_FIELDS])
    return ChangeBatch(
        "bench",
        "bench",
        "public.bench",
        ["id"],
        COLUMNS,
        pa.Table.from_arrays(arrays + meta, schema=schema),
        offsets={"bench": {0: offset + count}},
    )


def _changes(existing: list[int], next_id: int, size: int, rng: random.Random) -> tuple[list[str], list[int]]:
    """70% updates of random existing keys, 20% inserts, 10% deletes; no key twice."""
    updates = rng.sample(existing, int(size * 0.8))
    deletes, updates = updates[: int(size * 0.1)], updates[int(size * 0.1) :]
    inserts = list(range(next_id, next_id + size - len(updates) - len(deletes)))
    ops = ["u"] * len(updates) + ["c"] * len(inserts) + ["d"] * len(deletes)
    return ops, updates + inserts + deletes


def run(rows: int, batch_size: int, batches: int, files: int, seed: int) -> dict:
    rng = random.Random(seed)
    directory = Path(tempfile.mkdtemp(prefix="floe-bench-"))
    catalog = SqlCatalog("bench", uri=f"sqlite:///{directory}/catalog.db", warehouse=directory.as_uri())
    catalog.create_namespace("bench")
    # Initial load: the same rows in both tables, in several files (as replication leaves them).
    per_file = rows // files
    floe_table = upsert_table = None
    indexes: dict = {}  # Floe's key index, kept between merges as a following replicator keeps it
    for part in range(files):
        ids = list(range(part * per_file, (part + 1) * per_file))
        batch = _batch(["r"] * len(ids), _rows(ids, "v0"), 1 + part * per_file, part * per_file)
        floe_table = floe_table or create_table(catalog, "bench", batch)
        merge_batch(floe_table, batch, read_checkpoint(floe_table), indexes)
        if upsert_table is None:
            data = (
                floe_table.schema()
                .as_arrow()
                .remove(floe_table.schema().as_arrow().get_field_index(POSITION_FIELD))
            )
            upsert_table = catalog.create_table(("bench", "upsert"), schema=data)
            with upsert_table.update_schema() as update:
                update.set_identifier_fields("id")
        upsert_table.append(pa.Table.from_pydict(_rows(ids, "v0"), schema=upsert_table.schema().as_arrow()))
    existing, next_id, position = list(range(per_file * files)), per_file * files, per_file * files + 1
    timings = {"floe": [], "pyiceberg_upsert": []}
    for number in range(batches):
        ops, ids = _changes(existing, next_id, batch_size, rng)
        rows_in = _rows(ids, f"v{number + 1}")
        batch = _batch(ops, rows_in, position, position)
        position += len(ops)
        began = time.perf_counter()
        merge_batch(floe_table, batch, read_checkpoint(floe_table), indexes)
        timings["floe"].append(time.perf_counter() - began)

        upserts = [i for i, op in enumerate(ops) if op != "d"]
        frame = pa.Table.from_pydict(
            {k: [v[i] for i in upserts] for k, v in rows_in.items()}, schema=upsert_table.schema().as_arrow()
        )
        deleted = [ids[i] for i, op in enumerate(ops) if op == "d"]
        began = time.perf_counter()
        upsert_table.upsert(frame, join_cols=["id"])
        upsert_table.delete(In("id", deleted))
        timings["pyiceberg_upsert"].append(time.perf_counter() - began)

        gone = set(deleted)
        existing = [i for i in existing if i not in gone] + [
            i for i, op in zip(ids, ops, strict=True) if op == "c"
        ]
        next_id += ops.count("c")
    floe_rows = floe_table.scan().to_arrow().drop_columns([POSITION_FIELD]).sort_by("id")
    upsert_rows = upsert_table.scan().to_arrow().sort_by("id")
    # ChunkedArray.equals compares nulls too (pc.equal would yield null there, which pc.all skips).
    same = floe_rows.num_rows == upsert_rows.num_rows and all(
        floe_rows[c].combine_chunks().equals(upsert_rows[c].cast(floe_rows[c].type).combine_chunks())
        for c in ("id", "name", "amount")
    )
    events = batch_size * batches
    result = {
        "rows": rows,
        "batch": batch_size,
        "batches": batches,
        "files": files,
        "same_result": same,
        "seconds": {name: round(sum(values), 3) for name, values in timings.items()},
        "events_per_second": {name: round(events / sum(values)) for name, values in timings.items()},
    }
    result["speedup"] = round(result["seconds"]["pyiceberg_upsert"] / result["seconds"]["floe"], 2)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=20_000)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    result = run(args.rows, args.batch, args.batches, args.files, args.seed)
    print(
        f"table of {result['rows']:,} rows in {result['files']} files; {result['batches']} batches of "
        f"{result['batch']:,} changes (70% updates, 20% inserts, 10% deletes)"
    )
    print(f"{'engine':<20} {'seconds':>9} {'events/s':>10}")
    for name in ("floe", "pyiceberg_upsert"):
        print(f"{name:<20} {result['seconds'][name]:>9.2f} {result['events_per_second'][name]:>10,}")
    print(f"speed-up: {result['speedup']}x; same rows in both tables: {result['same_result']}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2))
    print(f"written {RESULTS}")


if __name__ == "__main__":
    main()
