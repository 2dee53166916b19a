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
# Each engine, and the format versions it reads. daft 0.7.26 opens a v3 table's Puffin files as
# Parquet ("Corrupt footer"): it cannot read deletion vectors (test_daft_cannot_read_v3 below).
ENGINES = {"duckdb": (2, 3), "iceberg-rust": (2, 3), "daft": (2,)}


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[list[Step], Path]:
    if not READERS.exists():
        pytest.fail(f"the readers' virtual environment is missing: run `make readers` ({READERS})")
    root = tmp_path_factory.mktemp("interop")
    steps = [step for version in (2, 3) for step in write_tables(root / f"v{version}", version)]
    read_elsewhere(READERS, list(ENGINES), steps, root / "read")
    return steps, root / "read"


def _of_version(steps: list[Step], versions: tuple[int, ...]) -> list[Step]:
    return [step for step in steps if int(step.name[1]) in versions]


def test_pyiceberg_returns_the_sources_rows_at_every_step(written):
    steps, _ = written
    for step in steps:
        assert (
            comparable(StaticTable.from_metadata(step.metadata).scan().to_arrow(), step.columns) == step.rows
        )


@pytest.mark.parametrize("engine", ENGINES)
def test_every_other_reader_returns_the_sources_rows_at_every_step(written, engine):
    steps, out = written
    wrong = differences(engine, _of_version(steps, ENGINES[engine]), out)
    assert not wrong, f"{engine} read differently from the source:\n" + "\n".join(wrong)


def test_daft_cannot_read_v3_deletion_vectors(written):
    """What the docs say of daft and v3 tables, checked: when a daft release reads deletion
    vectors this fails, and the docs and ENGINES change."""
    steps, out = written
    with_vectors = [
        step for step in _of_version(steps, (3,)) if (out / "daft" / f"{step.name}.error").exists()
    ]
    assert with_vectors, "daft read every v3 table: it reads deletion vectors now"
    assert all(
        "Puffin" in (out / "daft" / f"{s.name}.error").read_text()
        or "puffin" in (out / "daft" / f"{s.name}.error").read_text()
        for s in with_vectors
    )
