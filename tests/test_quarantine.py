"""Quarantine and replay through the Replicator, on a pyiceberg SQL catalog (no Kafka needed:
events are Debezium-format records handed to the decoder directly)."""

from __future__ import annotations

import pytest

from floe_cdc.core.config import load_config
from floe_cdc.core.errors import SchemaMappingError
from floe_cdc.lake import quarantine
from floe_cdc.lake.key_index import KeyIndex
from floe_cdc.lake.resnapshot_mark import RESNAPSHOT_PROPERTY, ResnapshotMark, mark_resnapshot
from floe_cdc.pipeline.replay import replay_quarantined
from floe_cdc.pipeline.replication import Replicator
from tests.debezium_events import event, field
from tests.shop import TOPIC, cycle, rows

INT_CODE = [field("id", "int64", "INT8", optional=False), field("code", "int32", "INT4")]
TEXT_CODE = [field("id", "int64", "INT8", optional=False), field("code", "string", "TEXT")]


def columns(source, table) -> dict[str, int]:
    """The source catalog's column ids of public.items (no PostgreSQL in unit tests)."""
    return {"id": 1, "code": 2}


def pending(replicator: Replicator) -> list[tuple[int, str]]:
    return [
        (e["offset"], e["status"])
        for e in quarantine.entries(replicator.quarantine_table, status=None).to_pylist()
    ]


def test_poison_events_are_set_aside_and_the_rest_merged(shop_config):
    with Replicator(load_config(shop_config("fail")), column_lookup=columns) as replicator:
        good = event(TOPIC, 0, "public.items", INT_CODE, ["id"], "c", {"id": 1, "code": 7}, (10, 11))
        garbage = good.__class__(TOPIC, 0, 1, good.key, b"not json at all")
        cycle(replicator, [good, garbage])
        assert rows(replicator) == [{"id": 1, "code": 7}]
        entry = quarantine.entries(replicator.quarantine_table).to_pylist()[0]
        assert (entry["table"], entry["offset"], entry["value"]) == ("items", 1, b"not json at all")
        assert "cannot decode the change event" in entry["error"]
        assert replicator.checkpoints()["items"].offsets == {TOPIC: {0: 2}}


def test_incompatible_change_fails_that_table_by_default(shop_config):
    with Replicator(load_config(shop_config("fail")), column_lookup=columns) as replicator:
        cycle(
            replicator,
            [event(TOPIC, 0, "public.items", INT_CODE, ["id"], "c", {"id": 1, "code": 7}, (10, 11))],
        )
        changed = event(TOPIC, 1, "public.items", TEXT_CODE, ["id"], "u", {"id": 1, "code": "x7"}, (12, 13))
        with pytest.raises(SchemaMappingError, match="column code changed from int to string"):
            cycle(replicator, [changed])
        assert replicator.checkpoints()["items"].offsets == {TOPIC: {0: 1}}


def test_quarantine_policy_then_fix_and_replay_without_duplicates(shop_config):
    with Replicator(load_config(shop_config("quarantine")), column_lookup=columns) as replicator:
        cycle(
            replicator,
            [
                event(TOPIC, 0, "public.items", INT_CODE, ["id"], "c", {"id": 1, "code": 7}, (10, 11)),
                event(TOPIC, 1, "public.items", INT_CODE, ["id"], "c", {"id": 2, "code": 8}, (10, 12)),
            ],
        )
        cycle(
            replicator,
            [
                event(TOPIC, 2, "public.items", TEXT_CODE, ["id"], "u", {"id": 1, "code": "x7"}, (13, 14)),
                event(TOPIC, 3, "public.items", TEXT_CODE, ["id"], "u", {"id": 2, "code": "x8"}, (13, 15)),
            ],
        )
        assert pending(replicator) == [(2, "pending"), (3, "pending")]
        assert replicator.checkpoints()["items"].offsets == {TOPIC: {0: 4}}
        # A later change of row 2 supersedes its quarantined event.
        cycle(
            replicator,
            [event(TOPIC, 4, "public.items", INT_CODE, ["id"], "u", {"id": 2, "code": 9}, (16, 17))],
        )
        assert pending(replicator) == [(2, "pending"), (3, "superseded")]

    # The fix: keep the old integer values under another name, so that "code" can become text.
    with Replicator(load_config(shop_config("quarantine")), column_lookup=columns) as replicator:
        with replicator.load("items").update_schema() as update:
            update.rename_column("code", "code_int")
        outcomes = replay_quarantined(replicator.config, column_lookup=columns)
        assert [(o.table, o.replayed, o.still_failing) for o in outcomes] == [("items", 1, 0)]
        # The replayed change is the whole new row: the integer column is gone from it.
        assert rows(replicator) == [
            {"id": 1, "code_int": None, "code": "x7"},
            {"id": 2, "code_int": 9, "code": None},
        ]
        assert pending(replicator) == [(2, "replayed"), (3, "superseded")]
        assert replay_quarantined(replicator.config, column_lookup=columns) == []
        assert rows(replicator)[0] == {"id": 1, "code_int": None, "code": "x7"}


