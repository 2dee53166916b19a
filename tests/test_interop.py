"""Floe's tables read by engines no one at Floe wrote: pyiceberg, DuckDB 1.5 (its iceberg
extension), iceberg-rust (pyiceberg-core's DataFusion provider) and daft, each compared row by
row with the source after every step of ``tests/interop_tables.py``.

The other engines run in a virtual environment of their own (``make readers``), whose DuckDB
conflicts with the one Soda needs; ``tests/readers/read_tables.py`` reads every step of every
table there in one process. Iceberg's Java reader (through Spark) is checked by
``bench/interop.py`` (``make interop``), too heavy for the suite."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyiceberg.table import StaticTable

from tests.interop_tables import ROOT, Step, comparable, differences, read_elsewhere, write_tables

pytestmark = pytest.mark.readers

READERS = ROOT / ".venv-readers" / "bin" / "python"
OTHERS = ["duckdb", "iceberg-rust", "daft"]


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[list[Step], Path]:
    if not READERS.exists():
        pytest.fail(f"the readers' virtual environment is missing: run `make readers` ({READERS})")
    root = tmp_path_factory.mktemp("interop")
    steps = write_tables(root)
    read_elsewhere(READERS, OTHERS, steps, root / "read")
    return steps, root / "read"


def test_pyiceberg_returns_the_sources_rows_at_every_step(written):
    steps, _ = written
    for step in steps:
        assert (
            comparable(StaticTable.from_metadata(step.metadata).scan().to_arrow(), step.columns) == step.rows
        )


@pytest.mark.parametrize("engine", OTHERS)
def test_every_other_reader_returns_the_sources_rows_at_every_step(written, engine):
    steps, out = written
    wrong = differences(engine, steps, out)
    assert not wrong, f"{engine} read differently from the source:\n" + "\n".join(wrong)
