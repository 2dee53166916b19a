"""End to end on the local stack: a source sustaining a steady rate of row changes, replicated by
``floe replicate --follow``; lag over time and the distribution of freshness.

A stack of its own (own ports and state folder) is started, a table of ``--rows`` rows is
snapshotted into Iceberg, then a writer commits ``--rate`` changes per second for ``--seconds``
(every 100 ms one transaction: 50% updates, 10% deletes, 40% inserts of new, increasing ids).

Freshness is read from the table afterwards, not sampled: each Floe commit writes one data file
whose largest id is the newest insert it applied, and the snapshot's timestamp is its commit
time; a tick is fresh when the first snapshot holding its last insert commits (changes arrive in
order, so everything before that insert is in too). Lag at a moment is the age of the newest
tick visible then, and the number of changes committed at the source but not yet in Iceberg.

    .venv/bin/python -m bench.end_to_end [--rate 5000] [--seconds 300] [--rows 100000]

Prints a summary and writes ``bench/results/end_to_end.json`` and ``end_to_end.png``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from pyiceberg.catalog import load_catalog
from pyiceberg.conversions import from_bytes
from pyiceberg.manifest import ManifestContent
from pyiceberg.table import Table
from pyiceberg.types import LongType

from bench.merge_throughput import RESULTS
from floe_cdc.lake.checkpoint import POSITION_KEY, STAMPS_KEY
from floe_cdc.stack.settings import StackSettings
from floe_cdc.stack.stack import LocalStack

PROJECT_DIR = Path(__file__).parent.parent
REPLICATE_LOG = Path(tempfile.gettempdir()) / "floe-end-to-end-replicate.log"
DATABASE = "floe_bench"
TICK = 0.1
_ROWS = "SELECT g, 'sensor-' || (g %% 500), random(), 0"  # %% : a psycopg2 parameter string
PORTS = {
    "pg_port": 46432,
    "kafka_port": 39092,
    "connect_port": 38083,
    "prefect_port": 34200,
    "s3_port": 46333,
    "iceberg_port": 46181,
    "object_store_port_base": 46900,
}


def _config(stack: LocalStack, directory: Path) -> Path:
    s = stack.settings
    document = {
        "sources": [
            {
                "name": "bench",
                "port": s.pg_port,
                "database": DATABASE,
                "user": s.pg_user,
                "password": s.pg_password.get_secret_value(),
                "tables": ["public.readings"],
            }
        ],
        "kafka": {"bootstrap_servers": s.kafka_bootstrap},
        "connect": {"url": s.connect_url},
        "iceberg": {"catalog": s.catalog_properties(), "namespace": "bench"},
        # Floe's defaults: a table commits once its oldest waiting change has waited 1 s.
        "replicate": {},
    }
    path = directory / "floe.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _seed(stack: LocalStack, rows: int) -> None:
    stack.postgres.ensure_database(DATABASE)
    with stack.postgres.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS readings")
        cur.execute(
            "CREATE TABLE readings (id bigint PRIMARY KEY, sensor text, value double precision, n int)"
        )
        cur.execute(f"INSERT INTO readings {_ROWS} FROM generate_series(0, %s) g", (rows - 1,))


def _iceberg_table(stack: LocalStack) -> Table | None:
    catalog = load_catalog("bench", **stack.settings.catalog_properties())
    return catalog.load_table(("bench", "readings")) if catalog.table_exists(("bench", "readings")) else None


def _wait_for_rows(stack: LocalStack, rows: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        table = _iceberg_table(stack)
        snapshot = table.current_snapshot() if table is not None else None
        if snapshot is not None and int(snapshot.summary.get("total-records") or 0) >= rows:
            return
        time.sleep(2)
    raise RuntimeError(f"the initial snapshot of {rows} rows did not reach Iceberg in {timeout:.0f}s")


def _write(stack: LocalStack, rows: int, rate: int, seconds: float, seed: int) -> list[dict[str, Any]]:
    """Commit *rate* changes per second for *seconds*; per tick: commit time, last id, changes."""
    per_tick = int(rate * TICK)
    updates, deletes = per_tick // 2, per_tick // 10
    inserts = per_tick - updates - deletes
    rng = np.random.default_rng(seed)
    alive = np.arange(rows, dtype=np.int64)
    next_id = rows
    ticks = []
    conn = stack.postgres.connect(DATABASE)
    began = time.monotonic()
    try:
        with conn.cursor() as cur:
            for number in range(int(seconds / TICK)):
                picked = rng.choice(alive, updates + deletes, replace=False)
                new_ids = np.arange(next_id, next_id + inserts, dtype=np.int64)
                next_id += inserts
                cur.execute(
                    "UPDATE readings SET value = random(), n = n + 1 WHERE id = ANY(%s)",
                    (picked[:updates].tolist(),),
                )
                cur.execute("DELETE FROM readings WHERE id = ANY(%s)", (picked[updates:].tolist(),))
                cur.execute(f"INSERT INTO readings {_ROWS} FROM unnest(%s::bigint[]) g", (new_ids.tolist(),))
                conn.commit()
                ticks.append({"committed": time.time(), "last_id": int(new_ids[-1]), "changes": per_tick})
                alive = np.concatenate([np.setdiff1d(alive, picked[updates:], assume_unique=True), new_ids])
                pause = began + (number + 1) * TICK - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
    finally:
        conn.close()
    return ticks


def _commits(table: Table) -> list[tuple[float, int]]:
    """(commit time, largest id written) of each snapshot that added data, oldest first."""
    id_field = table.schema().find_field("id").field_id
    found = []
    for snapshot in sorted(table.metadata.snapshots, key=lambda s: s.timestamp_ms):
        largest = None
        for manifest in snapshot.manifests(table.io):
            if manifest.content != ManifestContent.DATA or manifest.added_snapshot_id != snapshot.snapshot_id:
                continue
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                bound = (entry.data_file.upper_bounds or {}).get(id_field)
                if bound is not None and entry.snapshot_id == snapshot.snapshot_id:
                    value = from_bytes(LongType(), bound)
                    largest = value if largest is None else max(largest, value)
        if largest is not None:
            found.append((snapshot.timestamp_ms / 1000, largest))
    return found


def _percentiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    return {f"p{q}": round(float(np.percentile(values, q)), 2) for q in (50, 95, 99)} | {
        "max": round(max(values), 2)
    }


def _freshness_split(table: Table, since: float) -> dict[str, dict[str, float] | None]:
    """Each commit's newest change, its freshness in two: capture (source commit to the Kafka
    record's timestamp, Debezium's share) and Floe (Kafka record to the Iceberg commit). Read
    from the commit's summary: the source position's commit time and the last record's stamp."""
    capture, floe = [], []
    for snapshot in table.metadata.snapshots:
        summary = snapshot.summary
        if (
            snapshot.timestamp_ms / 1000 < since
            or summary is None
            or summary.get("floe.events") in (None, "0")
        ):
            continue
        source_ms = json.loads(summary.get(POSITION_KEY) or "{}").get("ts_ms")
        stamps = [
            int(v) for parts in json.loads(summary.get(STAMPS_KEY) or "{}").values() for v in parts.values()
        ]
        if source_ms is None or not stamps:
            continue
        capture.append((max(stamps) - int(source_ms)) / 1000)
        floe.append((snapshot.timestamp_ms - max(stamps)) / 1000)
    return {"capture_seconds": _percentiles(capture), "floe_seconds": _percentiles(floe)}