def test_during_a_resnapshot_an_incompatible_column_is_replaced_then_refilled(shop_config):
    with Replicator(load_config(shop_config("fail")), column_lookup=columns) as replicator:
        cycle(
            replicator,
            [
                event(TOPIC, 0, "public.items", INT_CODE, ["id"], "c", {"id": 1, "code": 7}, (10, 11)),
                event(TOPIC, 1, "public.items", INT_CODE, ["id"], "c", {"id": 2, "code": 8}, (10, 12)),
                event(TOPIC, 2, "public.items", INT_CODE, ["id"], "c", {"id": 3, "code": 9}, (10, 13)),
            ],
        )
        mark_resnapshot(replicator.load("items"), ResnapshotMark())
        # ALTER ... TYPE text, an update, a delete; then the blocking snapshot at the last position.
        cycle(
            replicator,
            [
                event(TOPIC, 3, "public.items", TEXT_CODE, ["id"], "u", {"id": 1, "code": "x7"}, (14, 15)),
                event(TOPIC, 4, "public.items", TEXT_CODE, ["id"], "d", {"id": 3}, (16, 17)),
            ],
        )
        assert rows(replicator) == [{"id": 1, "code": "x7"}, {"id": 2, "code": None}]
        assert RESNAPSHOT_PROPERTY in replicator.load("items").properties
        snapshot = [
            event(TOPIC, 5, "public.items", TEXT_CODE, ["id"], "r", {"id": 1, "code": "x7"}, (16, 17)),
            event(
                TOPIC,
                6,
                "public.items",
                TEXT_CODE,
                ["id"],
                "r",
                {"id": 2, "code": "8"},
                (16, 17),
                snapshot="last",
            ),
        ]
        cycle(replicator, snapshot)
        assert rows(replicator) == [{"id": 1, "code": "x7"}, {"id": 2, "code": "8"}]
        assert RESNAPSHOT_PROPERTY not in replicator.load("items").properties


def test_a_following_replicator_keeps_the_key_index_of_the_cycle_before(shop_config, monkeypatch):
    """``--follow`` runs each cycle with a new Replicator: the index built by one is reused by
    the next, and caught up (not rebuilt) when another writer moved the table under it."""
    builds = []
    real_build = KeyIndex.build
    monkeypatch.setattr(KeyIndex, "build", lambda *a: builds.append(a) or real_build(*a))
    config = load_config(shop_config("fail"))
    for offset, code in enumerate((7, 8)):
        with Replicator(config, column_lookup=columns) as replicator:
            stamp = (10 + 2 * offset, 11 + 2 * offset)
            cycle(
                replicator,
                [event(TOPIC, offset, "public.items", INT_CODE, ["id"], "u", {"id": 1, "code": code}, stamp)],
            )
    assert len(builds) == 1
    with Replicator(config, column_lookup=columns) as replicator:
        replicator.load("items").delete("id = 1")  # another writer
        cycle(
            replicator,
            [event(TOPIC, 2, "public.items", INT_CODE, ["id"], "c", {"id": 2, "code": 9}, (20, 21))],
        )
        assert rows(replicator) == [{"id": 2, "code": 9}]
        assert len(replicator.indexes["items"]) == 1
    assert len(builds) == 1
