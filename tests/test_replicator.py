"""A replicator merges on the table as it last committed it: what happens when another writer
committed in between (no services: a SQLite catalog on the local filesystem)."""

from __future__ import annotations

import logging

import pytest
import yaml

from floe_cdc.core.config import MaintainConfig, load_config
from floe_cdc.lake.checkpoint import read_checkpoint
from floe_cdc.lake.layout import LayoutError
from floe_cdc.lake.merge import ConcurrentWriteError
from floe_cdc.pipeline.replication import Replicator, TableChanges
from tests.debezium_events import event, field
from tests.shop import TOPIC, rows

ITEM = [field("id", "int64", "INT8", optional=False), field("code", "int32", "INT4")]


def columns(source, table) -> dict[str, int]:
    return {"id": 1, "code": 2}


def _insert(offset: int, item: int, code: int):
    row = {"id": item, "code": code}
    return event(TOPIC, offset, "public.items", ITEM, ["id"], "c", row, (offset, offset))


def _merge(replicator: Replicator, *records) -> None:
    """A merge as the stream makes it: on the checkpoint and properties of the replicator's own
    last commit (no catalog load)."""
    table = replicator.table("items")
    properties = dict(table.properties) if table is not None else {}
    changes = TableChanges(list(records), replicator.decode_table("items", list(records), properties))
    replicator.merge(changes, read_checkpoint(table))


def test_a_merge_that_loses_to_a_writer_that_does_not_replicate_is_merged_again(shop_config, caplog):
    """A rewrite or a user's delete moves the snapshot but not the offsets: the merge is applied on
    the new snapshot at once, not failed."""
    with Replicator(load_config(shop_config("fail")), column_lookup=columns) as replicator:
        _merge(replicator, _insert(0, 1, 7), _insert(1, 2, 8))
        other = replicator.catalog.load_table("ns.items")  # not the replicator's table object
        other.delete("id = 1")
        with caplog.at_level(logging.INFO, logger="floe.replication"):
            _merge(replicator, _insert(2, 3, 9))
        assert rows(replicator) == [{"id": 2, "code": 8}, {"id": 3, "code": 9}]
        assert replicator.checkpoints()["items"].offsets == {TOPIC: {0: 3}}
    assert "items: another writer committed first; merging again on its snapshot" in caplog.text


def test_a_merge_that_loses_to_another_replicator_fails(shop_config):
    """Another replicator moved the offsets: this batch may hold changes already applied, so it is
    refused (the stream then reads again from the table's new offsets)."""
    config = load_config(shop_config("fail"))
    with (
        Replicator(config, column_lookup=columns) as first,
        Replicator(config, column_lookup=columns) as second,
    ):
        _merge(first, _insert(0, 1, 7))
        _merge(second, _insert(1, 2, 8))
        with pytest.raises(ConcurrentWriteError):
            _merge(first, _insert(1, 2, 8))
        assert rows(first) == [{"id": 1, "code": 7}, {"id": 2, "code": 8}]


def test_a_replicator_expires_the_snapshots_of_the_tables_it_commits_to(shop_config):
    """As a stream does every minute: by the maintain settings, keeping the checkpoint."""
    config = load_config(shop_config("fail"))
    config = config.model_copy(update={"maintain": MaintainConfig(snapshot_retention_hours=0)})
    with Replicator(config, column_lookup=columns) as replicator:
        for offset in range(4):
            _merge(replicator, _insert(offset, offset, offset))
        replicator.expire_snapshots("items")
        table = replicator.load("items")
        assert [s.snapshot_id for s in table.metadata.snapshots] == [table.current_snapshot().snapshot_id]
        assert replicator.checkpoints()["items"].offsets == {TOPIC: {0: 4}}
        assert [row["id"] for row in rows(replicator)] == [0, 1, 2, 3]


def test_a_partition_field_on_a_column_the_table_lacks_stops_before_anything_is_created(shop_config):
    path = shop_config("fail")
    document = yaml.safe_load(path.read_text())
    document["sources"][0]["tables"][0]["partition_by"] = ["day(created)"]
    path.write_text(yaml.safe_dump(document))
    with Replicator(load_config(path), column_lookup=columns) as replicator:
        with pytest.raises(LayoutError, match=r"table items: partition_by names column 'created', which the"):
            _merge(replicator, _insert(0, 1, 7))
        assert replicator.table("items") is None


def test_a_changed_partition_by_evolves_the_table_at_the_next_run(shop_config):
    path = shop_config("fail")
    with Replicator(load_config(path), column_lookup=columns) as replicator:
        _merge(replicator, _insert(0, 1, 7))
    document = yaml.safe_load(path.read_text())
    document["sources"][0]["tables"][0]["partition_by"] = ["bucket(4, id)"]
    path.write_text(yaml.safe_dump(document))
    with Replicator(load_config(path), column_lookup=columns) as replicator:
        _merge(replicator, _insert(1, 2, 8))
        table = replicator.load("items")
        assert [field.name for field in table.spec().fields] == ["id_bucket"]
        assert rows(replicator) == [{"id": 1, "code": 7}, {"id": 2, "code": 8}]
