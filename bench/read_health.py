"""Read health: what merge-on-read costs readers, and what ``floe maintain`` gives back.

A table is loaded and then takes ``--cycles`` merges of ``--batch`` random changes (as in the
merge benchmark). A full pyiceberg scan of it is timed then, again after Floe's maintenance,
and against a freshly written table holding the same rows; the three scans must return the same
rows.

    .venv/bin/python -m bench.read_health [--rows 1000000 10000000] [--batch 100000] [--cycles 50]

Prints a table and writes ``bench/results/read_health.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import load_catalog
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.table import FileScanTask, Table

from bench.merge_throughput import RESULTS, storage
from bench.merge_worker import NAMESPACE, FloeEngine
from bench.workload import change_batches, initial_batch, initial_files
from floe_cdc.core.config import MaintainConfig
from floe_cdc.lake.maintenance import maintain_table
from floe_cdc.lake.schema import POSITION_FIELD

SCANS = 5  # the median of five scans: one scan varies by a third here


def _median_seconds(read: Callable[[], pa.Table]) -> tuple[float, pa.Table]:
    """The median time of *read* over ``SCANS`` runs, and what it read."""
    timings, rows = [], None
    for _ in range(SCANS):
        began = time.perf_counter()
        rows = read()
        timings.append(time.perf_counter() - began)
    return statistics.median(timings), rows


def _scan(table: Table) -> tuple[float, pa.Table]:
    seconds, rows = _median_seconds(lambda: table.scan().to_arrow())
    return seconds, rows.drop_columns([POSITION_FIELD]).sort_by("id")


def _scan_ignoring_deletes(table: Table) -> float:
    """The same data files read without their delete files: what reading dead rows costs, apart
    from what applying the deletes costs."""
    tasks = [FileScanTask(task.file) for task in table.scan().plan_files()]
    return _median_seconds(
        lambda: ArrowScan(table.metadata, table.io, table.schema(), AlwaysTrue()).to_table(tasks)
    )[0]


def _files(table: Table) -> dict[str, int]:
    tasks = list(table.scan().plan_files())
    return {
        "data_files": len(tasks),
        "delete_files": len({d.file_path for t in tasks for d in t.delete_files}),
        "stored_rows": sum(t.file.record_count for t in tasks),
    }


def run(kind: str, rows: int, batch: int, cycles: int, files: int, seed: int) -> dict[str, Any]:
    with storage(kind) as properties:
        catalog = load_catalog("bench", **properties)
        catalog.create_namespace(NAMESPACE)
        engine = FloeEngine(catalog, "merged")
        for ids in initial_files(rows, files):
            engine.load(initial_batch(ids))
        began = time.perf_counter()
        for changes in change_batches(rows, batch, cycles, seed):
            engine.load(changes)
        merging = time.perf_counter() - began
        table = engine.table
        merged_seconds, merged_rows = _scan(table)
        merged_files = _files(table)
        without_deletes = _scan_ignoring_deletes(table)

        fresh = catalog.create_table((NAMESPACE, "fresh"), schema=table.schema())
        fresh.append(table.scan().to_arrow())
        fresh_seconds, fresh_rows = _scan(fresh)

        began = time.perf_counter()
        maintain_table(table, "merged", MaintainConfig())
        maintaining = time.perf_counter() - began
        maintained_seconds, maintained_rows = _scan(table)
        same = merged_rows.equals(fresh_rows) and maintained_rows.equals(fresh_rows)
        return {
            "storage": kind,
            "rows": rows,
            "live_rows": fresh_rows.num_rows,
            "batch": batch,
            "cycles": cycles,
            "merge_seconds": round(merging, 1),
            "maintain_seconds": round(maintaining, 1),
            "scan_seconds": {
                "fresh": round(fresh_seconds, 3),
                "after_cycles": round(merged_seconds, 3),
                "after_cycles_ignoring_deletes": round(without_deletes, 3),
                "after_maintain": round(maintained_seconds, 3),
            },
            "files": {"fresh": _files(fresh), "after_cycles": merged_files, "after_maintain": _files(table)},
            "slowdown_after_cycles": round(merged_seconds / fresh_seconds, 2),
            "slowdown_after_maintain": round(maintained_seconds / fresh_seconds, 2),
            "same_rows": same,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", nargs="+", choices=["local", "s3"], default=["local"])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    results = [
        run(kind, rows, args.batch, args.cycles, args.files, args.seed)
        for kind in args.storage
        for rows in args.rows
    ]
    print(
        f"{'storage':<7} {'table':<26} {'scan s':>7} {'x fresh':>7} {'data files':>10} {'delete files':>12}"
    )
    for result in results:
        for state in ("fresh", "after_cycles", "after_maintain"):
            seconds = result["scan_seconds"][state]
            ratio = seconds / result["scan_seconds"]["fresh"]
            counts = result["files"][state]
            label = f"after {args.cycles} cycles" if state == "after_cycles" else state.replace("_", " ")
            print(
                f"{result['storage']:<7} {result['rows']:>11,} {label:<18} {seconds:>7.3f} {ratio:>7.2f} "
                f"{counts['data_files']:>10} {counts['delete_files']:>12}"
            )
        stored, live = result["files"]["after_cycles"]["stored_rows"], result["live_rows"]
        print(
            f"same rows in all three scans: {result['same_rows']}; after {args.cycles} cycles the files hold "
            f"{stored:,} rows for {live:,} live ones, and read without applying their deletes in "
            f"{result['scan_seconds']['after_cycles_ignoring_deletes']:.3f} s; "
            f"maintain took {result['maintain_seconds']} s"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "read_health.json").write_text(json.dumps({"runs": results}, indent=2))
    print(f"written {RESULTS / 'read_health.json'}")


if __name__ == "__main__":
    main()
