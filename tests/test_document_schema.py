import uuid
from datetime import UTC, datetime
from decimal import Decimal

import pyarrow as pa
from bson import Binary, Decimal128, Int64, ObjectId, Regex

from floe_cdc.capture.mongodb.extended_json import from_json
from floe_cdc.capture.mongodb.shape import (
    CONFLICTS_COLUMN,
    DECIMAL,
    DOC_COLUMN,
    TIMESTAMP,
    DocumentShape,
    infer,
)

OID = ObjectId("65f0c0ffee00000000000001")
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")
WHEN = datetime(2024, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)


def _table(shape, documents, existing=None):
    types = shape.types(documents, existing)
    rows = [shape.row(f"k{i}", doc, types) for i, doc in enumerate(documents)]
    schema = pa.schema([pa.field(c.name, c.type) for c in shape.columns(types)])
    return pa.Table.from_pylist(rows, schema=schema)


def test_every_bson_type_has_a_column_type():
    assert infer(True) == pa.bool_()
    assert infer(7) == infer(Int64(7)) == pa.int64()
    assert infer(1.5) == pa.float64()
    assert infer("x") == infer(OID) == infer(Regex("^a")) == pa.string()
    assert infer(WHEN) == TIMESTAMP
    assert infer(Decimal128("1.10")) == DECIMAL
    assert infer(UID) == pa.uuid()
    assert infer(Binary(b"\x00\x01")) == pa.binary()
    assert infer({"a": {"b": 1}, "c": None}) == pa.struct([("a", pa.struct([("b", pa.int64())]))])
    assert infer([1, 2.5]) == pa.list_(pa.float64())
    assert infer(None) is infer([]) is infer({}) is None


def test_typed_documents_become_columns_and_read_back():
    shape = DocumentShape("typed")
    doc = {
        "_id": OID,
        "name": "Ada",
        "n": Int64(2**40),
        "price": Decimal128("12.50"),
        "at": WHEN,
        "ref": UID,
        "blob": Binary(b"\x00\xff"),
        "oid": OID,
        "address": {"city": "Paris", "geo": {"lat": 48.85}},
        "lines": [{"sku": "a", "qty": 1}, {"sku": "b"}],
    }
    table = _table(shape, [doc])
    row = table.to_pylist()[0]
    assert row["name"] == "Ada" and row["n"] == 2**40 and row["price"] == Decimal("12.5")
    assert row["at"] == WHEN and row["ref"] == UID and row["blob"] == b"\x00\xff"
    assert row["oid"] == str(OID)
    assert row["address"] == {"city": "Paris", "geo": {"lat": 48.85}}
    assert row["lines"] == [{"sku": "a", "qty": 1}, {"sku": "b", "qty": None}]
    assert row[CONFLICTS_COLUMN] is None
    back = shape.document({**row, "_id": '{"$oid":"65f0c0ffee00000000000001"}'})
    assert back["_id"] == OID and back["lines"][1] == {"sku": "b"} and back["oid"] == str(OID)


def test_conflicting_values_are_kept_in_the_conflicts_column():
    shape = DocumentShape("typed")
    stored = _table(shape, [{"_id": 1, "qty": 3, "tags": ["a"], "meta": {"v": 1}}]).schema
    later = [
        {
            "_id": 2,
            "qty": "three",
            "tags": ["b", 4],
            "meta": {"v": "x", "w": True},
            "a.b": 1,
            "empty": [],
            "__floe_op": "mine",
        },
        {"_id": 3, "qty": 2.5},
    ]
    table = _table(shape, later, stored)
    assert table.schema.field("qty").type == pa.int64()  # the stored type stays
    first, second = table.to_pylist()
    assert first["qty"] is None and first["tags"] is None and first["meta"] == {"v": None, "w": True}
    assert from_json(first[CONFLICTS_COLUMN]) == {
        "qty": "three",
        "tags": ["b", 4],
        "meta": {"v": "x"},
        "a.b": 1,
        "empty": [],
        "__floe_op": "mine",
    }
    assert from_json(second[CONFLICTS_COLUMN]) == {"qty": 2.5}
    restored = shape.document({**first, "_id": "2"})
    assert restored["qty"] == "three" and restored["meta"] == {"v": "x", "w": True}


def test_long_and_double_in_one_batch_become_double():
    table = _table(DocumentShape("typed"), [{"x": 1}, {"x": 2.5}])
    assert table.schema.field("x").type == pa.float64()
    assert table["x"].to_pylist() == [1.0, 2.5]


def test_raw_policy_keeps_the_document_and_extracts_fields():
    shape = DocumentShape("raw", ("status", "total"))
    doc = {"_id": OID, "status": "paid", "total": "n/a", "items": [{"sku": "a"}], "at": WHEN}
    row, other = _table(shape, [doc, {"_id": 2, "status": "new", "total": 5}]).to_pylist()
    assert row["status"] == "paid" and row["total"] == "n/a"
    assert other["total"] is None  # a long in the string column: null here, kept in _doc
    assert from_json(other[DOC_COLUMN]) == {"_id": 2, "status": "new", "total": 5}
    assert from_json(row[DOC_COLUMN]) == doc
    assert shape.document(row) == doc
