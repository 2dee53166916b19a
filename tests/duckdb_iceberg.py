"""DuckDB with its iceberg extension, as a second reader of Floe's tables."""

from __future__ import annotations

import gzip
import importlib
from pathlib import Path

import duckdb


def duckdb_with_iceberg(directory: Path) -> duckdb.DuckDBPyConnection:
    """DuckDB with its httpfs and iceberg extensions loaded from their wheels: DuckDB would
    otherwise download them, and these machines have no route to its extension repository."""
    connection = duckdb.connect()
    version = connection.execute("PRAGMA version").fetchone()[0]
    for name in ("httpfs", "iceberg"):
        package = Path(importlib.import_module(f"duckdb_extension_{name}").__file__).parent
        packed = package / "extensions" / version / f"{name}.duckdb_extension.gz"
        extension = directory / f"{name}.duckdb_extension"
        if not extension.exists():  # rewriting a loaded extension under DuckDB crashes it
            extension.write_bytes(gzip.decompress(packed.read_bytes()))
        connection.execute(f"LOAD '{extension}'")
    return connection
