"""A column renamed at the source is renamed in Iceberg and keeps its values (no services: the
source catalog's column ids are given; the stack test renames a real PostgreSQL column)."""

from __future__ import annotations

from floe_cdc.core.changes import current_names
from floe_cdc.core.config import load_config
from floe_cdc.pipeline.replication import Replicator
from tests.debezium_events import event, field
from tests.shop import TOPIC, cycle, rows

KEY = field("id", "int64", "INT8", optional=False)


def items(*names: str) -> list[dict]:
    return [KEY, *(field(name, "int32", "INT4") for name in names)]


class Catalog:
    """The source's current column ids (attnum), changed by the test as DDL would."""

    def __init__(self, **ids: int) -> None:
        self.ids = {"id": 1, **ids}
        self.asked = 0

    def __call__(self, source, table) -> dict[str, int]:
        self.asked += 1
        return dict(self.ids)


def test_rename_keeps_values_and_field_id_even_mid_batch(shop_config):
    source = Catalog(code=2)
    with Replicator(load_config(shop_config("fail")), column_lookup=source) as replicator:
        cycle(
            replicator,
            [
                event(TOPIC, 0, "public.items", items("code"), ["id"], "r", {"id": 1, "code": 7}, (None, 10)),
                event(TOPIC, 1, "public.items", items("code"), ["id"], "r", {"id": 2, "code": 8}, (None, 10)),
            ],
        )
        field_id = replicator.load("items").schema().find_field("code").field_id
        source.ids = {"id": 1, "label": 2}  # ALTER TABLE items RENAME code TO label
        cycle(
            replicator,
            [
                # Written before the rename, read in the same batch as the first event after it.
                event(TOPIC, 2, "public.items", items("code"), ["id"], "u", {"id": 1, "code": 70}, (11, 12)),
                event(TOPIC, 3, "public.items", items("label"), ["id"], "c", {"id": 3, "label": 9}, (13, 14)),
            ],
        )
        schema = replicator.load("items").schema()
        assert "code" not in schema.column_names
        assert schema.find_field("label").field_id == field_id
        assert rows(replicator) == [
            {"id": 1, "label": 70},
            {"id": 2, "label": 8},
            {"id": 3, "label": 9},
        ]
        asked = source.asked
        cycle(
            replicator,
            [event(TOPIC, 4, "public.items", items("label"), ["id"], "u", {"id": 2, "label": 80}, (15, 16))],
        )
        assert source.asked == asked  # known columns: the source is not asked again
        assert rows(replicator)[1] == {"id": 2, "label": 80}


def test_dropped_then_added_column_with_the_old_name_is_a_new_column(shop_config):
    source = Catalog(code=2)
    with Replicator(load_config(shop_config("fail")), column_lookup=source) as replicator:
        cycle(
            replicator,
            [event(TOPIC, 0, "public.items", items("code"), ["id"], "r", {"id": 1, "code": 7}, (None, 10))],
        )
        source.ids = {"id": 1, "label": 2, "code": 3}  # RENAME code TO label; ADD COLUMN code
        cycle(
            replicator,
            [
                event(
                    TOPIC, 1, "public.items", items("label", "code"), ["id"], "c",
                    {"id": 2, "label": 5, "code": 6}, (11, 12),
                )
            ],
        )  # fmt: skip
        assert rows(replicator) == [{"id": 1, "label": 7, "code": None}, {"id": 2, "label": 5, "code": 6}]


def test_a_name_two_columns_have_had_is_told_apart_by_position():
    history = {1: ["id", "key"], 2: ["v", "Value Text"], 3: ["n"], 5: ["v"]}
    assert current_names(["id", "v", "n"], history) == ["key", "Value Text", "n"]
    assert current_names(["key", "Value Text", "n", "v"], history) == ["key", "Value Text", "n", "v"]
    assert current_names(["id", "unknown"], history) == ["key", "unknown"]
