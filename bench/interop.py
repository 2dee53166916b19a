"""Floe's tables and Iceberg's Java reference implementation (through Spark 3.5 and Iceberg 1.10).

    make interop        # installs .venv-spark, builds bench/spark's jar, then runs this
    .venv/bin/python -m bench.interop [--rows 10000000] [--cycles 50] [--changes 100000]

Three checks, printed as a table and written to ``bench/results/interop.json``:

1. **Rows**: Spark reads every step of ``tests/interop_tables.py`` (merges, a column added, a
   truncate, ``maintain``, a re-snapshot, a composite key), compared with the source row by row.
2. **Expiry**: on those tables and one with a straight history (merges, ``maintain``, merges),
   after ``maintain`` (which here expires nothing), Iceberg's own snapshot expiry (its core
   ``ExpireSnapshots``, through Iceberg's JdbcCatalog over the SQLite catalog pyiceberg wrote)
   keeps the current snapshot only; the data, delete and manifest files left on storage that no
   snapshot references are counted. Metadata JSON files are not expiry's to delete.
3. **Read cost of each delete layout**: a table of ``--rows`` rows after ``--cycles`` merges of
   ``--changes`` random-key changes (as replicate merges, worn files rewritten in passing, no
   ``maintain``) with position delete files scoped to a partition (one per commit) and to a data
   file (``write.delete.granularity``), and the same rows written once into a fresh table: the
   fastest of three full reads of each by Spark and by pyiceberg, and the mean merge time, side by
   side in one run.

Spark runs in ``.venv-spark`` (``bench/spark_tasks.py``): its Java needs the runtime jar from
PyPI, the Jackson ``bench/spark/pom.xml`` builds, and Debian's SQLite JDBC driver.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import Table

from bench.merge_worker import NAMESPACE, FloeEngine
from bench.workload import change_batches, initial_batch, initial_files
from floe_cdc.core.config import MaintainConfig
from floe_cdc.lake.maintenance import maintain_table
from floe_cdc.lake.merge import DELETE_GRANULARITY
from floe_cdc.lake.pyiceberg_adapter import file_key, live_files
from tests.interop_tables import CATALOG, differences, write_tables

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SPARK_PYTHON = ROOT / ".venv-spark" / "bin" / "python"
JACKSON = ROOT / "bench" / "spark" / "target" / "iceberg-jackson-shaded-1.0.jar"
SQLITE_JDBC = Path("/usr/share/java/sqlite-jdbc.jar")
# Position delete files scoped to a partition (one per commit) or to a data file (v2), or
# deletion vectors (v3: one per data file, merged).
LAYOUTS = ("partition", "file", "vectors")


def _spark_jars() -> str:
    runtime = sorted(
        (ROOT / ".venv-spark").glob("lib/python*/site-packages/snowpark_connect_deps_iceberg/jars")
    )
    jars = [*(p / "iceberg-spark-runtime-3.5_2.12-1.10.2.jar" for p in runtime[:1]), JACKSON, SQLITE_JDBC]
    missing = [str(j) for j in jars if not j.exists()] or ([] if runtime else ["the Iceberg runtime jar"])
    if missing or not SPARK_PYTHON.exists():
        absent = ", ".join(missing) or str(SPARK_PYTHON)
        sys.exit(f"error: Spark for this check is not installed ({absent}): run make interop")
    return ",".join(str(j) for j in jars)


def spark(request: dict[str, Any]) -> dict[str, Any]:
    """One task of ``bench/spark_tasks.py``, in Spark's own environment."""
    answer = subprocess.run(
        [str(SPARK_PYTHON), str(ROOT / "bench" / "spark_tasks.py")],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env={**os.environ, "FLOE_SPARK_JARS": _spark_jars()},
        timeout=3600,
    )
    if answer.returncode:
        sys.exit(f"error: Spark's {request['task']} failed:\n{answer.stderr[-3000:]}")
    return json.loads(answer.stdout.strip().splitlines()[-1])


