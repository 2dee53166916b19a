"""Floe's tables read by engines no one at Floe wrote: pyiceberg, DuckDB 1.5 (its iceberg
extension), iceberg-rust (pyiceberg-core's DataFusion provider) and daft, each compared row by
row with the source after every step: merges of inserts, updates, deletes and re-inserts, a column
added, a truncate, ``maintain``, a re-snapshot, and merges after it; a composite key besides.

The other engines run in a virtual environment of their own (``make readers``), whose DuckDB
conflicts with the one Soda needs; ``tests/readers/read_tables.py`` reads every step of every
table there in one process. Iceberg's Java reader is checked by ``make interop`` (too heavy for
the suite)."""

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
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import StaticTable

from floe_cdc.core.changes import Column
from floe_cdc.lake.append import append_rows
from floe_cdc.lake.checkpoint import read_checkpoint
from floe_cdc.lake.maintenance import maintain_table
from floe_cdc.lake.merge import Compaction, merge_batch
from floe_cdc.lake.resnapshot_branch import BRANCH, begin_branch, switch_to_branch
from floe_cdc.lake.schema import POSITION_FIELD, create_table
from tests.batches import make_batch
from tests.test_maintenance import KEEP_HISTORY

pytestmark = pytest.mark.readers

ROOT = Path(__file__).resolve().parent.parent
READERS = ROOT / ".venv-readers" / "bin" / "python"
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
    rows: dict[tuple, dict[str, Any]] = dataclasses.field(default_factory=dict)
    step: int = 0
    indexes: dict = dataclasses.field(default_factory=dict)
    # (step name, metadata location, column names, the source's rows as tuples)
    steps: list[tuple[str, str, list[str], list[tuple]]] = dataclasses.field(default_factory=list)

    def table(self):
        return self.catalog.load_table(("ns", self.name))

    def merge(self, events: list[tuple], compaction: Compaction | None = None) -> None:
        batch = make_batch(self.name, self.key, self.columns, events, offset=self.step)
        if not self.catalog.table_exists(("ns", self.name)):
            create_table(self.catalog, "ns", batch)
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
        self.steps.append((f"{self.name}-{label}", self.table().metadata_location, names, rows))

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


def _items(catalog: SqlCatalog) -> _Source:
    """Merges (worn files rewritten in passing), a column added, a truncate, maintain, a
    re-snapshot and merges after it."""
    rng = random.Random(28)
    items = _Source(catalog, "items", ["id"], ITEMS)
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


def _lines(catalog: SqlCatalog) -> _Source:
    """A composite key, its rows updated and deleted."""
    rng = random.Random(29)
    lines = _Source(catalog, "lines", ["order_id", "line_no"], LINES)
    lines.merge([("r", {"order_id": o, "line_no": n, "qty": 1}) for o in range(40) for n in range(1, 4)])
    for _ in range(4):
        events = []
        for _ in range(40):
            row = {"order_id": rng.randrange(50), "line_no": rng.randrange(1, 5), "qty": rng.randrange(100)}
            events.append(("d", row) if rng.random() < 0.3 else ("u", row))
        lines.merge(events)
    lines.record("merged")
    return lines


def _comparable(table: pa.Table, names: list[str]) -> list[tuple] | str:
    if set(table.column_names) != {*names, POSITION_FIELD}:
        return f"columns {table.column_names}"
    return sorted(tuple(row[n] for n in names) for row in table.select(names).to_pylist())


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[list[_Source], Path]:
    if not READERS.exists():
        pytest.fail(f"the readers' virtual environment is missing: run `make readers` ({READERS})")
    root = tmp_path_factory.mktemp("interop")
    catalog = SqlCatalog("interop", uri=f"sqlite:///{root}/catalog.db", warehouse=(root / "wh").as_uri())
    catalog.create_namespace("ns")
    sources = [_items(catalog), _lines(catalog)]
    steps = [{"name": step[0], "metadata": step[1]} for source in sources for step in source.steps]
    out = root / "read"
    subprocess.run(
        [str(READERS), str(ROOT / "tests" / "readers" / "read_tables.py"), str(out)],
        input=json.dumps(steps),
        text=True,
        check=True,
        timeout=600,
    )
    return sources, out


@pytest.mark.parametrize("engine", ["pyiceberg", "duckdb", "iceberg-rust", "daft"])
def test_every_reader_returns_the_sources_rows_at_every_step(written, engine):
    sources, out = written
    wrong = []
    for source in sources:
        for name, metadata, names, expected in source.steps:
            if engine == "pyiceberg":
                read = StaticTable.from_metadata(metadata).scan().to_arrow()
            else:
                error = out / engine / f"{name}.error"
                if error.exists():
                    wrong.append(f"{name}: {error.read_text().strip().splitlines()[-1]}")
                    continue
                read = pq.read_table(out / engine / f"{name}.parquet")
            found = _comparable(read, names)
            if found != expected:
                wrong.append(f"{name}: {read.num_rows} rows read, {len(expected)} expected, or values differ")
    assert not wrong, f"{engine} read differently from the source:\n" + "\n".join(wrong)
