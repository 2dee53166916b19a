"""The first load of a table: Floe's direct load against Debezium's snapshot, side by side in one run.

A stack of its own (own ports and state folder) is started, and two databases get the same
``--rows`` rows. One source loads with ``initial_load: direct`` (``floe connectors apply`` reads
the table into Iceberg in chunks, then starts the connector); the other with Debezium's snapshot
(``floe connectors apply``, then ``floe replicate`` until Iceberg holds every row). Each path runs
in processes of its own; its time is from the start of apply until the commit that holds the
last row (read from the snapshot's own timestamp), and its peak RSS is the largest of its Floe
processes (Kafka Connect's JVM is not counted). When the commands are done is shown beside it:
the direct path starts its connector after its last commit.

    .venv/bin/python -m bench.initial_load [--rows 10000000] [--chunk-rows 100000] [--paths direct]

Prints a table and writes ``bench/results/initial_load.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from bench.merge_throughput import RESULTS
from floe_cdc.stack.settings import StackSettings
from floe_cdc.stack.stack import LocalStack

PROJECT_DIR = Path(__file__).parent.parent
FLOE = Path(sys.executable).parent / "floe"
PORTS = {
    "pg_port": 47432,
    "kafka_port": 49092,
    "connect_port": 48083,
    "prefect_port": 44200,
    "s3_port": 47333,
    "iceberg_port": 47181,
    "object_store_port_base": 47900,
}
TABLE = (
    "CREATE TABLE orders (id bigint PRIMARY KEY, customer text, amount numeric(12,2), qty int, "
    "status varchar(16), created timestamptz)"
)
ROWS = (
    "INSERT INTO orders SELECT g, 'customer ' || (g % 100000), (g % 100000) * 0.37, g % 50, "
    "(ARRAY['new','paid','shipped','returned'])[g % 4 + 1], "
    "'2026-01-01'::timestamptz + g * interval '1 second' "
    "FROM generate_series({start}, {end}) g"
)


def _seed(stack: LocalStack, database: str, rows: int) -> None:
    stack.postgres.ensure_database(database)
    conn = stack.postgres.connect(database)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute("DROP TABLE IF EXISTS orders")
            cur.execute(TABLE)
            for start in range(1, rows + 1, 1_000_000):
                cur.execute(ROWS.format(start=start, end=min(start + 999_999, rows)))
            cur.execute("VACUUM ANALYZE orders")
    finally:
        conn.close()


def _config(stack: LocalStack, directory: Path, name: str, direct: bool, chunk_rows: int) -> Path:
    s = stack.settings
    source: dict[str, Any] = {
        "name": name,
        "port": s.pg_port,
        "database": f"floe_{name}",
        "user": s.pg_user,
        "password": s.pg_password.get_secret_value(),
        "tables": ["public.orders"],
    }
    if direct:
        source["initial_load"] = "direct"
    document = {
        "sources": [source],
        "kafka": {"bootstrap_servers": s.kafka_bootstrap},
        "connect": {"url": s.connect_url},
        "iceberg": {"catalog": s.catalog_properties(), "namespace": name},
        "load": {"chunk_rows": chunk_rows},
    }
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _run(args: list[str], env: dict[str, str]) -> int:
    """Run ``floe`` *args*; its peak RSS in MB (from its own rusage, so other processes do not count)."""
    with tempfile.TemporaryFile("w+") as output:
        process = subprocess.Popen([str(FLOE), *args], cwd=PROJECT_DIR, env=env, stdout=output, stderr=output)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            output.seek(0)
            raise SystemExit(f"floe {' '.join(args)} failed:\n{output.read()[-4000:]}")
    return round(usage.ru_maxrss / 1024)  # KiB on Linux


def _loaded_at(stack: LocalStack, namespace: str, rows: int) -> float | None:
    """When (Unix seconds) the commit that brought the table to *rows* rows landed; None before."""
    from pyiceberg.catalog import load_catalog

    catalog = load_catalog("bench", **stack.settings.catalog_properties())
    try:
        table = catalog.load_table((namespace, "orders"))
    except Exception:  # not created yet
        return None
    for snapshot in sorted(table.snapshots(), key=lambda s: s.timestamp_ms):
        if snapshot.summary is not None and int(snapshot.summary.get("total-records") or 0) >= rows:
            return snapshot.timestamp_ms / 1000
    return None


def _measure(stack: LocalStack, path: Path, name: str, rows: int, env: dict[str, str]) -> dict[str, Any]:
    """Seconds from the start of apply until the commit that holds every row, the seconds until
    Floe's commands are done (the direct path starts its connector after the load), and the peak
    RSS of Floe's processes."""
    start, started = time.time(), time.monotonic()
    peaks = [_run(["connectors", "apply", "--config", str(path)], env)]
    while (loaded := _loaded_at(stack, name, rows)) is None:
        peaks.append(_run(["replicate", "--config", str(path)], env))
    seconds = loaded - start
    return {
        "seconds": round(seconds, 1),
        "rows_per_second": round(rows / seconds),
        "command_seconds": round(time.monotonic() - started, 1),
        "peak_rss_mb": max(peaks),
    }


def run(rows: int, chunk_rows: int, paths: list[str]) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="floe-initial-load-"))
    stack = LocalStack(StackSettings(dir=directory / "stack", workers=0, **PORTS), PROJECT_DIR)
    try:
        stack.up()
        env = {**os.environ, **stack.settings.prefect_client_env()}
        results: dict[str, Any] = {"rows": rows, "chunk_rows": chunk_rows}
        for name in paths:
            direct = name == "direct"
            _seed(stack, f"floe_{name}", rows)
            path = _config(stack, directory, name, direct, chunk_rows)
            results[name] = _measure(stack, path, name, rows, env)
        if len(paths) == 2:
            results["speedup"] = round(
                results["direct"]["rows_per_second"] / results["debezium"]["rows_per_second"], 1
            )
        return results
    finally:
        stack.down()
        shutil.rmtree(directory, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--chunk-rows", type=int, default=100_000)
    parser.add_argument(
        "--paths", default="debezium,direct", help="the paths to run; the JSON is written only for both"
    )
    arguments = parser.parse_args()
    paths = arguments.paths.split(",")
    result = run(arguments.rows, arguments.chunk_rows, paths)
    print("| path | rows | seconds to the last row | rows/s | commands done | peak RSS |")
    print("|---|---|---|---|---|---|")
    for name in paths:
        r = result[name]
        figures = (
            f"{r['seconds']} | {r['rows_per_second']:,} | {r['command_seconds']} s | {r['peak_rss_mb']} MB"
        )
        print(f"| {name} | {result['rows']:,} | {figures} |")
    if "speedup" not in result:
        return
    print(f"direct / debezium: {result['speedup']}x")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "initial_load.json").write_text(json.dumps(result, indent=2))
    print(f"written {RESULTS / 'initial_load.json'}")


if __name__ == "__main__":
    main()
