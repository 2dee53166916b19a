"""Exact reconciliation on a live source: it never reports timing as a mismatch, and it always
reports lost data (a row removed from Iceberg behind Floe's back, a change event dropped); keys
mode names the keys."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import pytest
from pyiceberg.expressions import EqualTo

from floe_cdc.core.config import load_config
from floe_cdc.lake.catalog import open_catalog
from floe_cdc.pipeline.reconciliation import reconcile
from floe_cdc.stack.stack import LocalStack
from tests.stack.live import Statement, cycle, live_source
from tests.stack.pipeline import replicated_database, run_sql

pytestmark = pytest.mark.stack

DATABASE = "floe_exact"


def changes() -> Iterator[Statement]:
    """Single-row inserts, updates and deletes (more inserts), for ever."""
    rng, next_id = random.Random(7), 100_000
    while True:
        roll = rng.random()
        if roll < 0.5:
            next_id += 1
            yield "INSERT INTO items (id, name, price) VALUES (%s, 'live', 1.5)", (next_id,)
        elif roll < 0.8:
            yield "UPDATE items SET name = md5(random()::text) WHERE id = %s", (rng.randint(1, 400),)
        else:
            yield "DELETE FROM items WHERE id = %s", (rng.randint(1, next_id),)


@pytest.fixture(scope="module")
def exact_config(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return replicated_database(
        stack, tmp_path_factory.mktemp("exact"), DATABASE, idle_seconds=1, max_seconds=3
    )


def test_exact_reconciliation_under_a_continuous_workload_never_mismatches(stack: LocalStack, exact_config):
    config = load_config(exact_config)
    with live_source(stack, DATABASE, config, changes()):
        results = [reconcile(config, mode=mode, wait_seconds=120)[0] for mode in ("exact", "keys", "exact")]
    for result in results:
        assert result.passed, result
        assert result.source_position and result.iceberg_count == result.source_count + result.correction
        assert result.differing_keys == []
    # The workload really moved between count and comparison: some run needed a correction.
    assert any(result.correction != 0 for result in results), results


def test_exact_and_keys_modes_report_a_removed_row_and_a_dropped_event(stack: LocalStack, exact_config):
    config = load_config(exact_config)
    while cycle(config):
        pass
    [clean] = reconcile(config, mode="keys", wait_seconds=60)
    assert clean.passed and clean.correction == 0, clean
    table = open_catalog(config.iceberg).load_table((config.iceberg.namespace, "items"))
    table.delete(EqualTo("id", 7))  # behind Floe's back
    # One transaction: both events arrive in one cycle, which drops them.
    run_sql(
        stack,
        DATABASE,
        ["INSERT INTO items (id, name) VALUES (90001, 'lost'); UPDATE items SET name = 'lost' WHERE id = 8"],
    )
    while not cycle(config, drop_events=True):
        pass
    [exact] = reconcile(config, mode="exact", wait_seconds=60)
    assert exact.passed is False and exact.iceberg_count == exact.source_count - 2, exact
    [keys] = reconcile(config, mode="keys", wait_seconds=60)
    assert keys.passed is False
    assert keys.differing_keys == [
        "7 (missing in Iceberg)",
        "8 (values differ)",
        "90001 (missing in Iceberg)",
    ]
