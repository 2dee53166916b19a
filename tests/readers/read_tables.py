"""Read Iceberg tables with engines no one at Floe wrote, for the interoperability checks.

Runs in a virtual environment of the engines' own (``make readers``: DuckDB 1.5 with its iceberg
extension, iceberg-rust through pyiceberg-core's DataFusion provider, daft; their DuckDB
conflicts with the one Soda needs), and imports nothing of Floe (``bench/spark_tasks.py`` does
the same for Spark). Usage: ``read_tables.py OUT ENGINE...``
with a JSON list of ``{"name": ..., "metadata": <metadata JSON location>}`` on stdin; each engine
writes ``OUT/<engine>/<name>.parquet`` with the rows it read, or ``<name>.error`` with what it
raised.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import pyarrow.parquet as pq


def _duckdb(metadata: str, out: Path) -> None:
    import duckdb
    import duckdb_extension_avro
    import duckdb_extension_iceberg

    # Nothing downloaded: the extensions ship as files inside PyPI packages.
    connection = duckdb.connect(
        config={"autoinstall_known_extensions": False, "autoload_known_extensions": False}
    )
    for package in (duckdb_extension_avro, duckdb_extension_iceberg):
        for extension in Path(package.__file__).parent.rglob("*.duckdb_extension"):
            connection.execute(f"LOAD '{extension}'")
    pq.write_table(connection.execute(f"SELECT * FROM iceberg_scan('{metadata}')").to_arrow_table(), out)


def _iceberg_rust(metadata: str, out: Path) -> None:
    from datafusion import SessionContext
    from pyiceberg_core.datafusion import IcebergDataFusionTable

    context = SessionContext()
    context.register_table("t", IcebergDataFusionTable(["ns", "t"], metadata, {}))
    pq.write_table(context.sql("SELECT * FROM t").to_arrow_table(), out)


def _daft(metadata: str, out: Path) -> None:
    import daft
    from pyiceberg.table import StaticTable

    pq.write_table(daft.read_iceberg(StaticTable.from_metadata(metadata)).to_arrow(), out)


ENGINES: dict[str, Callable[[str, Path], None]] = {
    "duckdb": _duckdb,
    "iceberg-rust": _iceberg_rust,
    "daft": _daft,
}


def main() -> None:
    out, engines = Path(sys.argv[1]), sys.argv[2:]
    tables = json.load(sys.stdin)
    for engine in engines:
        (out / engine).mkdir(parents=True, exist_ok=True)
        for table in tables:
            try:
                ENGINES[engine](table["metadata"], out / engine / f"{table['name']}.parquet")
            except Exception:  # what a reader raised is the check's finding
                (out / engine / f"{table['name']}.error").write_text(traceback.format_exc())


if __name__ == "__main__":
    main()