def _freshness(ticks: list[dict[str, Any]], commits: list[tuple[float, int]]) -> list[float | None]:
    """Seconds from each tick's source commit to the Iceberg commit that made it visible."""
    result, best, index = [], -1, 0
    visible_at: list[tuple[int, float]] = []
    for at, largest in commits:
        best = max(best, largest)
        visible_at.append((best, at))
    for tick in ticks:
        while index < len(visible_at) and visible_at[index][0] < tick["last_id"]:
            index += 1
        result.append(visible_at[index][1] - tick["committed"] if index < len(visible_at) else None)
    return result


def _lag_series(ticks: list[dict[str, Any]], commits: list[tuple[float, int]]) -> list[dict[str, float]]:
    """Once a second over the run: age of the newest visible tick, and changes not yet visible."""
    series = []
    start, end = ticks[0]["committed"], ticks[-1]["committed"]
    for moment in np.arange(start, end, 1.0):
        visible = max((largest for at, largest in commits if at <= moment), default=-1)
        committed = [t for t in ticks if t["committed"] <= moment]
        seen = [t for t in committed if t["last_id"] <= visible]
        pending = sum(t["changes"] for t in committed) - sum(t["changes"] for t in seen)
        age = moment - seen[-1]["committed"] if seen else moment - start
        series.append({"t": round(moment - start, 1), "lag_seconds": round(age, 2), "lag_changes": pending})
    return series