def unreferenced(table: Table) -> list[str]:
    """Data, delete and manifest files under the table's location that no snapshot references
    (a file a kept snapshot records as deleted counts as referenced: a later expiry removes it)."""
    referenced: set[str] = set()
    for snapshot in table.metadata.snapshots:
        referenced.add(snapshot.manifest_list)
        for manifest in snapshot.manifests(table.io):
            referenced.add(manifest.manifest_path)
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=False):
                referenced.add(entry.data_file.file_path)
    location = Path(table.location().removeprefix("file://"))
    # Metadata files (and the checksums Java's Hadoop file IO writes beside them) are not expiry's.
    present = {p for p in location.rglob("*") if p.is_file() and ".metadata.json" not in p.name}
    return sorted(str(p) for p in present if p.as_uri() not in referenced and str(p) not in referenced)


def _maintained(catalog: SqlCatalog, format_version: int) -> None:
    """A table with a straight history (which Java's expiry cleans up incrementally, trusting the
    manifests' DELETED entries): merges, ``maintain`` with every snapshot kept, merges again."""
    engine = FloeEngine(catalog, "maintained", format_version)
    engine.load(initial_batch(np.arange(20_000, dtype=np.int64)))
    batches = change_batches(20_000, 2_000, 12, seed=29)
    for batch in itertools.islice(batches, 8):
        engine.apply(engine.receive(batch))
    settings = MaintainConfig(
        target_file_size_mb=8, delete_ratio=0.05, snapshot_retention_hours=1000, orphan_min_age_hours=1000
    )
    assert maintain_table(engine.table, "maintained", settings).delete_files_removed > 0
    for batch in batches:
        engine.apply(engine.receive(batch))


def check_rows_and_expiry(root: Path, format_version: int) -> dict[str, Any]:
    steps = write_tables(root, format_version)
    spark(
        {
            "task": "read",
            "tables": [{"name": s.name, "metadata": s.metadata} for s in steps],
            "out": str(root),
        }
    )
    wrong = differences("spark", steps, root)
    catalog = SqlCatalog(CATALOG, uri=f"sqlite:///{root}/catalog.db", warehouse=(root / "wh").as_uri())
    catalog.create_namespace(NAMESPACE)
    _maintained(catalog, format_version)
    names = ["ns.items", "ns.lines", f"{NAMESPACE}.maintained"]
    before = {name: sorted(catalog.load_table(name).scan().to_arrow().to_pylist(), key=str) for name in names}
    expired = spark(
        {
            "task": "expire",
            "catalog": {"name": CATALOG, "db": str(root / "catalog.db"), "warehouse": (root / "wh").as_uri()},
            "tables": names,
        }
    )
    # Expiry must delete nothing a kept snapshot reads: the tables read the same after it.
    changed = [
        n for n in names if sorted(catalog.load_table(n).scan().to_arrow().to_pylist(), key=str) != before[n]
    ]
    left = {name: unreferenced(catalog.load_table(name)) for name in names}
    return {
        "steps": len(steps),
        "steps_read_differently": wrong,
        "snapshots_kept": expired,
        "tables_changed_by_expiry": changed,
        "unreferenced_files_left": {name: len(files) for name, files in left.items()},
        "unreferenced_examples": {name: files[:5] for name, files in left.items()},
    }


