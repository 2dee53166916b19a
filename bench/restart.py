"""The cost of a restart: from the start of ``floe replicate --follow`` to its first commit, on a
big table, with the key index saved by the run before and without it (built from the table).

A stack of its own is started, a table of ``--rows`` rows is loaded directly into Iceberg, and a
follower replicates a minute of changes at ``--rate`` (so that the table has the data and delete
files of many merges), then stops (saving its index). Then, ``--restarts`` times for each way, a
few thousand updates are committed at the source while no follower runs, and a follower is
started and stopped once it committed them: "saved" reads its key index from the folder the
runs before saved it to, "built" from an empty folder. The time of each phase is read from the
follower's log (its lines are stamped).

    .venv/bin/python -m bench.restart [--rows 10000000] [--restarts 3]

Prints a table and writes ``bench/results/restart.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.end_to_end import (
    DATABASE,
    PORTS,
    PROJECT_DIR,
    _config,
    _first_commit_after,
    _seed,
    _wait_for_rows,
    _write,
)
from bench.merge_throughput import RESULTS
from floe_cdc.stack.settings import StackSettings
from floe_cdc.stack.stack import LocalStack

FLOE = str(Path(sys.executable).parent / "floe")
LOGS = Path(tempfile.gettempdir()) / "floe-restart"
# What a follower's log says at each phase of its start, in order.
PHASES = {
    "stream_open": re.compile(r"reading \d+ of \d+ tables' topics"),
    "index_ready": re.compile(r"key index of readings (built|restored from disk): \d+ rows in ([\d.]+)s"),
    "first_merge": re.compile(r"merged readings: "),
}


def _follower(config: Path, env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("w") as out:
        return subprocess.Popen(
            [FLOE, "replicate", "--follow", "--config", str(config)], env=env, stdout=out, stderr=out
        )


def _stop(follower: subprocess.Popen) -> None:
    """SIGTERM, as Prefect's worker sends it: the follower commits what it read, saves its
    indexes and ends."""
    follower.terminate()
    follower.wait(timeout=300)


def _updates(stack: LocalStack, rows: int, count: int, rng: np.random.Generator) -> None:
    ids = rng.choice(rows, count, replace=False).tolist()
    with stack.postgres.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("UPDATE readings SET n = n + 1 WHERE id = ANY(%s)", (ids,))


def _phases(log: Path, started: float) -> dict[str, float]:
    """Seconds from the process start to each phase's log line (Prefect stamps them with the
    local time of day), and the index's own time."""
    day = datetime.fromtimestamp(started).strftime("%Y-%m-%d")
    found: dict[str, float] = {}
    for line in log.read_text().splitlines():
        stamped = re.match(r"(\d\d:\d\d:\d\d\.\d{3}) \| ", line)
        if not stamped:
            continue
        at = round(
            datetime.strptime(f"{day} {stamped.group(1)}", "%Y-%m-%d %H:%M:%S.%f").timestamp() - started, 2
        )
        found.setdefault("first_line", at)
        for name, pattern in PHASES.items():
            match = pattern.search(line)
            if match and name not in found:
                found[name] = at
                if name == "index_ready":
                    found["index_seconds"] = float(match.group(2))
    return found


def run(rows: int, restarts: int, rate: int, seed: int) -> dict[str, Any]:
    directory = Path(tempfile.mkdtemp(prefix="floe-restart-"))
    LOGS.mkdir(parents=True, exist_ok=True)
    stack = LocalStack(StackSettings(dir=directory / "stack", workers=0, **PORTS), PROJECT_DIR)
    folders = {"saved": directory / "indexes-saved", "built": directory / "indexes-built"}
    configs = {
        way: _config(
            stack,
            directory,
            f"{way}.yaml",
            source={"initial_load": "direct"},
            replicate={"index_dir": str(folder)},
        )
        for way, folder in folders.items()
    }
    env = {**os.environ, **stack.settings.prefect_client_env()}
    rng = np.random.default_rng(seed)
    results: dict[str, list[dict[str, float]]] = {way: [] for way in folders}
    try:
        stack.up()
        _seed(stack, rows)
        subprocess.run([FLOE, "connectors", "apply", "--config", str(configs["saved"])], env=env, check=True)
        _wait_for_rows(stack, rows, timeout=600)
        follower = _follower(configs["saved"], env, LOGS / "warm-up.log")
        try:
            _write(stack, rows, rate, 60, seed)
            time.sleep(15)
        finally:
            _stop(follower)
        for number in range(restarts):
            for way, folder in folders.items():
                if way == "built":
                    shutil.rmtree(folder, ignore_errors=True)
                _updates(stack, rows, 2000, rng)
                time.sleep(3)  # Debezium delivers them to Kafka
                log = LOGS / f"{way}-{number}.log"
                started = time.time()
                follower = _follower(configs[way], env, log)
                try:
                    committed = _first_commit_after(stack, started, timeout=300)
                finally:
                    _stop(follower)
                results[way].append({"first_commit": round(committed - started, 2), **_phases(log, started)})
                print(way, results[way][-1], flush=True)
    finally:
        stack.down()
        shutil.rmtree(directory, ignore_errors=True)
    summary = {
        way: {
            key: round(statistics.median(r[key] for r in runs if key in r), 2)
            for key in (
                "first_line",
                "stream_open",
                "index_seconds",
                "index_ready",
                "first_merge",
                "first_commit",
            )
            if any(key in r for r in runs)
        }
        for way, runs in results.items()
    }
    return {"rows": rows, "restarts": restarts, "median_seconds": summary, "runs": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--restarts", type=int, default=3)
    parser.add_argument("--rate", type=int, default=2000, help="changes per second during the warm-up minute")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    result = run(args.rows, args.restarts, args.rate, args.seed)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "restart.json").write_text(json.dumps(result, indent=2))
    phases = ("first_line", "stream_open", "index_seconds", "index_ready", "first_merge", "first_commit")
    print(f"{'index':8}" + "".join(f"{p:>14}" for p in phases))
    for way, medians in result["median_seconds"].items():
        print(f"{way:8}" + "".join(f"{medians.get(p, float('nan')):>14.2f}" for p in phases))
    print(f"seconds from the process start (medians of {args.restarts}); written {RESULTS / 'restart.json'}")


if __name__ == "__main__":
    main()
