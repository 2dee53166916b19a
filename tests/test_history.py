"""History tables (``history: true``): every change appended in order to ``<table>_history``,
exactly once across a stop between its commit and the table's (no services: a SQLite catalog)."""

from __future__ import annotations

import pytest
import yaml

from floe_cdc.core.config import MaintainConfig, load_config
from floe_cdc.pipeline import replication
from floe_cdc.pipeline.maintenance import maintain
from floe_cdc.pipeline.replication import Replicator
from tests.debezium_events import event, field
from tests.shop import TOPIC, cycle, rows

ITEM = [field("id", "int64", "INT8", optional=False), field("code", "int32", "INT4")]


def columns(source, table) -> dict[str, int]:
    return {"id": 1, "code": 2}


def _change(offset: int, op: str, item: int, code: int | None = None):
    row = {"id": item} if op == "d" else {"id": item, "code": code}
    return event(TOPIC, offset, "public.items", ITEM, ["id"], op, row, (offset, 100 + offset))


def _config(shop_config, **options):
    path = shop_config("fail")
    document = yaml.safe_load(path.read_text())
    document["sources"][0]["tables"] = [{"name": "public.items", "history": True, **options}]
    path.write_text(yaml.safe_dump(document))
    return load_config(path)


def _history(replicator: Replicator) -> list[tuple]:
    stored = replicator.load("items_history").scan().to_arrow().sort_by("_floe_source_position").to_pylist()
    return [(r["_floe_op"], r["id"], r["code"]) for r in stored]


def test_every_change_is_appended_in_order_once_across_a_stop_between_the_two_commits(
    shop_config, monkeypatch
):
    with Replicator(_config(shop_config), column_lookup=columns) as replicator:
        cycle(replicator, [_change(0, "c", 1, 7), _change(1, "c", 2, 8)])
        batch = [_change(2, "u", 1, 9), _change(3, "d", 2), _change(4, "c", 3, 5)]
        merge = replication.merge_batch

        def stopped(*args, **kwargs):
            raise RuntimeError("stopped between the history's commit and the table's")

        monkeypatch.setattr(replication, "merge_batch", stopped)
        with pytest.raises(RuntimeError, match="stopped between"):
            cycle(replicator, batch)
        monkeypatch.setattr(replication, "merge_batch", merge)
        # Read again from the table's offsets, with one more change: the history keeps each once.
        cycle(replicator, [*batch, _change(5, "u", 3, 6)])
        assert _history(replicator) == [
            ("insert", 1, 7),
            ("insert", 2, 8),
            ("update", 1, 9),
            ("delete", 2, None),
            ("insert", 3, 5),
            ("update", 3, 6),
        ]
        assert rows(replicator) == [{"id": 1, "code": 9}, {"id": 3, "code": 6}]
        history = replicator.load("items_history")
        assert [f.name for f in history.spec().fields] == ["_floe_source_ts_day"]
        assert not history.schema().identifier_field_ids
        stored = history.scan().to_arrow()
        assert stored["_floe_source_ts"].null_count == 0 and stored["_floe_committed_at"].null_count == 0


def test_a_soft_deleted_row_is_recorded_as_a_delete(shop_config):
    with Replicator(_config(shop_config, deletes="soft"), column_lookup=columns) as replicator:
        cycle(replicator, [_change(0, "c", 1, 7)])
        cycle(replicator, [_change(1, "d", 1)])
        assert _history(replicator) == [("insert", 1, 7), ("delete", 1, None)]


def test_maintain_covers_the_history_table(shop_config):
    """Its small files of one commit each are compacted, its old snapshots expired."""
    config = _config(shop_config)
    with Replicator(config, column_lookup=columns) as replicator:
        for offset in range(6):
            cycle(replicator, [_change(offset, "c", offset, offset)])
    settings = MaintainConfig(min_small_files=2, snapshot_retention_hours=0, orphan_min_age_hours=0)
    results = {r.table: r for r in maintain(config.model_copy(update={"maintain": settings}), ["items"])}
    assert set(results) == {"items", "items_history"}
    history = results["items_history"]
    assert history.error is None and history.files_rewritten == 6 and history.snapshots_expired > 0
    with Replicator(config, column_lookup=columns) as replicator:
        assert [op for op, _, _ in _history(replicator)] == ["insert"] * 6