def _worn(catalog: SqlCatalog, layout: str, rows: int, cycles: int, changes: int) -> tuple[Table, float]:
    """A table of *rows* rows after *cycles* merges with delete files of *layout*; the mean
    seconds a merge took."""
    engine = FloeEngine(catalog, f"worn_{layout}", 3 if layout == "vectors" else 2)
    for ids in initial_files(rows, max(1, rows // 1_000_000)):
        engine.load(initial_batch(ids))
    if layout != "vectors":
        with engine.table.transaction() as tx:
            tx.set_properties({DELETE_GRANULARITY: layout})
    engine.prepare()
    seconds = 0.0
    for batch in change_batches(rows, changes, cycles, seed=28):
        received = engine.receive(batch)
        began = time.monotonic()
        engine.apply(received)
        seconds += time.monotonic() - began
    return engine.table, seconds / cycles


def _pyiceberg_seconds(table: Table, repeats: int = 3) -> float:
    best = float("inf")
    for _ in range(repeats):
        began = time.monotonic()
        table.scan().to_arrow()
        best = min(best, time.monotonic() - began)
    return round(best, 3)


def _files(table: Table) -> dict[str, int]:
    """Live data files, and delete files (a deletion vector counts as one)."""
    tasks = live_files(table.metadata, table.io)
    deletes = {file_key(d) for t in tasks for d in t.delete_files}
    return {"data_files": len(tasks), "delete_files": len(deletes)}


def check_read_cost(root: Path, rows: int, cycles: int, changes: int) -> dict[str, Any]:
    """Each delete layout's table after the merges, and the same rows written once, read in full
    by Spark and by pyiceberg."""
    catalog = SqlCatalog("bench", uri=f"sqlite:///{root}/catalog.db", warehouse=(root / "wh").as_uri())
    catalog.create_namespace(NAMESPACE)
    tables, merge_seconds = {}, {}
    for layout in LAYOUTS:
        tables[layout], merge_seconds[layout] = _worn(catalog, layout, rows, cycles, changes)
    fresh = catalog.create_table((NAMESPACE, "fresh"), schema=tables[LAYOUTS[0]].schema())
    fresh.append(tables[LAYOUTS[0]].scan().to_arrow())
    tables["fresh"] = fresh
    spark_seconds = spark(
        {"task": "time", "tables": [{"name": n, "metadata": t.metadata_location} for n, t in tables.items()]}
    )
    result: dict[str, Any] = {"rows": rows, "cycles": cycles, "changes_per_cycle": changes}
    for name, table in tables.items():
        result[name] = {
            **_files(table),
            "merge_seconds": round(merge_seconds[name], 3) if name in merge_seconds else None,
            "spark_seconds": spark_seconds[name],
            "spark_ratio": round(spark_seconds[name] / spark_seconds["fresh"], 2),
            "pyiceberg_seconds": _pyiceberg_seconds(table),
        }
    return result


def _print(result: dict[str, Any]) -> None:
    cost = result["read_cost"]
    fresh = cost["fresh"]
    lines = []
    for version, rows in result["rows_and_expiry"].items():
        read = rows["steps"] - len(rows["steps_read_differently"])
        lines.append(
            (f"{version}: Spark reads every step as the source", f"{read} of {rows['steps']}", "all")
        )
        left = json.dumps(rows["unreferenced_files_left"])
        lines.append((f"{version}: files no snapshot references, after Java's expiry", left, "0"))
    for layout in LAYOUTS:
        worn = cost[layout]
        lines.append(
            (
                f"{cost['rows']:,} rows, {cost['cycles']} merges, {layout} ({worn['delete_files']} files)",
                f"Spark {worn['spark_seconds']} s ({worn['spark_ratio']}x fresh), pyiceberg "
                f"{worn['pyiceberg_seconds']} s, merge {worn['merge_seconds']} s",
                "Spark <= 2x",
            )
        )
    lines.append(
        (
            "the same rows written fresh",
            f"Spark {fresh['spark_seconds']} s, pyiceberg {fresh['pyiceberg_seconds']} s",
            "",
        )
    )
    width = max(len(line[0]) for line in lines)
    for check, measured, goal in lines:
        print(f"{check:<{width}}  {measured:<64}  {goal}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--changes", type=int, default=100_000)
    parser.add_argument("--name", default="interop")
    args = parser.parse_args()
    _spark_jars()
    root = Path(tempfile.mkdtemp(prefix="floe-interop-"))
    try:
        (root / "cost").mkdir()
        result = {
            "rows_and_expiry": {
                f"v{version}": check_rows_and_expiry(root / f"tables-v{version}", version)
                for version in (2, 3)
            },
            "read_cost": check_read_cost(root / "cost", args.rows, args.cycles, args.changes),
        }
    finally:
        shutil.rmtree(root, ignore_errors=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    _print(result)
    print(f"written {RESULTS / args.name}.json")


if __name__ == "__main__":
    main()
