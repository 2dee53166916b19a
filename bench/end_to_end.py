"""End to end on the local stack: a source sustaining a steady rate of row changes, replicated
by ``floe replicate --follow`` (``--mode follow``) or by the ``replicate-bench`` deployment's
long-lived run on the stack's process worker (``--mode deployment``); lag over time, freshness,
and the rates of the source, of Debezium and of Floe.

A stack of its own (own ports and state folder) is started, a table of ``--rows`` rows is loaded
directly into Iceberg, Floe is started (and seen to commit one change), then a writer commits
``--rate`` changes per second for ``--seconds`` (every 100 ms one transaction: 50% updates, 10%
deletes, 40% inserts of new, increasing ids). Each of ``--rates`` and ``--mode`` is a run of its
own, on a stack of its own.

Freshness is read from the table afterwards, not sampled: each Floe commit writes one data file
whose largest id is the newest insert it applied, and the snapshot's timestamp is its commit
time; a tick is fresh when the first snapshot holding its last insert commits (changes arrive in
order, so everything before that insert is in too). Lag at a moment is the age of the newest
tick visible then, and the number of changes committed at the source but not yet in Iceberg.
Rates run from the writer's first commit: the source's to its last commit, Debezium's to the
Kafka timestamp of the last change record (tombstones left out), Floe's to its last commit
(events in Floe's snapshot summaries). Floe's CPU time over the writing and its peak RSS are
read from /proc (for a deployment, of the flow run's process).

    .venv/bin/python -m bench.end_to_end [--rates 5000] [--seconds 300] [--rows 100000]
        [--mode follow deployment] [--name end_to_end]

Prints a table and writes ``bench/results/<name>.json`` and ``<name>.png``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import re
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
from floe_cdc.core.config import load_config
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


def _config(
    stack: LocalStack,
    directory: Path,
    name: str = "floe.yaml",
    source: dict[str, Any] | None = None,
    replicate: dict[str, Any] | None = None,
) -> Path:
    """The benchmark's ``floe.yaml``: Floe's defaults (a table commits once its oldest waiting
    change has waited 1 s), with *source* and *replicate* settings added."""
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
                **(source or {}),
            }
        ],
        "kafka": {"bootstrap_servers": s.kafka_bootstrap},
        "connect": {"url": s.connect_url},
        "iceberg": {"catalog": s.catalog_properties(), "namespace": "bench"},
        "replicate": replicate or {},
    }
    path = directory / name
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


def _pick(rng: np.random.Generator, deleted: np.ndarray, next_id: int, count: int) -> np.ndarray:
    """*count* distinct live ids, at random. Drawn and checked against a deleted mask, so that a
    tick costs what it picks, not the table's size (a sample of a 10M-row array of live ids kept
    the writer at half its rate)."""
    picked = np.zeros(0, np.int64)
    while len(picked) < count:
        drawn = rng.integers(0, next_id, 2 * count)
        drawn = drawn[~deleted[drawn]]
        picked = np.concatenate([picked, drawn])
        _, first = np.unique(picked, return_index=True)
        picked = picked[np.sort(first)]
    return picked[:count]


def _write(stack: LocalStack, rows: int, rate: int, seconds: float, seed: int) -> list[dict[str, Any]]:
    """Commit *rate* changes per second for *seconds*; per tick: commit time, last id, changes."""
    per_tick = int(rate * TICK)
    updates, deletes = per_tick // 2, per_tick // 10
    inserts = per_tick - updates - deletes
    rng = np.random.default_rng(seed)
    ticks_planned = int(seconds / TICK)
    deleted = np.zeros(rows + inserts * ticks_planned, bool)
    next_id = rows
    ticks = []
    conn = stack.postgres.connect(DATABASE)
    began = time.monotonic()
    try:
        with conn.cursor() as cur:
            for number in range(ticks_planned):
                picked = _pick(rng, deleted, next_id, updates + deletes)
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
                deleted[picked[updates:]] = True
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


def _chart(results: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    figure, (left, right) = pyplot.subplots(1, 2, figsize=(11, 4))
    for result in results:
        label = f"{result['mode']}, {result['rate']}/s, {result['rows']:,} rows"
        series = result["lag"]
        left.plot([p["t"] for p in series], [p["lag_seconds"] for p in series], label=label)
        right.hist(result["freshness"], bins=40, histtype="step", label=label)
    left.set_xlabel("seconds into the run")
    left.set_ylabel("lag (s): age of the newest change in Iceberg")
    left.grid(True, alpha=0.3)
    left.legend(fontsize="small")
    right.set_xlabel("freshness (s): source commit to Iceberg commit")
    right.set_ylabel("transactions")
    right.grid(True, alpha=0.3)
    figure.suptitle("Floe replicating a steady source (2 cores, one machine)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _first_commit_after(stack: LocalStack, moment: float, timeout: float) -> float:
    """The timestamp of the table's first snapshot after *moment* (epoch seconds) that merged
    events."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        table = _iceberg_table(stack)
        found = [
            s.timestamp_ms / 1000
            for s in table.metadata.snapshots
            if s.timestamp_ms / 1000 > moment and (s.summary or {}).get("floe.events") not in (None, "0")
        ]
        if found:
            return min(found)
        time.sleep(0.2)
    raise RuntimeError(f"no commit within {timeout:.0f}s of {moment}")