def _chart(series: list[dict[str, float]], fresh: list[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4))
    left.plot([p["t"] for p in series], [p["lag_seconds"] for p in series])
    left.set_xlabel("seconds into the run")
    left.set_ylabel("lag (s): age of the newest change in Iceberg")
    left.grid(True, alpha=0.3)
    right.hist(fresh, bins=40)
    right.set_xlabel("freshness (s): source commit to Iceberg commit")
    right.set_ylabel("transactions")
    right.grid(True, alpha=0.3)
    figure.suptitle("floe replicate --follow, steady source (2 cores, one machine)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def run(rate: int, seconds: float, rows: int, seed: int) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="floe-e2e-"))
    stack = LocalStack(StackSettings(dir=directory / "stack", workers=0, **PORTS), PROJECT_DIR)
    follower = None
    try:
        stack.up()
        _seed(stack, rows)
        config = _config(stack, directory)
        env = {**os.environ, **stack.settings.prefect_client_env()}
        floe = str(Path(sys.executable).parent / "floe")
        subprocess.run([floe, "connectors", "apply", "--config", str(config)], env=env, check=True)
        with REPLICATE_LOG.open("w") as log:
            follower = subprocess.Popen(
                [floe, "replicate", "--follow", "--config", str(config)], env=env, stdout=log, stderr=log
            )
        _wait_for_rows(stack, rows, timeout=600)
        ticks = _write(stack, rows, rate, seconds, seed)
        time.sleep(30)  # let the last changes through
        table = _iceberg_table(stack)
        commits = [c for c in _commits(table) if c[0] >= ticks[0]["committed"] - 5]
        split = _freshness_split(table, ticks[0]["committed"])
    finally:
        if follower is not None:
            follower.terminate()
            follower.wait(timeout=60)
        stack.down()
        shutil.rmtree(directory, ignore_errors=True)
    fresh = _freshness(ticks, commits)
    seen = [f for f in fresh if f is not None]
    series = _lag_series(ticks, commits)
    minute = max(1, len(series) // 5)
    cycle_gaps = [b[0] - a[0] for a, b in itertools.pairwise(commits)]
    return {
        "rate": rate,
        "seconds": seconds,
        "rows": rows,
        "changes": sum(t["changes"] for t in ticks),
        "achieved_rate": round(
            sum(t["changes"] for t in ticks) / (ticks[-1]["committed"] - ticks[0]["committed"])
        ),
        "transactions": len(ticks),
        "not_visible_at_end": len(fresh) - len(seen),
        "iceberg_commits": len(commits),
        "seconds_between_commits": round(statistics.median(cycle_gaps), 2) if cycle_gaps else None,
        "freshness_seconds": _percentiles(seen),
        "newest_change_of_each_commit": split,
        "lag_seconds_first_fifth": round(statistics.mean(p["lag_seconds"] for p in series[:minute]), 2),
        "lag_seconds_last_fifth": round(statistics.mean(p["lag_seconds"] for p in series[-minute:]), 2),
        "lag": series,
        "freshness": [round(f, 3) for f in seen],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=5000, help="row changes per second at the source")
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    result = run(args.rate, args.seconds, args.rows, args.seed)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "end_to_end.json").write_text(json.dumps(result, indent=2))
    _chart(result["lag"], result["freshness"], RESULTS / "end_to_end.png")
    summary = {k: v for k, v in result.items() if k not in ("lag", "freshness")}
    print(json.dumps(summary, indent=2))
    print(f"written {RESULTS / 'end_to_end.json'} and end_to_end.png; the replicate log is {REPLICATE_LOG}")


if __name__ == "__main__":
    main()
