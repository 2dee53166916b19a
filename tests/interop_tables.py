"""The tables the interoperability checks read: Floe's merges, ``maintain`` and a re-snapshot
applied to two source tables, with the source's rows recorded after every step.

``items``: merges of inserts, updates, deletes and re-inserts (worn files rewritten in passing),
a column added, a truncate, ``maintain``, a re-snapshot through a branch and merges after it;
``lines``: a composite key. ``tests/test_interop.py`` reads each step with pyiceberg, DuckDB,
iceberg-rust and daft; ``bench/interop.py`` with Spark (Iceberg's Java reader).
"""

from __future__ import annotations

import dataclasses
import json
import random
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog

from floe_cdc.core.changes import Column
from floe_cdc.lake.append import append_rows
from floe_cdc.lake.checkpoint import read_checkpoint
from floe_cdc.lake.maintenance import maintain_table
from floe_cdc.lake.merge import Compaction, merge_batch
from floe_cdc.lake.resnapshot_branch import BRANCH, begin_branch, switch_to_branch
from floe_cdc.lake.schema import POSITION_FIELD, create_table
from tests.batches import make_batch
from tests.test_maintenance import KEEP_HISTORY

ROOT = Path(__file__).resolve().parent.parent
READ_TABLES = ROOT / "tests" / "readers" / "read_tables.py"
CATALOG = "interop"


@dataclasses.dataclass(frozen=True)
class Step:
    """A table as one step left it (its metadata file), and the source's rows then."""

    name: str
    metadata: str
    columns: list[str]
    rows: list[tuple]


ITEMS = [
    Column("id", pa.int64(), False, "INT8"),
    Column("name", pa.string()),
    Column("price", pa.decimal128(10, 2)),
]
WITH_NOTE = [*ITEMS, Column("note", pa.string(), source_type="TEXT")]
LINES = [
    Column("order_id", pa.int64(), False),
    Column("line_no", pa.int16(), False),
    Column("qty", pa.int32()),
]


@dataclasses.dataclass
class _Source:
    """One source table, its changes merged into Iceberg as a replicator would, and a model of
    the rows the source holds after each step."""

    catalog: SqlCatalog
    name: str
    key: list[str]
    columns: list[Column]
    format_version: int
    rows: dict[tuple, dict[str, Any]] = dataclasses.field(default_factory=dict)
    step: int = 0
    indexes: dict = dataclasses.field(default_factory=dict)
    steps: list[Step] = dataclasses.field(default_factory=list)

    def table(self):
        return self.catalog.load_table(("ns", self.name))

    def merge(self, events: list[tuple], compaction: Compaction | None = None) -> None:
        batch = make_batch(self.name, self.key, self.columns, events, offset=self.step)
        if not self.catalog.table_exists(("ns", self.name)):
            create_table(self.catalog, "ns", batch, self.format_version)
        table = self.table()
        merge_batch(table, batch, read_checkpoint(table), self.indexes, compaction)
        self.step += len(events)
        for op, row, *_ in events:
            if op == "t":
                self.rows.clear()
            elif op == "d":
                self.rows.pop(self._key(row), None)
            else:
                self.rows[self._key(row)] = {c.name: row.get(c.name) for c in self.columns}

    def record(self, label: str) -> None:
        """The table as it is now, and the rows the source holds, for the readers."""
        names = [c.name for c in self.columns]
        rows = sorted(tuple(row[n] for n in names) for row in self.expected())
        step = f"v{self.format_version}-{self.name}-{label}"
        self.steps.append(Step(step, self.table().metadata_location, names, rows))

    def expected(self) -> list[dict[str, Any]]:
        return [self._complete(row) for _, row in sorted(self.rows.items())]

    def _complete(self, row: dict[str, Any]) -> dict[str, Any]:
        return {c.name: row.get(c.name) for c in self.columns}

    def _key(self, row: dict[str, Any]) -> tuple:
        return tuple(row[k] for k in self.key)


def _random_changes(rng: random.Random, source: _Source, count: int, keys: int) -> list[tuple]:
    events = []
    for _ in range(count):
        key = rng.randrange(keys)
        if rng.random() < 0.25:
            events.append(("d", {"id": key}))
        else:
            row = {"id": key, "name": f"n{source.step}-{key}", "price": Decimal(rng.randrange(10**6)) / 100}
            if any(c.name == "note" for c in source.columns):
                row["note"] = rng.choice([None, "x" * rng.randrange(1, 40)])
            events.append(("u" if (key,) in source.rows else "c", row))
    return events


