"""Merge throughput: Floe's merge against pyiceberg's ``Table.upsert``, side by side in one run.

For each storage (a local folder behind a SQLite catalog; S3 behind an Iceberg REST catalog,
SeaweedFS started for the run; and ``s3-sql``, SeaweedFS's S3 behind a SQLite catalog, for v3
tables: SeaweedFS's table buckets refuse Puffin files), each table size and each layout
(unpartitioned, ``bucket(16, id)``, ``day(placed)``), Floe loads a table (10 files of consecutive
ids) and applies batches of random keys (50% updates, 10% deletes, 40% inserts); on the
unpartitioned table pyiceberg's upsert applies the same batches, one engine after the other, each
in a process of its own (`bench/merge_worker.py`) so that its peak memory is its own. Both tables
must end with the same rows. Afterwards ``floe maintain`` rewrites Floe's table into its sort
order (the key), and pyiceberg scans filtered on one key count the share of data files a reader
opens. Each merge process first applies ``--warmup`` batches it does not time (its connections to
the object store open then, once per process), for every engine and layout alike.

    .venv/bin/python -m bench.merge_throughput [--sizes 1000000 10000000] [--with-100m]
        [--storage local s3 s3-sql] [--format-version 2] [--layouts plain bucket day]
        [--batch 100000] [--batches 5] [--warmup 1]
        [--upsert-timeout 1800] [--upsert-max-rows N] [--name merge_throughput]

Prints a table and writes ``bench/results/<name>.json`` and a chart of throughput against table
size, ``bench/results/<name>.png``. Compare ratios, not absolute
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
# The table layouts measured: unpartitioned, 16 buckets of the key, and the day of a timestamp
# whose changes spread over 30 days (an update moves its row to another day).
LAYOUTS: dict[str, list[str] | None] = {"plain": None, "bucket": ["bucket(16, id)"], "day": ["day(placed)"]}
STORAGES = ("local", "s3", "s3-sql")
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
            rest = store.settings.catalog_properties()
            if kind == "s3":
                yield rest
                return
            yield {
                "type": "sql",
                "uri": f"sqlite:///{directory}/catalog.db",
                "warehouse": f"s3://{store.settings.reports_bucket}/warehouse",  # a plain bucket
                **{key: value for key, value in rest.items() if key.startswith("s3.")},
            }
        finally:
            store.stop()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _phase(arguments: dict[str, Any], timeout: float | None) -> dict[str, Any] | None:
    """One phase of one engine in a process of its own; None when it outlasts *timeout* seconds
    (the process is killed)."""
    try:
        done = subprocess.run(
            [sys.executable, "-m", "bench.merge_worker", json.dumps(arguments)],
            capture_output=True,
            text=True,
            check=False,
            cwd=Path(__file__).parent.parent,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        return None
    if done.returncode != 0:
        raise RuntimeError(f"{arguments['engine']} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def _worker(arguments: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    """One engine: the table loaded in one process, merged into in another (whose memory is
    then the merge's alone); ``{"finished": False}`` when the merging outlasts *timeout* seconds."""
    loaded = _phase({**arguments, "phase": "load"}, None)
    merged = _phase({**arguments, "phase": "merge"}, timeout)
    if merged is None:
        return {"finished": False, "timeout_seconds": timeout}
    return {"finished": True, **loaded, **merged}


def _same_rows(catalog_properties: dict[str, str], first: str, second: str) -> bool:
    catalog = load_catalog("bench", **catalog_properties)  # a SQL catalog keeps tables per name
    a = catalog.load_table((NAMESPACE, first)).scan().to_arrow().drop_columns([POSITION_FIELD]).sort_by("id")
    b = catalog.load_table((NAMESPACE, second)).scan().to_arrow().sort_by("id")
    # ChunkedArray.equals compares nulls too (pc.equal would yield null there, which pc.all skips).
    return a.num_rows == b.num_rows and all(
        a[c].combine_chunks().equals(b[c].cast(a[c].type).combine_chunks()) for c in a.column_names
    )


def measure(
    kind: str,
    rows: int,
    batch: int,
    batches: int,
    warmup: int,
    files: int,
    seed: int,
    layout: str = "plain",
    upsert_timeout: float | None = None,
    upsert: bool = True,
    format_version: int = 2,
) -> dict[str, Any]:
    """Floe on one storage, table size and layout, and pyiceberg's upsert beside it on the
    unpartitioned table (given *upsert_timeout* seconds, None for no limit)."""
    with storage(kind) as catalog:
        common = {
            "rows": rows,
            "batch": batch,
            "batches": batches,
            "warmup": warmup,
            "files": files,
            "seed": seed,
            "catalog": catalog,
        }
        tables = {engine: f"{engine}_{rows}" for engine in ENGINES}
        engines = {
            "floe": _worker(
                {
                    **common,
                    "engine": "floe",
                    "table": tables["floe"],
                    "partition_by": LAYOUTS[layout],
                    "format_version": format_version,
                }
            )
        }
        if layout == "plain" and upsert:
            arguments = {**common, "engine": "pyiceberg_upsert", "table": tables["pyiceberg_upsert"]}
            engines["pyiceberg_upsert"] = _worker(arguments, upsert_timeout)
        finished = "pyiceberg_upsert" in engines and engines["pyiceberg_upsert"]["finished"]
        same = _same_rows(catalog, tables["floe"], tables["pyiceberg_upsert"]) if finished else None
    floe, upsert = engines["floe"], engines.get("pyiceberg_upsert")
    return {
        "storage": kind,
        "rows": rows,
        "layout": layout,
        "format_version": format_version,
        "partition_by": LAYOUTS[layout],
        "files": files,
        "same_result": same,
        "engines": engines,
        "events_per_second": {engine: run.get("events_per_second") for engine, run in engines.items()},
        "speedup": round(floe["events_per_second"] / upsert["events_per_second"], 1) if finished else None,
    }


def _goals(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The goals of the merge, as measured by this run (None where the run did not measure them)."""
    floe = {(r["storage"], r["layout"], r["rows"]): r["engines"]["floe"] for r in runs}
    per_batch = {key: sum(f["seconds_per_batch"]) / len(f["seconds_per_batch"]) for key, f in floe.items()}

    def ratio(over: tuple, under: tuple) -> float | None:
        return round(per_batch[over] / per_batch[under], 2) if {over, under} <= set(per_batch) else None

    hundred = floe.get(("local", "plain", 100_000_000))
    upserts = [r["speedup"] for r in runs if r["speedup"] is not None]
    return {
        "events_per_second_at_100m_at_least_150k": hundred and hundred["events_per_second"] >= 150_000,
        "time_100m_over_1m_at_most_4": ratio(("local", "plain", 100_000_000), ("local", "plain", 1_000_000)),
        "peak_rss_at_100m_at_most_3000_mb": hundred and hundred["peak_rss_mb"] <= 3000,
        "index_bytes_per_live_row_at_most_24": max(f["index_bytes_per_live_row"] for f in floe.values()),
        "partitioned_over_plain_at_10m_at_most_1_5": {
            f"{kind} {layout}": ratio((kind, layout, 10_000_000), (kind, "plain", 10_000_000))
            for kind in STORAGES
            for layout in LAYOUTS
            if layout != "plain"
        },
        # Per size of the sorted (unpartitioned) table: a 1M-row table is one file after maintain.
        "lookup_files_share_at_most_0_125": {
            f"{kind} {rows}": f["lookup_files_share"]
            for (kind, layout, rows), f in floe.items()
            if layout == "plain"
        },
        "write_amplification": max(f["write_amplification"] for f in floe.values()),
        "speedup_over_upsert_min": min(upserts) if upserts else None,
    }


def _chart(runs: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, axes = pyplot.subplots(figsize=(7, 4.5))
    lines: dict[str, list[tuple[int, float]]] = {}
    for r in runs:
        for engine, rate in r["events_per_second"].items():
            if rate:
                label = f"{engine} ({r['storage']}{'' if r['layout'] == 'plain' else ', ' + r['layout']})"
                lines.setdefault(label, []).append((r["rows"], rate))
    for label, points in sorted(lines.items()):
        points.sort()
        style = "s--" if label.startswith("pyiceberg") else "o-"
        axes.plot([p[0] for p in points], [p[1] for p in points], style, label=label)
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("table rows")
    axes.set_ylabel("change events merged per second")
    axes.set_title("Merging batches of 100k changes (2 cores)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _print(run: dict[str, Any]) -> None:
    for engine, e in run["engines"].items():
        where = f"{run['storage']:<7} {run['rows']:>12,} {run['layout']:<7} {engine:<17}"
        if not e["finished"]:
            print(f"{where} did not finish within {e['timeout_seconds']:.0f} s")
            continue
        per_batch = sum(e["seconds_per_batch"]) / len(e["seconds_per_batch"])
        lookup = e.get("lookup_files_share")
        print(
            f"{where} {e['events_per_second']:>9,} {per_batch:>8.2f} {e['peak_rss_mb']:>7} "
            f"{e['write_amplification']:>6} {e['index_build_seconds']:>8} "
            f"{e['index_bytes_per_live_row'] or '':>8} {'' if lookup is None else lookup:>7} "
            f"{e['objects_per_batch']:>7}"
        )
    if run["speedup"] is not None:
        print(f"{'':<20} speed-up {run['speedup']}x, same rows in both tables: {run['same_result']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--with-100m", action="store_true", help="also a 100M-row table (local only)")
    parser.add_argument("--storage", nargs="+", choices=STORAGES, default=["local", "s3"])
    parser.add_argument(
        "--format-version", type=int, choices=[2, 3], default=2, help="of Floe's tables (3: deletion vectors)"
    )
    parser.add_argument("--layouts", nargs="+", choices=list(LAYOUTS), default=list(LAYOUTS))
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--batches", type=int, default=5, help="timed batches per merge")
    parser.add_argument("--warmup", type=int, default=1, help="batches applied first, not timed")
    parser.add_argument("--files", type=int, default=10)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--upsert-timeout", type=float, default=1800, help="seconds pyiceberg's upsert gets per table"
    )
    parser.add_argument(
        "--upsert-max-rows", type=int, default=None, help="pyiceberg's upsert only on tables up to this size"
    )
    parser.add_argument("--name", default="merge_throughput", help="results file name, without extension")
    args = parser.parse_args()
    plan = [(kind, rows, layout) for kind in args.storage for rows in args.sizes for layout in args.layouts]
    if args.with_100m:
        plan.append(("local", 100_000_000, "plain"))
    print(f"batches of {args.batch:,} changes (50% updates, 10% deletes, 40% inserts, random keys)")
    print(
        f"{'storage':<7} {'rows':>12} {'layout':<7} {'engine':<17} {'events/s':>9} {'s/batch':>8} "
        f"{'RSS MB':>7} {'WA':>6} {'index s':>8} {'B/row':>8} {'lookup':>7} {'objects':>7}"
    )
    runs = []
    for kind, rows, layout in plan:
        upsert = args.upsert_max_rows is None or rows <= args.upsert_max_rows
        run = measure(
            kind,
            rows,
            args.batch,
            args.batches,
            args.warmup,
            args.files,
            args.seed,
            layout,
            args.upsert_timeout,
            upsert,
            args.format_version,
        )
        runs.append(run)
        _print(run)
    headline = max((r for r in runs if r["storage"] == "local"), key=lambda r: r["rows"], default=runs[0])
    result = {
        "batch": args.batch,
        "batches": args.batches,
        "warmup": args.warmup,
        "mix": "50% updates, 10% deletes, 40% inserts",
        # The largest local table's figures, under the keys earlier results used.
        "rows": headline["rows"],
        "events_per_second": headline["events_per_second"],
        "same_result": all(r["same_result"] is not False for r in runs),
        "goals": _goals(runs),
        "runs": runs,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2))
    _chart(runs, RESULTS / f"{args.name}.png")
    print(json.dumps(result["goals"], indent=2))
    print(f"written {RESULTS / args.name}.json and .png")


if __name__ == "__main__":
    main()
