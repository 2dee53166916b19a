"""Crashes at every stage of a run, and two runs at once: the tables still end equal to the
source, row by row, with nothing lost and nothing duplicated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pyiceberg.table.snapshots import ancestors_of

from floe_cdc.core.config import PipelineConfig, load_config
from floe_cdc.lake.catalog import open_catalog
from floe_cdc.stack.stack import LocalStack
from tests.conftest import PROJECT_DIR
from tests.stack.pipeline import assert_tables_equal, catch_up, run_sql, start_capture, write_config

pytestmark = pytest.mark.stack

DATABASE = "floe_crash"
CATCH_UP = 240
SCHEMA = [
    "DROP TABLE IF EXISTS accounts, ledger",
    "CREATE TABLE accounts (id integer PRIMARY KEY, balance numeric(12,2), owner text)",
    "CREATE TABLE ledger (id bigint PRIMARY KEY, account integer, amount numeric(12,2), note text)",
    "INSERT INTO accounts SELECT g, 100, 'owner ' || g FROM generate_series(1, 500) g",
    "INSERT INTO ledger SELECT g, 1 + g % 500, 1, 'seed' FROM generate_series(1, 2000) g",
    # Every change of ledger after the seed, in order: what its history table must hold.
    "DROP TABLE IF EXISTS ledger_audit",
    "CREATE TABLE ledger_audit (n bigserial PRIMARY KEY, op text, id bigint, account integer, "
    "amount numeric(12,2), note text)",
    "CREATE OR REPLACE FUNCTION audit_ledger() RETURNS trigger AS $$ BEGIN "
    "IF TG_OP = 'DELETE' THEN INSERT INTO ledger_audit (op, id) VALUES ('delete', OLD.id); "
    "ELSE INSERT INTO ledger_audit (op, id, account, amount, note) VALUES (lower(TG_OP), NEW.id, "
    "NEW.account, NEW.amount, NEW.note); END IF; RETURN NULL; END $$ LANGUAGE plpgsql",
    "CREATE TRIGGER ledger_audit AFTER INSERT OR UPDATE OR DELETE ON ledger "
    "FOR EACH ROW EXECUTE FUNCTION audit_ledger()",
]


def workload(round_number: int) -> list[str]:
    base = 10_000 * round_number
    return [
        f"UPDATE accounts SET balance = balance + {round_number} WHERE id % 3 = {round_number % 3}",
        f"INSERT INTO ledger SELECT {base} + g, 1 + g % 500, g, 'round {round_number}' "
        "FROM generate_series(1, 300) g",
        f"DELETE FROM ledger WHERE id % 17 = {round_number}",
        f"UPDATE accounts SET owner = 'moved {round_number}' WHERE id = {round_number}",
    ]


@pytest.fixture(scope="module")
def config_path(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    stack.postgres.ensure_database(DATABASE)
    run_sql(stack, DATABASE, SCHEMA)
    path = write_config(
        stack,
        tmp_path_factory.mktemp("crash"),
        "crash",
        DATABASE,
        ["public.accounts", {"name": "public.ledger", "history": True}],
        idle_seconds=3,
    )
    start_capture(path)
    return path


@pytest.fixture(scope="module")
def config(config_path: Path) -> PipelineConfig:
    return load_config(config_path)


def run_cycle(config_path: Path, stage: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tests.stack.crash_runner", str(config_path), stage],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=400,
        check=False,
    )


STAGES = ["after-consume", "during-write", "after-history", "after-commit", "second-commit"]


def assert_history_exact(stack: LocalStack, config: PipelineConfig) -> None:
    """ledger_history holds every change of ledger since the seed once, in the source's order
    (a delete as its key: the event carries no more of the row)."""
    conn = stack.postgres.connect(DATABASE)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT op, id, account, amount, note FROM ledger_audit ORDER BY n")
            audited = [(op, i, a, None if m is None else str(m), t) for op, i, a, m, t in cur.fetchall()]
    finally:
        conn.close()
    history = open_catalog(config.iceberg).load_table(("crash", "ledger_history"))
    stored = history.scan().to_arrow().sort_by("_floe_source_position").to_pylist()
    recorded = [
        (r["_floe_op"], r["id"], r["account"], None if r["amount"] is None else str(r["amount"]), r["note"])
        for r in stored
        if r["_floe_op"] != "snapshot"
    ]
    assert recorded == audited
    assert sum(r["_floe_op"] == "snapshot" for r in stored) == 2000


@pytest.mark.parametrize("stage", STAGES)
def test_killed_run_recovers_exactly(stack, config_path, config, stage):
    round_number = STAGES.index(stage) + 1
    run_sql(stack, DATABASE, workload(round_number))
    crashed = run_cycle(config_path, stage)
    assert crashed.returncode == -9, crashed.stdout[-2000:] + crashed.stderr[-2000:]
    catch_up(config_path, timeout=CATCH_UP)
    assert_tables_equal(stack, config, DATABASE)
    assert_history_exact(stack, config)


def test_two_runs_at_once_do_not_both_commit_the_same_changes(stack, config_path, config):
    run_sql(stack, DATABASE, workload(len(STAGES) + 1))
    runs = [
        subprocess.Popen(
            [sys.executable, "-m", "tests.stack.crash_runner", str(config_path), "none"],
            cwd=PROJECT_DIR,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [run.communicate(timeout=400)[0] for run in runs]
    assert [run.returncode for run in runs] == [0, 0], "\n".join(o[-2000:] for o in outputs)
    catch_up(config_path, timeout=CATCH_UP)
    assert_tables_equal(stack, config, DATABASE)
    assert_history_exact(stack, config)
    # No two commits continued from the same offsets: every commit moved the table forward.
    catalog = open_catalog(config.iceberg)
    for name in ("accounts", "ledger"):
        table = catalog.load_table(("crash", name))
        offsets = []
        for snapshot in ancestors_of(table.current_snapshot(), table.metadata):
            raw = snapshot.summary.get("floe.offsets")
            if raw and snapshot.summary.get("floe.events") != "0":
                offsets.append(int(json.loads(raw)[f"floe.crash.public.{name}"]["0"]))
        assert offsets == sorted(offsets, reverse=True) and len(set(offsets)) == len(offsets), offsets
