"""One MongoDB collection's history as Debezium's MongoDB connector would put it on Kafka.

It covers every ``_id`` type (ObjectId, string, int32, int64, UUID, compound document), every
field type (ObjectId, date, Decimal128, int64, binary, UUID, nested documents, arrays of
documents and of scalars), and every update form: a full document with its
``updateDescription``, a patch only (dotted paths, array elements, ``removedFields``,
``truncatedArrays``), two patches of one document in a row, a replace, a delete with its
tombstone, a new nested field, a value of a conflicting type, a poison event and a patch for a
document never seen. ``EXPECTED`` is the collection at the end, written out by hand.
"""

from __future__ import annotations

import copy
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from bson import Binary, Decimal128, Int64, ObjectId

from floe_cdc.capture.envelope import KafkaRecord
from tests.debezium_mongo_events import mongo_event, tombstone

OID = ObjectId("65f0c0ffee00000000000001")
NEW_OID = ObjectId("65f0c0ffee00000000000007")
VENDOR = ObjectId("65f0c0ffee000000000000aa")
UID = uuid.UUID("12345678-1234-5678-1234-567812345678")
LONG_ID = Int64(2**40)
COMPOUND = {"region": "eu", "n": 7}
IDS: list[Any] = [OID, "order-2", 3, LONG_ID, UID, COMPOUND]
WHEN = datetime(2024, 3, 1, 12, 30, 15, 123000, tzinfo=UTC)
SNAPSHOT_SECONDS = 1_700_000_000
STREAM_SECONDS = SNAPSHOT_SECONDS + 60
POISON_OFFSET = 109
GHOST_OFFSET = 110


def order(number: int) -> dict[str, Any]:
    return {
        "customer": f"customer {number}",
        "placed": WHEN,
        "total": Decimal128(f"{number}2.50"),
        "qty": number,
        "big": Int64(2**40 + number),
        "blob": Binary(bytes([0, number])),
        "ref": UID,
        "vendor": VENDOR,
        "address": {"city": "Paris", "geo": {"lat": 48.85, "lon": 2.35}},
        "lines": [{"sku": "a", "qty": 1}, {"sku": "b", "qty": 2}, {"sku": "c", "qty": 3}],
        "tags": ["x", "y"],
        "note": "fragile",
        "paid": number % 2 == 0,
    }


def _snapshot(topic: str, collection: str) -> list[KafkaRecord]:
    last = len(IDS) - 1
    return [
        mongo_event(
            topic,
            offset,
            "r",
            doc_id,
            after=order(offset + 1),
            cluster_time=(SNAPSHOT_SECONDS, -1),
            wall_time=SNAPSHOT_SECONDS * 1000 + offset,
            snapshot="last" if offset == last else "true",
            collection=collection,
        )
        for offset, doc_id in enumerate(IDS)
    ]


def _stream(topic: str, collection: str) -> list[KafkaRecord]:
    first = {**order(1), "qty": 4}
    replaced = {"customer": "replaced", "qty": 50}
    new = {**order(7), "address": {"city": "Nice", "zip": "06000"}, "channel": "web"}
    events = [
        ("u", OID, {"after": first, "updated": {"qty": 4}}),
        (
            "u",
            "order-2",
            {
                "updated": {"address.city": "Lyon", "tags.1": "z", "lines.0.qty": 9},
                "removed": ["note"],
                "truncated": [("lines", 1)],
            },
        ),
        ("d", 3, {}),
        ("c", NEW_OID, {"after": new}),
        ("u", LONG_ID, {"updated": {"qty": "many"}}),
        ("u", UID, {"after": replaced}),
        ("u", COMPOUND, {"updated": {"extra.first": 1}}),
        ("u", COMPOUND, {"updated": {"extra.second": 2}, "removed": ["tags"]}),
    ]
    records = []
    offset = 100
    for increment, (op, doc_id, parts) in enumerate(events, start=1):
        records.append(
            mongo_event(
                topic,
                offset,
                op,
                doc_id,
                cluster_time=(STREAM_SECONDS, increment),
                collection=collection,
                **parts,
            )
        )
        offset += 1
        if op == "d":
            records.append(tombstone(topic, offset, doc_id))
            offset += 1
    assert offset == POISON_OFFSET
    records.append(KafkaRecord(topic, 0, POISON_OFFSET, records[0].key, b'{"schema":{},"payload":"broken"'))
    records.append(
        mongo_event(
            topic,
            GHOST_OFFSET,
            "u",
            "ghost",
            updated={"qty": 1},
            cluster_time=(STREAM_SECONDS, 20),
            collection=collection,
        )
    )
    return records


def _later(topic: str, collection: str, offset: int) -> list[KafkaRecord]:
    return [
        mongo_event(
            topic,
            offset,
            "u",
            OID,
            after={**order(1), "qty": 5},
            updated={"qty": 5},
            cluster_time=(STREAM_SECONDS + 1, 1),
            collection=collection,
        )
    ]


def batches(topic: str, collection: str = "orders") -> list[list[KafkaRecord]]:
    """The snapshot; the streamed changes; the same changes redelivered plus one later change."""
    stream = _stream(topic, collection)
    redelivered = [
        KafkaRecord(r.topic, r.partition, r.offset + 100, r.key, r.value, r.timestamp) for r in stream
    ]
    return [_snapshot(topic, collection), stream, [*redelivered, *_later(topic, collection, 300)]]


def _expected() -> dict[str, dict[str, Any]]:
    docs = {i: {"_id": doc_id, **order(i + 1)} for i, doc_id in enumerate(IDS)}
    docs[0]["qty"] = 5
    second = docs[1]
    second["address"]["city"] = "Lyon"
    second["tags"][1] = "z"
    second["lines"] = [{"sku": "a", "qty": 9}]
    del second["note"]
    del docs[2]
    docs[3]["qty"] = "many"
    docs[4] = {"_id": UID, "customer": "replaced", "qty": 50}
    docs[5]["extra"] = {"first": 1, "second": 2}
    del docs[5]["tags"]
    docs[6] = {
        "_id": NEW_OID,
        **order(7),
        "address": {"city": "Nice", "zip": "06000"},
        "channel": "web",
    }
    return {str(i): copy.deepcopy(doc) for i, doc in docs.items()}


EXPECTED = _expected()


def comparable(value: Any) -> Any:
    """A document in the terms both policies keep exactly: ObjectId as its hex string (typed
    columns hold it so), Decimal128 as Decimal, int64 as int, binary as bytes, no null fields."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    if isinstance(value, ObjectId):
        return str(value)
    if isinstance(value, Decimal128):
        return value.to_decimal().normalize()
    if isinstance(value, Decimal):
        return value.normalize()
    if isinstance(value, Binary) and value.subtype == 0:
        return bytes(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return int(value)
    return value


def expected_documents(policy: str) -> list[dict[str, Any]]:
    """The documents as a table of *policy* holds them.

    pyiceberg 0.12 writes a null array of documents as an empty one (apache/iceberg-python#3833),
    so in a typed table the replaced order, which has no ``lines``, reads back with ``lines: []``.
    """
    documents = copy.deepcopy(EXPECTED)
    if policy == "typed":
        documents["4"]["lines"] = []
    return sorted((comparable(doc) for doc in documents.values()), key=lambda doc: repr(doc["_id"]))
