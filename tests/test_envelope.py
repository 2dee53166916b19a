"""Decoding of real Debezium PostgreSQL events (recorded from the local stack)."""

import datetime as dt
import json
import uuid
from decimal import Decimal

import pyarrow as pa
import pytest

from floe_cdc.capture.envelope import KafkaRecord, TopicDecoder
from floe_cdc.core.changes import OP_COLUMN
from tests.conftest import FIXTURES
from tests.debezium_events import event, field


def records(table: str) -> list[KafkaRecord]:
    found = []
    for line in (FIXTURES / "debezium" / "postgres_events.jsonl").read_text().splitlines():
        item = json.loads(line)
        if item["topic"].endswith(f".{table}"):
            key = item["key"].encode() if item["key"] else None
            value = item["value"].encode() if item["value"] else None
            found.append(KafkaRecord(item["topic"], item["partition"], item["offset"], key, value))
    return found


def test_types_follow_the_source_declaration():
    batch = TopicDecoder("customers", "shop", "public.customers").decode(records("customers"))
    schema = batch.data.schema
    assert batch.key == ["id"]
    assert schema.field("id").type == pa.int32()
    assert schema.field("created_at").type == pa.timestamp("us", tz="UTC")
    assert schema.field("birth_date").type == pa.date32()
    assert isinstance(schema.field("external_id").type, pa.UuidType)
    assert schema.field("tags").type == pa.list_(pa.string())
    assert batch.column("profile").logical == "json"
    assert batch.column("email").source_type == "VARCHAR(200)"
    row = batch.data.to_pylist()[0]
    assert row["id"] == 1
    assert row["created_at"] == dt.datetime(2023, 1, 1, 0, 37, 13, 123456, tzinfo=dt.UTC)
    assert row["birth_date"] == dt.date(1971, 9, 7)  # 1950-01-01 + 7919 days, as seeded
    assert row["external_id"] == uuid.UUID("f772b9fc-56bb-badf-3173-56b02e65ddff")
    assert json.loads(row["profile"]) == {"tier": "silver", "newsletter": False}
    assert row["tags"] == ["tag1", "tag1"]
    assert batch.position["snapshot"] in ("first", "first_in_data_collection", "true")


def test_numeric_time_bytes_and_arrays():
    batch = TopicDecoder("products", "shop", "public.products").decode(records("products"))
    schema = batch.data.schema
    assert schema.field("price").type == pa.decimal128(12, 2)
    assert schema.field("opens_at").type == pa.time64("us")
    assert schema.field("listed_at").type == pa.timestamp("us")
    assert schema.field("thumbnail").type == pa.binary()
    assert schema.field("ratings").type == pa.list_(pa.int32())
    assert schema.field("stock").type == pa.int16()
    # An unconstrained NUMERIC added later stays exact as text.
    assert schema.field("extra").type == pa.string()
    rows = batch.data.to_pylist()
    assert [r[OP_COLUMN] for r in rows] == ["r", "r", "u", "c"]
    first = rows[0]
    assert first["price"] == Decimal("372.47")
    assert first["opens_at"] == dt.time(8, 1, 0, 500000)
    assert first["listed_at"] == dt.datetime(2024, 3, 2, 12, 30)
    assert first["thumbnail"] == bytes.fromhex("c4ca4238a0b923820dcc509a6f75849b")
    assert first["ratings"] == [2, 4]
    assert rows[0]["extra"] is None and rows[3]["extra"] == "12345678901234567890.123456789"
    assert batch.offsets == {"floe.shop.public.products": {0: 202}}


def test_deletes_carry_the_key_and_tombstones_are_skipped():
    batch = TopicDecoder("order_lines", "shop", "public.order_lines").decode(records("order_lines"))
    assert batch.key == ["order_id", "line_no"]
    rows = batch.data.to_pylist()
    assert [r[OP_COLUMN] for r in rows] == ["r", "d"]
    assert rows[1]["order_id"] == 1 and rows[1]["line_no"] == 2 and rows[1]["quantity"] is None
    assert batch.skipped == 1
    assert batch.offsets["floe.shop.public.order_lines"][0] == 6002


