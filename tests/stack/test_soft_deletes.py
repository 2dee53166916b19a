"""Soft deletes on the real stack: a table with ``deletes: soft`` replicated through Debezium's
snapshot and stream, with deletes of stored rows, a row inserted and deleted between two cycles,
and a deleted row inserted again. Its live rows equal the source's row by row, every row deleted
at the source stays with its last values and the flag, and the keys reconciliation passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from floe_cdc.core.config import load_config
from floe_cdc.lake.catalog import open_catalog
from floe_cdc.lake.schema import POSITION_COLUMN
from floe_cdc.pipeline.reconciliation import reconcile
from floe_cdc.stack.stack import LocalStack
from tests.stack.pipeline import catch_up, remove_replication, run_sql, start_capture, write_config

pytestmark = pytest.mark.stack

DATABASE = "floe_soft"
SETUP = [
    "DROP TABLE IF EXISTS accounts",
    "CREATE TABLE accounts (id int PRIMARY KEY, owner text, balance numeric(10,2))",
    "INSERT INTO accounts SELECT g, 'owner ' || g, g * 10 FROM generate_series(1, 100) g",
]
CHANGES = [
    "UPDATE accounts SET balance = balance + 1 WHERE id % 10 = 0",
    "DELETE FROM accounts WHERE id % 10 = 0",  # updated, then deleted: the update's values stay
    "INSERT INTO accounts VALUES (500, 'brief', 5)",
    "DELETE FROM accounts WHERE id = 500",  # inserted and deleted between two of Floe's reads
    "DELETE FROM accounts WHERE id = 7",
    "INSERT INTO accounts VALUES (7, 'back again', 77)",
]


def _source_rows(stack: LocalStack) -> dict[int, tuple]:
    conn = stack.postgres.connect(DATABASE)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id, owner, balance::text FROM accounts")
            return {i: (o, b) for i, o, b in cur.fetchall()}
    finally:
        conn.close()


def test_deleted_rows_stay_flagged_and_the_live_ones_equal_the_source(stack: LocalStack, tmp_path: Path):
    stack.postgres.ensure_database(DATABASE)
    run_sql(stack, DATABASE, SETUP)
    tables = [{"name": "public.accounts", "deletes": "soft"}]
    path = write_config(stack, tmp_path, "soft", DATABASE, tables, idle_seconds=1)
    start_capture(path)
    try:
        catch_up(path)
        before = _source_rows(stack)
        run_sql(stack, DATABASE, CHANGES)
        catch_up(path)
        config = load_config(path)
        table = open_catalog(config.iceberg).load_table((config.iceberg.namespace, "accounts"))
        stored = table.scan().to_arrow().drop_columns([POSITION_COLUMN.name]).to_pylist()
        live = {r["id"]: (r["owner"], str(r["balance"])) for r in stored if not r["_floe_deleted"]}
        gone = {r["id"]: (r["owner"], str(r["balance"])) for r in stored if r["_floe_deleted"]}
        now = _source_rows(stack)
        assert live == now
        # Each row deleted at the source keeps its last values, 500 those it was inserted with.
        expected_gone = {i: (o, f"{float(b) + 1:.2f}") for i, (o, b) in before.items() if i % 10 == 0}
        assert gone == {**expected_gone, 500: ("brief", "5.00")}
        assert all(r["_floe_deleted_at"] is not None for r in stored if r["_floe_deleted"])
        checks = reconcile(config, mode="keys")
        assert [(c.passed, c.iceberg_count, c.differing_keys) for c in checks] == [(True, len(now), [])]
    finally:
        remove_replication(stack, path)