def _delivered(stack: LocalStack, topic: str, since: float) -> list[float]:
    """The timestamps (s) of the change records Debezium wrote to *topic* after *since* (epoch s),
    tombstones left out: when Kafka took each change."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": stack.settings.kafka_bootstrap,
            "group.id": "floe-bench-delivered",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        partitions = list(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        stamps, open_partitions = [], set(partitions)
        while open_partitions:
            for message in consumer.consume(10_000, timeout=5):
                if message.error():
                    open_partitions.discard(message.partition())
                elif message.value() is not None and message.timestamp()[1] / 1000 >= since:
                    stamps.append(message.timestamp()[1] / 1000)
        return stamps
    finally:
        consumer.close()


_PAUSE_OTHERS = """
from prefect import get_client
with get_client(sync_client=True) as client:
    for deployment in client.read_deployments():
        if deployment.name != "replicate-bench":
            client.pause_deployment(deployment.id)
"""


class _Replicator:
    """Floe replicating the benchmark's source: ``floe replicate --follow`` (mode ``follow``), or
    the ``replicate-bench`` deployment's long-lived run on the stack's process worker (mode
    ``deployment``). Its CPU time and peak RSS are read from /proc."""

    def __init__(self, mode: str, config: Path, env: dict[str, str]) -> None:
        self.mode, self.config, self.env = mode, config, env
        self.process: subprocess.Popen | None = None
        self.flow_run: str | None = None

    def start(self) -> None:
        bin_dir = Path(sys.executable).parent
        if self.mode == "follow":
            with REPLICATE_LOG.open("w") as log:
                self.process = subprocess.Popen(
                    [str(bin_dir / "floe"), "replicate", "--follow", "--config", str(self.config)],
                    env=self.env,
                    stdout=log,
                    stderr=log,
                )
            return
        subprocess.run(
            [str(bin_dir / "floe"), "deploy", "--config", str(self.config)], env=self.env, check=True
        )
        # Only the replicate deployment's schedule runs: an hourly maintain would land in some runs.
        subprocess.run([sys.executable, "-c", _PAUSE_OTHERS], env=self.env, check=True)
        started = subprocess.run(
            [str(bin_dir / "prefect"), "deployment", "run", "replicate/replicate-bench"],
            env=self.env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        self.flow_run = re.search(r"UUID: ([0-9a-f-]{36})", started).group(1)

    def pid(self) -> int:
        """The replicating process: the follower, or the flow run's process under the worker."""
        if self.process is not None:
            return self.process.pid
        wanted = f"PREFECT__FLOW_RUN_ID={self.flow_run}".encode()
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and wanted in (entry / "environ").read_bytes().split(b"\0"):
                    return int(entry.name)
            except OSError:
                continue
        raise RuntimeError(f"no process runs flow run {self.flow_run}")

    def cpu_seconds(self) -> float:
        fields = (Path("/proc") / str(self.pid()) / "stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def peak_rss_mb(self) -> float:
        for line in (Path("/proc") / str(self.pid()) / "status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
        raise RuntimeError("no VmHWM")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=120)
        elif self.flow_run is not None:
            bin_dir = Path(sys.executable).parent
            subprocess.run(
                [str(bin_dir / "prefect"), "flow-run", "cancel", self.flow_run], env=self.env, check=False
            )


def run(rate: int, seconds: float, rows: int, seed: int, mode: str) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="floe-e2e-"))
    workers = 1 if mode == "deployment" else 0
    stack = LocalStack(StackSettings(dir=directory / "stack", workers=workers, **PORTS), PROJECT_DIR)
    replicator = None
    try:
        stack.up()
        _seed(stack, rows)
        # Saved key indexes go to the run's own folder, not the user's cache.
        replicate = {"index_dir": str(directory / "indexes")}
        config = _config(stack, directory, source={"initial_load": "direct"}, replicate=replicate)
        env = {**os.environ, **stack.settings.prefect_client_env()}
        floe = str(Path(sys.executable).parent / "floe")
        subprocess.run([floe, "connectors", "apply", "--config", str(config)], env=env, check=True)
        _wait_for_rows(stack, rows, timeout=600)
        replicator = _Replicator(mode, config, env)
        started = time.time()
        replicator.start()
        with stack.postgres.connect(DATABASE) as conn, conn.cursor() as cur:  # one change, to see it run
            cur.execute("UPDATE readings SET n = n + 1 WHERE id = 0")
        ready = _first_commit_after(stack, started, timeout=300)
        cpu_before = replicator.cpu_seconds()
        ticks = _write(stack, rows, rate, seconds, seed)
        time.sleep(30)  # let the last changes through
        cpu = replicator.cpu_seconds() - cpu_before
        peak_rss = replicator.peak_rss_mb()
        table = _iceberg_table(stack)
        commits = [c for c in _commits(table) if c[0] >= ticks[0]["committed"] - 5]
        split = _freshness_split(table, ticks[0]["committed"])
        ((source, table_ref),) = load_config(config).tables()
        delivered = _delivered(stack, source.topic_for(table_ref), ticks[0]["committed"] - 1)
    finally:
        if replicator is not None:
            replicator.stop()
        stack.down()
        shutil.rmtree(directory, ignore_errors=True)
    fresh = _freshness(ticks, commits)
    seen = [f for f in fresh if f is not None]
    series = _lag_series(ticks, commits)
    fifth = max(1, len(series) // 5)
    cycle_gaps = [b[0] - a[0] for a, b in itertools.pairwise(commits)]
    changes = sum(t["changes"] for t in ticks)
    began = ticks[0]["committed"]
    committed = [c for c in table.metadata.snapshots if c.timestamp_ms / 1000 >= began]
    events = sum(int((c.summary or {}).get("floe.events") or 0) for c in committed)
    last_commit = max(c.timestamp_ms / 1000 for c in committed)
    return {
        "mode": mode,
        "rate": rate,
        "seconds": seconds,
        "rows": rows,
        "changes": changes,
        "start_to_first_commit_seconds": round(ready - started, 2),
        "source_rate": round(changes / (ticks[-1]["committed"] - began)),
        "debezium_rate": round(len(delivered) / (max(delivered) - began)) if delivered else None,
        "floe_rate": round(events / (last_commit - began)),
        "floe_cpu_seconds_per_100k": round(cpu / changes * 100_000, 2),
        "floe_peak_rss_mb": peak_rss,
        "transactions": len(ticks),
        "not_visible_at_end": len(fresh) - len(seen),
        "iceberg_commits": len(commits),
        "seconds_between_commits": round(statistics.median(cycle_gaps), 2) if cycle_gaps else None,
        "freshness_seconds": _percentiles(seen),
        "newest_change_of_each_commit": split,
        "lag_seconds_first_fifth": round(statistics.mean(p["lag_seconds"] for p in series[:fifth]), 2),
        "lag_seconds_last_fifth": round(statistics.mean(p["lag_seconds"] for p in series[-fifth:]), 2),
        "lag": series,
        "freshness": [round(f, 3) for f in seen],
    }


COLUMNS = {
    "mode": "mode",
    "rows": "rows",
    "rate": "offered/s",
    "source_rate": "source/s",
    "debezium_rate": "debezium/s",
    "floe_rate": "floe/s",
    "lag_seconds_first_fifth": "lag 1st 5th",
    "lag_seconds_last_fifth": "lag last 5th",
    "floe_p95": "floe p95 s",
    "p95": "e2e p95 s",
    "floe_cpu_seconds_per_100k": "cpu s/100k",
    "floe_peak_rss_mb": "peak MB",
}


def _row(result: dict[str, Any]) -> dict[str, Any]:
    return result | {
        "floe_p95": (result["newest_change_of_each_commit"]["floe_seconds"] or {}).get("p95"),
        "p95": (result["freshness_seconds"] or {}).get("p95"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates", type=int, nargs="+", default=[5000], help="row changes per second, one run each"
    )
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--mode", choices=["follow", "deployment"], nargs="+", default=["follow"])
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--name", default="end_to_end", help="results file name (without extension)")
    args = parser.parse_args()
    results = []
    RESULTS.mkdir(parents=True, exist_ok=True)
    for mode in args.mode:
        for rate in args.rates:
            results.append(run(rate, args.seconds, args.rows, args.seed, mode))
            print(
                json.dumps({k: v for k, v in results[-1].items() if k not in ("lag", "freshness")}),
                flush=True,
            )
            (RESULTS / f"{args.name}.json").write_text(json.dumps({"runs": results}, indent=2))
    _chart(results, RESULTS / f"{args.name}.png")
    print("".join(f"{title:>13}" for title in COLUMNS.values()))
    for result in map(_row, results):
        print("".join(f"{result[key]!s:>13}" for key in COLUMNS))
    print(f"written {RESULTS / args.name}.json and .png; a follower's log is {REPLICATE_LOG}")


if __name__ == "__main__":
    main()
