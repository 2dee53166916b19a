"""Read Iceberg tables with engines no one at Floe wrote, for the interoperability test.

Runs in a virtual environment of its own (``make readers``: DuckDB 1.5 with its iceberg
extension, iceberg-rust through pyiceberg-core's DataFusion provider, daft), whose DuckDB
conflicts with the one Soda needs. It imports nothing of Floe. Input, as JSON on stdin: a list of
``{"name": ..., "metadata": <metadata JSON path>}``; output: ``<out>/<engine>/<name>.parquet``
with the rows each engine read, or ``<name>.error`` with what it raised.
"""

from __future__ import annotations

import json
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def _duckdb(metadata: str) -> pa.Table:
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
    return connection.execute(f"SELECT * FROM iceberg_scan('{metadata}')").fetch_arrow_table()


def _iceberg_rust(metadata: str) -> pa.Table:
    from datafusion import SessionContext
    from pyiceberg_core.datafusion import IcebergDataFusionTable

    context = SessionContext()
    context.register_table("t", IcebergDataFusionTable(["ns", "t"], metadata, {}))
    return context.sql("SELECT * FROM t").to_arrow_table()


def _daft(metadata: str) -> pa.Table:
    import daft
    from pyiceberg.table import StaticTable

    return daft.read_iceberg(StaticTable.from_metadata(metadata)).to_arrow()


ENGINES: dict[str, Callable[[str], pa.Table]] = {
    "duckdb": _duckdb,
    "iceberg-rust": _iceberg_rust,
    "daft": _daft,
}


def main() -> None:
    out = Path(sys.argv[1])
    tables = json.load(sys.stdin)
    for engine, read in ENGINES.items():
        (out / engine).mkdir(parents=True, exist_ok=True)
        for table in tables:
            try:
                pq.write_table(read(table["metadata"]), out / engine / f"{table['name']}.parquet")
            except Exception:  # what a reader raised is the test's finding
                (out / engine / f"{table['name']}.error").write_text(traceback.format_exc())


if __name__ == "__main__":
    main()
