"""Pausing a source: its connector stops, replicate leaves its tables alone (and says so), and
after resuming the tables catch up with what changed meanwhile."""

from __future__ import annotations

import pytest

from floe_cdc.capture.deploy import pause_source, resume_source
from floe_cdc.core.config import load_config
from floe_cdc.core.errors import ConfigError
from floe_cdc.flows.replicate import replicate
from floe_cdc.lake.catalog import open_catalog
from floe_cdc.stack.stack import LocalStack
from tests.stack.pipeline import assert_tables_equal, catch_up, replicated_database, run_sql

pytestmark = pytest.mark.stack

MEANWHILE = [
    "UPDATE items SET name = 'while paused' WHERE id % 5 = 0",
    "DELETE FROM items WHERE id % 9 = 0",
    "INSERT INTO items (id, name, price) SELECT g, 'new', 2 FROM generate_series(5001, 5030) g",
]


def test_a_paused_source_is_left_alone_and_catches_up_after_resume(stack: LocalStack, tmp_path):
    path = replicated_database(stack, tmp_path, "floe_paused")
    config = load_config(path)
    table = open_catalog(config.iceberg).load_table((config.iceberg.namespace, "items"))
    before = table.current_snapshot().snapshot_id
    try:
        state = pause_source(config, "paused")
        assert state.paused and state.state.startswith("PAUSED")
        run_sql(stack, "floe_paused", MEANWHILE)
        [row] = replicate(config_path=str(path))
        assert (row["events"], row["reconciliation"]) == (0, "not run")
        assert row["connector"].startswith("PAUSED")
        table.refresh()
        assert table.current_snapshot().snapshot_id == before
    finally:
        resume_source(config, "paused")
    assert catch_up(path)["items"]["events"] > 0
    assert_tables_equal(stack, config, "floe_paused")
    with pytest.raises(ConfigError, match=r"no source 'nope'.*known sources: paused"):
        pause_source(config, "nope")
