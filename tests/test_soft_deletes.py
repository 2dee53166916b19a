"""Soft deletes (``deletes: soft``): a deleted row stays, flagged, with its last values; counted as
gone by the reconciliation (no services: a SQLite catalog on the local filesystem)."""

from __future__ import annotations

import yaml

from floe_cdc.core.config import load_config
from floe_cdc.lake.lookup import key_columns
from floe_cdc.lake.schema import POSITION_FIELD
from floe_cdc.pipeline.replication import Replicator
from tests.debezium_events import event, field
from tests.shop import TOPIC, cycle

ITEM = [field("id", "int64", "INT8", optional=False), field("code", "int32", "INT4")]


def columns(source, table) -> dict[str, int]:
    return {"id": 1, "code": 2}


def _change(offset: int, op: str, item: int, code: int | None = None):
    row = {"id": item} if op == "d" else {"id": item, "code": code}
    return event(TOPIC, offset, "public.items", ITEM, ["id"], op, row, (offset, offset))


def _rows(replicator: Replicator) -> dict[int, tuple]:
    stored = replicator.load("items").scan().to_arrow().drop_columns([POSITION_FIELD]).to_pylist()
    return {r["id"]: (r["code"], r["_floe_deleted"], r["_floe_deleted_at"] is not None) for r in stored}


def test_a_deleted_row_stays_flagged_with_its_values_until_it_is_inserted_again(shop_config):
    path = shop_config("fail")
    document = yaml.safe_load(path.read_text())
    document["sources"][0]["tables"] = [{"name": "public.items", "deletes": "soft"}]
    path.write_text(yaml.safe_dump(document))
    with Replicator(load_config(path), column_lookup=columns) as replicator:
        cycle(replicator, [_change(0, "c", 1, 7), _change(1, "c", 2, 8), _change(2, "c", 4, 9)])
        # Deleted from a stored row; inserted, updated and deleted within one batch.
        cycle(
            replicator, [_change(3, "d", 1), _change(4, "c", 3, 5), _change(5, "u", 3, 6), _change(6, "d", 3)]
        )
        assert _rows(replicator) == {
            1: (7, True, True),
            2: (8, False, False),
            3: (6, True, True),
            4: (9, False, False),
        }
        assert sorted(key_columns(replicator.load("items"))["id"].to_pylist()) == [2, 4]
        # Inserted again: live, with its new values; an update of a live row leaves it live.
        cycle(replicator, [_change(7, "c", 1, 70), _change(8, "u", 2, 80)])
        assert _rows(replicator) == {
            1: (70, False, False),
            2: (80, False, False),
            3: (6, True, True),
            4: (9, False, False),
        }
        assert sorted(key_columns(replicator.load("items"))["id"].to_pylist()) == [1, 2, 4]
