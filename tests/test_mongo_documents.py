"""MongoDB change events through Floe's decoder and merge into a real Iceberg table (SQLite catalog).

The stack test ``tests/stack/test_mongodb.py`` runs the same scenario through the real broker and
the replicate flow; this one reaches every branch quickly and checks each batch on its way.
"""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from floe_cdc.capture.mongodb.decoder import DocumentDecoder
from floe_cdc.capture.mongodb.shape import CONFLICTS_COLUMN, KEY_COLUMN, DocumentShape
from floe_cdc.core.config import CollectionRef
from floe_cdc.lake.checkpoint import read_checkpoint
from floe_cdc.lake.lookup import StoredTable
from floe_cdc.lake.merge import merge_batch
from floe_cdc.lake.schema import create_table
from tests.debezium_mongo_events import mongo_event
from tests.mongo_scenario import GHOST_OFFSET, POISON_OFFSET, batches, comparable, expected_documents

TOPIC = "floe.mg.shop.orders"
POLICIES = {
    "typed": CollectionRef(name="orders"),
    "raw": CollectionRef(name="orders", schema_policy="raw", extract=["customer", "qty"]),
}


def documents(table, shape: DocumentShape) -> list[dict]:
    rows = table.scan().to_arrow().to_pylist()
    return sorted((comparable(shape.document(row)) for row in rows), key=lambda doc: repr(doc["_id"]))


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_collection_history_ends_equal_to_the_documents(catalog, policy):
    collection = POLICIES[policy]
    decoder = DocumentDecoder("orders", "mg", "shop", collection, lambda: stored(catalog))
    results, quarantined = [], []
    for records in batches(TOPIC):
        batch = decoder.decode(records)
        quarantined += batch.quarantined
        table = load(catalog) or create_table(catalog, "ns", batch)
        results.append(merge_batch(table, batch, read_checkpoint(table)))
    table = load(catalog)
    assert documents(table, decoder.shape) == expected_documents(policy)

    snapshot, stream, redelivery = results
    assert (snapshot.inserted, snapshot.updated, snapshot.deleted) == (6, 0, 0)
    assert (stream.inserted, stream.updated, stream.deleted) == (1, 5, 1)
    # The redelivered stream is dropped below the watermark; the change at the watermark itself is
    # applied again (to the same result), and the later change of the first order applies.
    assert (redelivery.inserted, redelivery.updated, redelivery.deleted) == (0, 2, 0)
    assert redelivery.replayed == 7
    reasons = {(q.offset % 100, q.error.split(";")[0]) for q in quarantined}
    assert {offset for offset, _ in reasons} == {POISON_OFFSET % 100, GHOST_OFFSET % 100}
    assert any("no earlier version" in q.error and '"ghost"' in q.error for q in quarantined)

    position = read_checkpoint(table).position
    assert position["ts_ms"] == 1_700_000_061_000 and position["ord"] == 1


def load(catalog):
    return catalog.load_table(("ns", "orders")) if catalog.table_exists(("ns", "orders")) else None


def stored(catalog) -> StoredTable | None:
    table = load(catalog)
    return StoredTable(table, KEY_COLUMN) if table is not None else None


def test_typed_schema_grows_nested_fields_and_keeps_conflicts(catalog):
    decoder = DocumentDecoder("orders", "mg", "shop", POLICIES["typed"], lambda: stored(catalog))
    for records in batches(TOPIC):
        batch = decoder.decode(records)
        table = load(catalog) or create_table(catalog, "ns", batch)
        merge_batch(table, batch, read_checkpoint(table))
    schema = load(catalog).schema().as_arrow()
    address = schema.field("address").type
    assert [f.name for f in address] == ["city", "geo", "zip"]
    assert schema.field("qty").type == pa.int64()
    assert pa.types.is_large_list(schema.field("lines").type)
    rows = {r["_id"]: r for r in load(catalog).scan().to_arrow().to_pylist()}
    assert rows[str(2**40)]["qty"] is None
    assert rows[str(2**40)][CONFLICTS_COLUMN] == '{"qty":"many"}'
    assert rows['{"$oid":"65f0c0ffee00000000000001"}']["vendor"] == "65f0c0ffee000000000000aa"
    assert set(rows) == {
        '{"$oid":"65f0c0ffee00000000000001"}',
        '"order-2"',
        str(2**40),
        '{"$binary":{"base64":"EjRWeBI0VngSNFZ4EjRWeA==","subType":"04"}}',
        '{"region":"eu","n":7}',
        '{"$oid":"65f0c0ffee00000000000007"}',
    }


def test_a_document_arrow_cannot_hold_is_quarantined_and_the_rest_goes_on(catalog):
    good = mongo_event(TOPIC, 0, "c", 1, after={"name": "fine"})
    # A lone surrogate is valid in JSON text but not in UTF-8, so no Arrow string can hold it.
    bad = mongo_event(TOPIC, 1, "c", 2, after={"name": "x"})
    bad = dataclasses.replace(bad, value=bad.value.replace(b'\\"x\\"', b'\\"\\\\ud800\\"'))
    decoder = DocumentDecoder("orders", "mg", "shop", POLICIES["typed"], lambda: stored(catalog))
    batch = decoder.decode([good, bad])
    assert batch.data["name"].to_pylist() == ["fine"]
    [poison] = batch.quarantined
    assert poison.offset == 1 and "does not convert" in poison.error


def test_events_without_a_position_or_a_document_are_quarantined(catalog):
    no_position = mongo_event(TOPIC, 0, "c", 1, after={"name": "a"})
    no_position = dataclasses.replace(
        no_position, value=no_position.value.replace(b'"ts_ms":', b'"ts_x":', 1)
    )
    no_document = mongo_event(TOPIC, 1, "r", 2, after={"name": "b"})
    no_document = dataclasses.replace(
        no_document, value=no_document.value.replace(b'"after":"', b'"after":null,"x":"')
    )
    decoder = DocumentDecoder("orders", "mg", "shop", POLICIES["typed"], lambda: stored(catalog))
    batch = decoder.decode([no_position, no_document, mongo_event(TOPIC, 2, "c", 3, after={"name": "c"})])
    assert batch.data["_id"].to_pylist() == ["3"]
    errors = sorted(q.error for q in batch.quarantined)
    assert errors[0].startswith("a 'r' event without a document")
    assert errors[1].startswith(
        "cannot read the source position (source.ts_ms, source.ord): KeyError('ts_ms')"
    )
