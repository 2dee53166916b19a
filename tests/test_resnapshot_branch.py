"""The re-snapshot branch, the load's appends and its recorded state, against a real pyiceberg
SQL catalog (SQLite): the branch fills out of sight of main, main switches to it in one commit
with its checkpoint kept, and a commit to main in between makes the switch fail rather than
lose that commit."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import orjson
import pytest
from pyiceberg.table.snapshots import Operation

from floe_cdc.core.changes import ChangeBatch
from floe_cdc.core.config import MaintainConfig
from floe_cdc.lake.append import append_rows
from floe_cdc.lake.checkpoint import read_checkpoint
from floe_cdc.lake.maintenance import maintain_table
from floe_cdc.lake.merge import ConcurrentWriteError
from floe_cdc.lake.resnapshot_branch import (
    BRANCH,
    MainMoved,
    begin_branch,
    branch_base,
    drop_branch,
    switch_to_branch,
)
from floe_cdc.lake.schema import create_table
from floe_cdc.pipeline.initial_load import LOAD_KEY, load_state
from tests.batches import make_batch
from tests.test_merge import ITEMS, apply, rows


def _reads(ids: range, name: str = "read") -> ChangeBatch:
    events = [("r", {"id": i, "name": f"{name} {i}", "price": Decimal(i)}, 0) for i in ids]
    return dataclasses.replace(make_batch("items", ["id"], ITEMS, events), offsets={})


@pytest.fixture
def streamed(catalog):
    """Table items after a snapshot of five rows and a delete merged on top (a delete file)."""
    table, _ = apply(
        catalog, make_batch("items", ["id"], ITEMS, [("r", {"id": i, "name": f"n{i}"}) for i in range(5)])
    )
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, [("d", {"id": 1})], offset=5), table)
    return table


def test_a_branch_fills_out_of_sight_and_main_switches_to_it_with_its_checkpoint(streamed):
    checkpoint = read_checkpoint(streamed)
    before = rows(streamed)
    assert int(streamed.current_snapshot().summary["total-position-deletes"]) == 1
    base = begin_branch(streamed, checkpoint)
    assert branch_base(streamed) == base == streamed.current_snapshot().snapshot_id
    emptied = streamed.snapshot_by_name(BRANCH).summary
    assert (emptied["total-records"], emptied["total-delete-files"]) == ("0", "0")
    append_rows(streamed, _reads(range(10, 13)), checkpoint, BRANCH)
    append_rows(streamed, _reads(range(13, 15)), checkpoint, BRANCH, evolve_schema=False)
    assert rows(streamed) == before, "main saw the branch's rows"

    switch_to_branch(streamed, base)
    assert BRANCH not in streamed.metadata.refs and branch_base(streamed) is None
    assert [r["id"] for r in rows(streamed)] == list(range(10, 15))
    assert read_checkpoint(streamed).offsets == checkpoint.offsets == {"topic.items": {0: 6}}


def test_a_commit_to_main_after_the_branch_began_makes_the_switch_fail(catalog, streamed):
    base = begin_branch(streamed, read_checkpoint(streamed))
    append_rows(streamed, _reads(range(10, 12)), read_checkpoint(streamed), BRANCH)
    late = catalog.load_table(("ns", "items"))
    apply(catalog, make_batch("items", ["id"], ITEMS, [("c", {"id": 7, "name": "late"})], offset=6), late)
    with pytest.raises(MainMoved):
        switch_to_branch(streamed, base)
    assert 7 in [r["id"] for r in rows(streamed.refresh())], "the switch lost main's commit"
    drop_branch(streamed)
    assert BRANCH not in streamed.refresh().metadata.refs


def test_an_append_planned_on_an_older_head_is_refused(catalog):
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, [("r", {"id": 1, "name": "one"})]))
    stale = catalog.load_table(("ns", "items"))
    append_rows(table, _reads(range(10, 12)), read_checkpoint(table))
    with pytest.raises(ConcurrentWriteError, match="table items"):
        append_rows(stale, _reads(range(10, 12)), read_checkpoint(stale))
    assert [r["id"] for r in rows(table.refresh())] == [1, 10, 11]


def test_the_load_state_looks_past_a_maintenance_rewrite_and_not_past_the_emptied_branch(catalog, streamed):
    table = create_table(catalog, "ns", dataclasses.replace(_reads(range(0)), table="loaded"))
    for first in (0, 3):
        chunk = dataclasses.replace(_reads(range(first, first + 3)), table="loaded")
        chunk.summary = {LOAD_KEY: orjson.dumps({"after": [first + 2]}).decode()}
        append_rows(table, chunk, read_checkpoint(table))
    maintained = maintain_table(table, "loaded", MaintainConfig(min_small_files=2))
    assert maintained.files_rewritten == 2 and table.current_snapshot().summary.operation == Operation.REPLACE
    assert load_state(table) == {"after": [5]}

    assert load_state(streamed) is None
    begin_branch(streamed, read_checkpoint(streamed))
    assert load_state(streamed, BRANCH) is None