def test_poison_events_are_quarantined_and_the_rest_decoded():
    good = records("order_lines")
    unparseable = KafkaRecord("floe.shop.public.order_lines", 0, 41, b'{"id":1}', b'{"schema": nonsense')
    misrouted = KafkaRecord(
        "floe.shop.public.order_lines",
        0,
        42,
        good[0].key,
        good[0].value.replace(b'"table":"order_lines"', b'"table":"x"'),
    )
    unfit = KafkaRecord(
        "floe.shop.public.order_lines",
        0,
        43,
        good[0].key,
        good[0].value.replace(b'"unit_price":"144.78"', b'"unit_price":"12345678901.5"'),
    )
    batch = TopicDecoder("order_lines", "shop", "public.order_lines").decode(
        [*good, unparseable, misrouted, unfit]
    )
    assert [r[OP_COLUMN] for r in batch.data.to_pylist()] == ["r", "d"]
    reasons = {q.offset: q.error for q in batch.quarantined}
    assert set(reasons) == {41, 42, 43}
    assert "cannot decode the change event" in reasons[41]
    assert "event of table public.x arrived for public.order_lines" in reasons[42]
    assert "column unit_price (NUMERIC(10,2)) cannot hold '12345678901.5'" in reasons[43]
    assert batch.quarantined[0].value == b'{"schema": nonsense'
    assert batch.offsets["floe.shop.public.order_lines"][0] == 44


def test_events_before_an_added_column_take_its_default():
    topic = "floe.shop.public.items"
    before = [field("id", "int64", "INT8", optional=False), field("v", "string", "TEXT")]
    after = [*before, field("extra", "int32", "INT4", default=5)]
    records = [
        event(topic, 0, "public.items", before, ["id"], "u", {"id": 1, "v": "old schema"}, (10, 11)),
        event(topic, 1, "public.items", after, ["id"], "c", {"id": 2, "v": "new", "extra": 9}, (12, 13)),
    ]
    batch = TopicDecoder("items", "shop", "public.items").decode(records)
    assert [(r["id"], r["extra"]) for r in batch.data.to_pylist()] == [(1, 5), (2, 9)]
    assert batch.column("extra").default == 5


def test_nan_and_infinities_arrive_as_strings_and_decode_as_floats():
    """Kafka Connect's JSON converter writes them as "NaN", "Infinity", "-Infinity"."""
    from floe_cdc.capture.types import map_field

    for kind, arrow_type in (("float", pa.float32()), ("double", pa.float64())):
        column, convert = map_field({"type": kind, "optional": True, "field": "x"})
        assert column.type == arrow_type
        values = convert(["NaN", "Infinity", "-Infinity", 1.5, None]).to_pylist()
        assert values[0] != values[0] and values[1:] == [float("inf"), float("-inf"), 1.5, None]


def test_numeric_special_values_read_as_postgresql_prints_them():
    """Debezium sends a NUMERIC's NaN and infinities by their Java names; an unconstrained NUMERIC
    keeps PostgreSQL's text (as the direct load does), and a decimal refuses them by that text."""
    from floe_cdc.capture.types import map_field

    params = {"__debezium.source.column.type": "NUMERIC"}
    schema = {"type": "string", "optional": True, "field": "x", "parameters": params}
    column, convert = map_field(schema)
    assert column.type == pa.string()
    values = ["NAN", "POSITIVE_INFINITY", "NEGATIVE_INFINITY", "1.50", None]
    assert convert(values).to_pylist() == ["NaN", "Infinity", "-Infinity", "1.50", None]
    decimal = {**params, "__debezium.source.column.length": "10", "__debezium.source.column.scale": "2"}
    column, convert = map_field({**schema, "parameters": decimal})
    assert column.type == pa.decimal128(10, 2)
    with pytest.raises(pa.ArrowInvalid, match="'NaN'"):
        convert(["NAN"])
