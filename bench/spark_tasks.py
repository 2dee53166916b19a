"""Spark with Iceberg 1.10's runtime (Iceberg's Java reference implementation) on Floe's tables.

Runs in ``.venv-spark`` (``make interop``: PySpark 3.5 and the Iceberg runtime jar from PyPI,
Java 17), imports nothing of Floe, and is driven by ``bench/interop.py``: a JSON request on
stdin, a JSON answer on stdout. Tasks:

- ``read``: each table's rows, as Spark reads it from its metadata file, into
  ``<out>/spark/<name>.parquet`` (or ``<name>.error``);
- ``expire``: Iceberg's own snapshot expiry (its core API) on tables of a SQL catalog that
  pyiceberg wrote, through Iceberg's JdbcCatalog over the same SQLite file;
- ``time``: seconds to read each table in full (every column, deletes applied), the fastest of
  a few reads.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from pyspark.sql import SparkSession


def session(catalog: dict[str, str] | None) -> SparkSession:
    """A local Spark with Iceberg's runtime and SQL extensions (the procedures), and, given one
    (``name``, ``db``: its SQLite file, ``warehouse``), a catalog pyiceberg's SQL catalog wrote:
    Iceberg's JdbcCatalog reads the same tables, by the same catalog name."""
    builder = (
        SparkSession.builder.master("local[2]")
        .config("spark.jars", os.environ["FLOE_SPARK_JARS"])
        .config("spark.sql.extensions", "org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", os.environ.get("FLOE_SPARK_MEMORY", "3g"))
        .config("spark.sql.session.timeZone", "UTC")
    )
    if catalog:
        prefix = f"spark.sql.catalog.{catalog['name']}"
        builder = (
            builder.config(prefix, "org.apache.iceberg.spark.SparkCatalog")
            .config(f"{prefix}.catalog-impl", "org.apache.iceberg.jdbc.JdbcCatalog")
            .config(f"{prefix}.uri", f"jdbc:sqlite:{catalog['db']}")
            .config(f"{prefix}.warehouse", catalog["warehouse"])
        )
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def read(spark: SparkSession, tables: list[dict[str, str]], out: Path) -> dict[str, Any]:
    (out / "spark").mkdir(parents=True, exist_ok=True)
    for table in tables:
        target = out / "spark" / f"{table['name']}.parquet"
        try:
            spark.read.format("iceberg").load(table["metadata"]).write.mode("overwrite").parquet(str(target))
        except Exception:  # what the reader raised is the check's finding
            (out / "spark" / f"{table['name']}.error").write_text(traceback.format_exc())
    return {}


def expire(spark: SparkSession, catalog: dict[str, str], tables: list[str]) -> dict[str, Any]:
    """Every snapshot but the current one expired by Iceberg's core API (``ExpireSnapshots``), as
    Trino and Iceberg's own maintenance call it: on a table with one branch it deletes the files
    the manifests of expired snapshots record as DELETED (Spark's procedure finds them by
    reachability instead, and does not depend on those entries). Returns how many snapshots
    each table kept."""
    jvm = spark.sparkContext._jvm
    properties = jvm.java.util.HashMap()
    properties.put("uri", f"jdbc:sqlite:{catalog['db']}")
    properties.put("warehouse", catalog["warehouse"])
    java_catalog = jvm.org.apache.iceberg.jdbc.JdbcCatalog()
    java_catalog.setConf(spark.sparkContext._jsc.hadoopConfiguration())
    java_catalog.initialize(catalog["name"], properties)
    now_ms = int(time.time() * 1000) + 60_000
    kept = {}
    for name in tables:
        table = java_catalog.loadTable(jvm.org.apache.iceberg.catalog.TableIdentifier.parse(name))
        table.expireSnapshots().expireOlderThan(now_ms).retainLast(1).commit()
        table.refresh()
        kept[name] = len(list(table.snapshots()))
    java_catalog.close()
    return kept


def timed(spark: SparkSession, tables: list[dict[str, str]], repeats: int) -> dict[str, Any]:
    """The fastest of *repeats* full reads of each table (Spark's noop sink reads every column)."""
    times = {}
    for table in tables:
        best = float("inf")
        for _ in range(repeats):
            began = time.monotonic()
            spark.read.format("iceberg").load(table["metadata"]).write.format("noop").mode("overwrite").save()
            best = min(best, time.monotonic() - began)
        times[table["name"]] = round(best, 3)
    return times


def main() -> None:
    request = json.load(sys.stdin)
    spark = session(request.get("catalog"))
    try:
        if request["task"] == "read":
            answer = read(spark, request["tables"], Path(request["out"]))
        elif request["task"] == "expire":
            answer = expire(spark, request["catalog"], request["tables"])
        else:
            answer = timed(spark, request["tables"], request.get("repeats", 3))
    finally:
        spark.stop()
    print(json.dumps(answer))


if __name__ == "__main__":
    main()
