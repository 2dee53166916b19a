"""Merge throughput: Floe's merge against pyiceberg's ``Table.upsert``, side by side in one run.

For each storage (a local folder behind a SQLite catalog, and S3 behind an Iceberg REST catalog,
SeaweedFS started for the run) and each table size, both engines load the same table (10 files of
consecutive ids) and apply the same batches of random keys (50% updates, 10% deletes, 40%
inserts), one engine after the other, each in a process of its own (`bench/merge_worker.py`)
so that its peak memory is its own. Both tables must end with the same rows.

    .venv/bin/python -m bench.merge_throughput [--sizes 1000000 10000000] [--with-100m]
        [--storage local s3] [--batch 100000] [--batches 3]

Prints a table and writes ``bench/results/merge_throughput.json`` and a chart of throughput
against table size, ``bench/results/merge_throughput.png``. Compare ratios, not absolute
times: a ratio holds on a noisy machine.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pyiceberg.catalog import load_catalog

from bench.merge_worker import NAMESPACE
from floe_cdc.lake.schema import POSITION_FIELD

RESULTS = Path(__file__).parent / "results"
ENGINES = ("floe", "pyiceberg_upsert")
# Ports of the object store the benchmark starts (apart from the local stack's and the tests').
BENCH_PORTS = {"s3_port": 36333, "iceberg_port": 36181, "object_store_port_base": 36900}


@contextlib.contextmanager
def storage(kind: str) -> Iterator[dict[str, str]]:
    """pyiceberg catalog properties of a fresh warehouse of *kind*, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="floe-bench-"))
    try:
        if kind == "local":
            yield {
                "type": "sql",
                "uri": f"sqlite:///{directory}/catalog.db",
                "warehouse": str(directory / "wh"),
            }
            return
        from floe_cdc.stack.object_store import LocalObjectStore
        from floe_cdc.stack.settings import StackSettings

        store = LocalObjectStore(StackSettings(dir=directory, **BENCH_PORTS))
        store.start()
        try:
            yield store.settings.catalog_properties()
        finally:
            store.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _worker(arguments: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.merge_worker", json.dumps(arguments)],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parent.parent,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{arguments['engine']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def _same_rows(catalog_properties: dict[str, str], first: str, second: str) -> bool:
    catalog = load_catalog("bench", **catalog_properties)  # a SQL catalog keeps tables per name
    a = catalog.load_table((NAMESPACE, first)).scan().to_arrow().drop_columns([POSITION_FIELD]).sort_by("id")
    b = catalog.load_table((NAMESPACE, second)).scan().to_arrow().sort_by("id")
    # ChunkedArray.equals compares nulls too (pc.equal would yield null there, which pc.all skips).
    return a.num_rows == b.num_rows and all(
        a[c].combine_chunks().equals(b[c].cast(a[c].type).combine_chunks()) for c in a.column_names
    )


def measure(kind: str, rows: int, batch: int, batches: int, files: int, seed: int) -> dict[str, Any]:
    """Both engines on one storage and one table size."""
    with storage(kind) as catalog:
        common = {
            "rows": rows,
            "batch": batch,
            "batches": batches,
            "files": files,
            "seed": seed,
            "catalog": catalog,
        }
        tables = {engine: f"{engine}_{rows}" for engine in ENGINES}
        engines = {
            engine: _worker({**common, "engine": engine, "table": tables[engine]}) for engine in ENGINES
        }
        same = _same_rows(catalog, tables["floe"], tables["pyiceberg_upsert"])
    floe, upsert = engines["floe"], engines["pyiceberg_upsert"]
    return {
        "storage": kind,
        "rows": rows,
        "files": files,
        "same_result": same,
        "engines": engines,
        "events_per_second": {engine: engines[engine]["events_per_second"] for engine in ENGINES},
        "speedup": round(floe["events_per_second"] / upsert["events_per_second"], 1),
    }


def _goals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's goals, as measured by this run (None where the run did not measure it)."""
    local = {r["rows"]: r for r in runs if r["storage"] == "local"}
    floe = {rows: r["engines"]["floe"] for rows, r in local.items()}
    time_of = {rows: sum(f["seconds_per_batch"]) for rows, f in floe.items()}
    ten_m = floe.get(10_000_000)
    return {
        "events_per_second_at_10m_at_least_100k": ten_m and ten_m["events_per_second"] >= 100_000,
        "peak_rss_at_10m_under_1500_mb": ten_m and ten_m["peak_rss_mb"] < 1500,
        "time_10m_over_1m_at_most_2": (
            round(time_of[10_000_000] / time_of[1_000_000], 2)
            if {1_000_000, 10_000_000} <= set(time_of)
            else None
        ),
        "time_100m_over_1m_at_most_4": (
            round(time_of[100_000_000] / time_of[1_000_000], 2)
            if {1_000_000, 100_000_000} <= set(time_of)
            else None
        ),
        "write_amplification_at_most_3": max(r["engines"]["floe"]["write_amplification"] for r in runs),
        "speedup_at_least_25": min(r["speedup"] for r in runs),
    }


def _chart(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    for kind in sorted({r["storage"] for r in runs}):
        mine = sorted((r for r in runs if r["storage"] == kind), key=lambda r: r["rows"])
        for engine, style in zip(ENGINES, ("o-", "s--"), strict=True):
            axes.plot(
                [r["rows"] for r in mine],
                [r["events_per_second"][engine] for r in mine],
                style,
                label=f"{engine} ({kind})",
            )
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("table rows")
    axes.set_ylabel("change events merged per second")
    axes.set_title("Merging batches of 100k changes (2 cores)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--with-100m", action="store_true", help="also a 100M-row table (local only)")
    parser.add_argument("--storage", nargs="+", choices=["local", "s3"], default=["local", "s3"])
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    plan = [(kind, rows) for kind in args.storage for rows in args.sizes]
    if args.with_100m:
        plan.append(("local", 100_000_000))
    print(f"batches of {args.batch:,} changes (50% updates, 10% deletes, 40% inserts, random keys)")
    print(
        f"{'storage':<7} {'rows':>12} {'engine':<17} {'events/s':>9} {'s/batch':>8} {'RSS MB':>7} "
        f"{'MB written':>10} {'WA':>6} {'index s':>8} {'index B/row':>11}"
    )
    runs = []
    for kind, rows in plan:
        run = measure(kind, rows, args.batch, args.batches, args.files, args.seed)
        runs.append(run)
        for engine in ENGINES:
            e = run["engines"][engine]
            per_batch = sum(e["seconds_per_batch"]) / len(e["seconds_per_batch"])
            print(
                f"{kind:<7} {rows:>12,} {engine:<17} {e['events_per_second']:>9,} {per_batch:>8.2f} "
                f"{e['peak_rss_mb']:>7} {e['bytes_written'] / 1e6:>10.1f} {e['write_amplification']:>6} "
                f"{e['index_build_seconds']:>8} {e['index_bytes_per_live_row'] or '':>11}"
            )
        print(f"{'':<20} speed-up {run['speedup']}x, same rows in both tables: {run['same_result']}")
    headline = max((r for r in runs if r["storage"] == "local"), key=lambda r: r["rows"], default=runs[0])
    result = {
        "batch": args.batch,
        "batches": args.batches,
        "mix": "50% updates, 10% deletes, 40% inserts",
        # The largest local table's figures, under the keys earlier results used.
        "rows": headline["rows"],
        "events_per_second": headline["events_per_second"],
        "same_result": all(r["same_result"] for r in runs),
        "goals": _goals(runs),
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "merge_throughput.json").write_text(json.dumps(result, indent=2))
    _chart(runs, RESULTS / "merge_throughput.png")
    print(json.dumps(result["goals"], indent=2))
    print(f"written {RESULTS / 'merge_throughput.json'} and merge_throughput.png")


if __name__ == "__main__":
    main()