def _items(catalog: SqlCatalog, format_version: int) -> _Source:
    """Merges (worn files rewritten in passing), a column added, a truncate, maintain, a
    re-snapshot and merges after it."""
    rng = random.Random(28)
    items = _Source(catalog, "items", ["id"], ITEMS, format_version)
    items.merge([("r", {"id": i, "name": f"r{i}", "price": Decimal(i)}) for i in range(300)])
    for _ in range(6):
        items.merge(_random_changes(rng, items, 150, 400), Compaction(delete_ratio=0.3, rows_per_change=2))
    items.record("merged")
    items.columns = WITH_NOTE
    for _ in range(3):
        items.merge(_random_changes(rng, items, 150, 400))
    items.record("evolved")
    items.merge([("c", {"id": 1000, "name": "before"}), ("t", {}), *_random_changes(rng, items, 100, 400)])
    for _ in range(3):
        items.merge(_random_changes(rng, items, 150, 400))
    items.record("truncated")
    assert maintain_table(items.table(), "items", KEEP_HISTORY).files_rewritten > 0
    items.record("maintained")
    for _ in range(2):
        items.merge(_random_changes(rng, items, 150, 400))
    _resnapshot(items, rng)
    items.record("resnapshotted")
    items.merge(_random_changes(rng, items, 150, 400))
    items.record("after-resnapshot")
    return items


def _resnapshot(items: _Source, rng: random.Random) -> None:
    """The source read again into a branch (some rows changed since the stream), then main
    switched to it, as ``floe resnapshot`` does."""
    table = items.table()
    checkpoint = read_checkpoint(table)
    base = begin_branch(table, checkpoint)
    for key in rng.sample(sorted(items.rows), 20):
        items.rows[key] = {**items.rows[key], "name": "changed at the source"}
    for key in rng.sample(sorted(items.rows), 10):
        del items.rows[key]
    reads = [("r", row, 0) for row in items.expected()]
    for first in range(0, len(reads), 100):
        batch = make_batch("items", ["id"], items.columns, reads[first : first + 100])
        load = dataclasses.replace(batch, offsets={})
        append_rows(table, load, checkpoint, BRANCH, evolve_schema=first == 0)
    switch_to_branch(table, base)
    items.indexes.clear()


def _lines(catalog: SqlCatalog, format_version: int) -> _Source:
    """A composite key, its rows updated and deleted."""
    rng = random.Random(29)
    lines = _Source(catalog, "lines", ["order_id", "line_no"], LINES, format_version)
    lines.merge([("r", {"order_id": o, "line_no": n, "qty": 1}) for o in range(40) for n in range(1, 4)])
    for _ in range(4):
        events = []
        for _ in range(40):
            row = {"order_id": rng.randrange(50), "line_no": rng.randrange(1, 5), "qty": rng.randrange(100)}
            events.append(("d", row) if rng.random() < 0.3 else ("u", row))
        lines.merge(events)
    lines.record("merged")
    return lines


def write_tables(root: Path, format_version: int) -> list[Step]:
    """Both tables, of Iceberg *format_version* (3: deletion vectors), in a SQL catalog
    (``<root>/catalog.db``, which Iceberg's JdbcCatalog reads too) over a local warehouse; every
    step of each."""
    root.mkdir(parents=True, exist_ok=True)
    catalog = SqlCatalog(CATALOG, uri=f"sqlite:///{root}/catalog.db", warehouse=(root / "wh").as_uri())
    catalog.create_namespace("ns")
    sources = (_items(catalog, format_version), _lines(catalog, format_version))
    return [step for source in sources for step in source.steps]


def read_elsewhere(python: Path, engines: list[str], steps: list[Step], out: Path) -> None:
    """Every step read by *engines*, in the virtual environment of *python*, into *out*."""
    tables = [{"name": step.name, "metadata": step.metadata} for step in steps]
    done = subprocess.run(
        [str(python), str(READ_TABLES), str(out), *engines],
        input=json.dumps(tables),
        text=True,
        capture_output=True,
        check=False,
        timeout=1200,
    )
    # What the readers' process said when it died (it once did, rarely, under a loaded suite).
    assert done.returncode == 0, f"the readers exited with {done.returncode}:\n{done.stderr[-4000:]}"


def differences(engine: str, steps: list[Step], out: Path) -> list[str]:
    """The steps *engine* read differently from the source (or failed to read), saying how."""
    wrong = []
    for step in steps:
        error = out / engine / f"{step.name}.error"
        if error.exists():
            wrong.append(f"{step.name}: {error.read_text().strip().splitlines()[-1]}")
            continue
        read = pq.read_table(out / engine / f"{step.name}.parquet")
        found = comparable(read, step.columns)
        if found != step.rows:
            wrong.append(
                f"{step.name}: {read.num_rows} rows read, {len(step.rows)} expected, or values differ"
            )
    return wrong


def comparable(table: pa.Table, names: list[str]) -> list[tuple] | str:
    """*table*'s rows as sorted tuples of *names*, or what is wrong with its columns."""
    if set(table.column_names) != {*names, POSITION_FIELD}:
        return f"columns {table.column_names}"
    return sorted(tuple(row[n] for n in names) for row in table.select(names).to_pylist())
