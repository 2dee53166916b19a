"""The MongoDB event helper writes what Debezium 3.6.3 writes.

The expected strings below were produced by the connector's own classes (``MongoDbSchema``,
``MongoDbChangeRecordEmitter``, ``MongoDbSnapshotRecordEmitter``, ``JsonSerialization``) and Kafka
Connect's ``JsonConverter`` with ``schemas.enable=true``, for topic prefix ``dbserver1``, a
change stream event at cluster time (1700000000, 3) and Debezium's clock at 1700000005000.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from bson import Binary, Decimal128, Int64, MinKey, ObjectId, Regex, Timestamp, json_util
from bson.binary import UuidRepresentation
from bson.datetime_ms import DatetimeMS
from bson.json_util import JSONOptions

from tests.debezium_mongo_events import (
    mongo_document_json,
    mongo_event,
    mongo_id_json,
    mongo_key,
    mongo_updated_fields_json,
    tombstone,
)

TOPIC = "dbserver1.shop.orders"
OID = ObjectId("655f1c2e8a3b4c5d6e7f8091")
UUID = uuid.UUID("123e4567-e89b-12d3-a456-426614174000")
READ_OPTIONS = JSONOptions(uuid_representation=UuidRepresentation.STANDARD, tz_aware=True, tzinfo=UTC)
SMALL = {"_id": OID, "name": "Widget", "qty": 5, "big": Int64(1234567890123), "at": DatetimeMS(1700000000123)}
AT: dict[str, Any] = {"cluster_time": (1_700_000_000, 3), "ts_ms": 1_700_000_005_000}

ENVELOPE_SCHEMA = (
    '{"type":"struct","fields":[{"type":"string","optional":true,"name":"io.debezium.data.Json","vers'
    'ion":1,"field":"before"},{"type":"string","optional":true,"name":"io.debezium.data.Json","versio'
    'n":1,"field":"after"},{"type":"struct","fields":[{"type":"array","items":{"type":"string","optio'
    'nal":false},"optional":true,"field":"removedFields"},{"type":"string","optional":true,"name":"io'
    '.debezium.data.Json","version":1,"field":"updatedFields"},{"type":"array","items":{"type":"struc'
    't","fields":[{"type":"string","optional":false,"field":"field"},{"type":"int32","optional":false'
    ',"field":"size"}],"optional":false,"name":"io.debezium.connector.mongodb.changestream.truncateda'
    'rray","version":1},"optional":true,"field":"truncatedArrays"}],"optional":true,"name":"io.debezi'
    'um.connector.mongodb.changestream.updatedescription","version":1,"field":"updateDescription"},{"'
    'type":"struct","fields":[{"type":"string","optional":false,"field":"version"},{"type":"string","'
    'optional":false,"field":"connector"},{"type":"string","optional":false,"field":"name"},{"type":"'
    'int64","optional":false,"field":"ts_ms"},{"type":"string","optional":true,"name":"io.debezium.da'
    'ta.Enum","version":1,"parameters":{"allowed":"true,first,first_in_data_collection,last_in_data_c'
    'ollection,last,false,incremental"},"default":"false","field":"snapshot"},{"type":"string","optio'
    'nal":false,"field":"db"},{"type":"string","optional":true,"field":"sequence"},{"type":"int64","o'
    'ptional":true,"field":"ts_us"},{"type":"int64","optional":true,"field":"ts_ns"},{"type":"string"'
    ',"optional":false,"field":"collection"},{"type":"int32","optional":false,"field":"ord"},{"type":'
    '"string","optional":true,"field":"lsid"},{"type":"int64","optional":true,"field":"txnNumber"},{"'
    'type":"int64","optional":true,"field":"wallTime"}],"optional":false,"name":"io.debezium.connecto'
    'r.mongo.Source","version":1,"field":"source"},{"type":"string","optional":true,"field":"op"},{"t'
    'ype":"int64","optional":true,"field":"ts_ms"},{"type":"struct","fields":[{"type":"string","optio'
    'nal":false,"field":"id"},{"type":"int64","optional":false,"field":"total_order"},{"type":"int64"'
    ',"optional":false,"field":"data_collection_order"}],"optional":true,"name":"event.block","versio'
    'n":1,"field":"transaction"}],"optional":false,"name":"dbserver1.shop.orders.Envelope"}'
)
KEY = (
    '{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"}],"optional"'
    ':false,"name":"dbserver1.shop.orders.Key"},"payload":{"id":"{\\"$oid\\": \\"655f1c2e8a3b4c5d6e7f'
    '8091\\"}"}}'
)
DOCUMENT = (
    '{"_id": {"$oid": "655f1c2e8a3b4c5d6e7f8091"},"name": "Widget \\"A\\"\\\\ é\\n\\ud83d\\ude00\\u00'
    'ad","qty": 5,"big": {"$numberLong": "1234567890123"},"small64": {"$numberLong": "7"},"price": 9.'
    '99,"whole": 2.0,"huge": 1.0E+20,"tiny": 5.0E-4,"dec": {"$numberDecimal": "12.50"},"at": {"$date"'
    ': 1700000000123},"at2": {"$date": 1700000000120},"old": {"$date": -1000},"uuid": {"$binary": "Ej'
    '5FZ+ibEtOkVkJmFBdAAA==","$type": "04"},"bin": {"$binary": "AQID/w==","$type": "00"},"userbin": {'
    '"$binary": "AQ==","$type": "8A"},"ts": {"$timestamp": {"t": 1700000000,"i": 7}},"re": {"$regex":'
    ' "^a.*","$options": "i"},"flag": true,"nothing": null,"minK": {"$minKey": 1},"emptyObj": {},"emp'
    'tyArr": [],"nested": {"a": 1,"tags": ["x",2,{"c": null}]}}'
)
UPDATED_FIELDS = (
    '{"qty": 6, "nested.a": 9, "tags.1": "y", "at": {"$date": "2023-11-14T22:13:20.12Z"}, "sub": {"k"'
    ": [1, 2.5]}}"
)
UPDATE_PAYLOAD = (
    '{"before":null,"after":null,"updateDescription":{"removedFields":["obsolete"],"updatedFields":"{'
    '\\"qty\\": 6, \\"nested.a\\": 9}","truncatedArrays":[{"field":"tags","size":1}]},"source":{"vers'
    'ion":"3.6.3.Final","connector":"mongodb","name":"dbserver1","ts_ms":1700000000000,"snapshot":"fa'
    'lse","db":"shop","sequence":null,"ts_us":1700000000000000,"ts_ns":1700000000000000000,"collectio'
    'n":"orders","ord":3,"lsid":null,"txnNumber":null,"wallTime":null},"op":"u","ts_ms":1700000005000'
    ',"transaction":null}'
)
UPDATE_FULL_WALL_PAYLOAD = (
    '{"before":null,"after":"{\\"_id\\": {\\"$oid\\": \\"655f1c2e8a3b4c5d6e7f8091\\"},\\"name\\": \\"'
    'Widget\\",\\"qty\\": 5,\\"big\\": {\\"$numberLong\\": \\"1234567890123\\"},\\"at\\": {\\"$date\\'
    '": 1700000000123}}","updateDescription":{"removedFields":["obsolete"],"updatedFields":"{\\"qty\\'
    '": 6, \\"nested.a\\": 9}","truncatedArrays":[{"field":"tags","size":1}]},"source":{"version":"3.'
    '6.3.Final","connector":"mongodb","name":"dbserver1","ts_ms":1700000000456,"snapshot":"false","db'
    '":"shop","sequence":null,"ts_us":1700000000456000,"ts_ns":1700000000456000000,"collection":"orde'
    'rs","ord":3,"lsid":null,"txnNumber":null,"wallTime":1700000000456},"op":"u","ts_ms":170000000500'
    '0,"transaction":null}'
)
DELETE_PAYLOAD = (
    '{"before":null,"after":null,"updateDescription":null,"source":{"version":"3.6.3.Final","connecto'
    'r":"mongodb","name":"dbserver1","ts_ms":1700000000000,"snapshot":"false","db":"shop","sequence":'
    'null,"ts_us":1700000000000000,"ts_ns":1700000000000000000,"collection":"orders","ord":3,"lsid":n'
    'ull,"txnNumber":null,"wallTime":null},"op":"d","ts_ms":1700000005000,"transaction":null}'
)
READ_LAST_PAYLOAD = (
    '{"before":null,"after":"{\\"_id\\": {\\"$oid\\": \\"655f1c2e8a3b4c5d6e7f8091\\"},\\"name\\": \\"'
    'Widget\\",\\"qty\\": 5,\\"big\\": {\\"$numberLong\\": \\"1234567890123\\"},\\"at\\": {\\"$date\\'
    '": 1700000000123}}","updateDescription":null,"source":{"version":"3.6.3.Final","connector":"mong'
    'odb","name":"dbserver1","ts_ms":1700000000000,"snapshot":"last","db":"shop","sequence":null,"ts_'
    'us":1700000000000000,"ts_ns":1700000000000000000,"collection":"orders","ord":9,"lsid":null,"txnN'
    'umber":null,"wallTime":null},"op":"r","ts_ms":1700000005000,"transaction":null}'
)


def _ms(millis: int) -> datetime:
    return DatetimeMS(millis).as_datetime(READ_OPTIONS)


ID_VALUES: dict[str, Any] = {
    "oid": OID,
    "str": "order-1",
    "int32": 42,
    "int64": Int64(1234567890123),
    "double": 3.5,
    "uuid": UUID,
    "doc": {"a": 1, "b": "x", "c": [1, Int64(2)]},
    "date": _ms(1700000000120),
}
DEBEZIUM_IDS = {
    "oid": '{"$oid": "655f1c2e8a3b4c5d6e7f8091"}',
    "str": '"order-1"',
    "int32": "42",
    "int64": "1234567890123",
    "double": "3.5",
    "uuid": '{"$binary": {"base64": "Ej5FZ+ibEtOkVkJmFBdAAA==","subType": "04"}}',
    "doc": '{"a": 1,"b": "x","c": [1,2]}',
    "date": '{"$date": "2023-11-14T22:13:20.12Z"}',
}


def _value(payload: str) -> bytes:
    return f'{{"schema":{ENVELOPE_SCHEMA},"payload":{payload}}}'.encode()


@pytest.mark.parametrize("kind", sorted(ID_VALUES))
def test_key_id_is_written_as_debezium_writes_it_and_reads_back(kind: str) -> None:
    doc_id = ID_VALUES[kind]
    assert mongo_id_json(doc_id) == DEBEZIUM_IDS[kind]
    key = orjson.loads(mongo_key(doc_id, TOPIC))
    assert key["schema"] == {
        "type": "struct",
        "fields": [{"type": "string", "optional": False, "field": "id"}],
        "optional": False,
        "name": f"{TOPIC}.Key",
    }
    assert json_util.loads(key["payload"]["id"], json_options=READ_OPTIONS) == doc_id


def test_key_message_is_byte_exact() -> None:
    assert mongo_key(OID, TOPIC) == KEY.encode()


def test_document_and_updated_fields_json() -> None:
    doc = {
        "_id": OID,
        "name": 'Widget "A"\\ é\n😀\u00ad',
        "qty": 5,
        "big": Int64(1234567890123),
        "small64": Int64(7),
        "price": 9.99,
        "whole": 2.0,
        "huge": 1e20,
        "tiny": 5e-4,
        "dec": Decimal128("12.50"),
        "at": _ms(1700000000123),
        "at2": _ms(1700000000120),
        "old": _ms(-1000),
        "uuid": UUID,
        "bin": bytes([1, 2, 3, 255]),
        "userbin": Binary(b"\x01", 0x8A),
        "ts": Timestamp(1700000000, 7),
        "re": Regex("^a.*", "i"),
        "flag": True,
        "nothing": None,
        "minK": MinKey(),
        "emptyObj": {},
        "emptyArr": [],
        "nested": {"a": 1, "tags": ["x", 2, {"c": None}]},
    }
    assert mongo_document_json(doc) == DOCUMENT
    assert json_util.loads(DOCUMENT, json_options=READ_OPTIONS) == doc
    updated = {
        "qty": 6,
        "nested.a": Int64(9),
        "tags.1": "y",
        "at": _ms(1700000000120),
        "sub": {"k": [1, 2.5]},
    }
    assert mongo_updated_fields_json(updated) == UPDATED_FIELDS


def test_update_without_full_document_is_byte_exact() -> None:
    record = mongo_event(
        TOPIC,
        7,
        "u",
        OID,
        updated={"qty": 6, "nested.a": Int64(9)},
        removed=["obsolete"],
        truncated=[("tags", 1)],
        **AT,
    )
    assert (record.topic, record.partition, record.offset, record.timestamp) == (
        TOPIC,
        0,
        7,
        1_700_000_005_000,
    )
    assert record.key == KEY.encode()
    assert record.value == _value(UPDATE_PAYLOAD)


def test_update_with_full_document_and_wall_time_is_byte_exact() -> None:
    record = mongo_event(
        TOPIC,
        8,
        "u",
        OID,
        after=SMALL,
        updated={"qty": 6, "nested.a": Int64(9)},
        removed=["obsolete"],
        truncated=[("tags", 1)],
        wall_time=1_700_000_000_456,
        **AT,
    )
    assert record.value == _value(UPDATE_FULL_WALL_PAYLOAD)


def test_delete_and_tombstone() -> None:
    record = mongo_event(TOPIC, 9, "d", OID, **AT)
    assert record.value == _value(DELETE_PAYLOAD)
    grave = tombstone(TOPIC, 10, OID)
    assert (grave.key, grave.value, grave.offset) == (record.key, None, 10)


def test_snapshot_read_is_byte_exact() -> None:
    record = mongo_event(
        TOPIC, 0, "r", OID, after=SMALL, snapshot="last", cluster_time=(1_700_000_000, 9), ts_ms=AT["ts_ms"]
    )
    assert record.value == _value(READ_LAST_PAYLOAD)
    first = orjson.loads(mongo_event(TOPIC, 0, "r", OID, after={"name": "Widget"}).value or b"")["payload"]
    assert first["source"]["snapshot"] == "true"
    assert json_util.loads(first["after"]) == {"_id": OID, "name": "Widget"}


def test_value_schema_field_names() -> None:
    event = orjson.loads(mongo_event(TOPIC, 0, "c", OID, after=SMALL).value or b"")
    schema = event["schema"]
    fields = {field["field"]: field for field in schema["fields"]}
    assert list(fields) == ["before", "after", "updateDescription", "source", "op", "ts_ms", "transaction"]
    assert schema["name"] == f"{TOPIC}.Envelope"
    assert [f["field"] for f in fields["updateDescription"]["fields"]] == [
        "removedFields",
        "updatedFields",
        "truncatedArrays",
    ]
    assert (
        fields["updateDescription"]["name"] == "io.debezium.connector.mongodb.changestream.updatedescription"
    )
    assert fields["source"]["name"] == "io.debezium.connector.mongo.Source"
    assert [f["field"] for f in fields["source"]["fields"]] == [
        "version",
        "connector",
        "name",
        "ts_ms",
        "snapshot",
        "db",
        "sequence",
        "ts_us",
        "ts_ns",
        "collection",
        "ord",
        "lsid",
        "txnNumber",
        "wallTime",
    ]
    assert list(event["payload"]) == list(fields)
    assert event["payload"]["source"]["ts_ms"] == 1_700_000_000_000
    assert event["payload"]["source"]["ord"] == 1


def test_every_operation_parses_as_json() -> None:
    records = [
        mongo_event(TOPIC, 0, "c", "order-1", after={"qty": 1}),
        mongo_event(TOPIC, 1, "u", "order-1", after={"qty": 2}, updated={"qty": 2}),
        mongo_event(TOPIC, 2, "u", "order-1", after={"qty": 3}),
        mongo_event(TOPIC, 3, "d", "order-1"),
        mongo_event(TOPIC, 4, "r", "order-1", after={"qty": 3}),
    ]
    for record in records:
        assert record.key is not None and record.value is not None
        orjson.loads(record.key)
        payload = orjson.loads(record.value)["payload"]
        for name in ("before", "after"):
            if payload[name] is not None:
                json_util.loads(payload[name])
    assert orjson.loads(records[2].value or b"")["payload"]["updateDescription"] is None  # a replace


def test_misuse_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown operation"):
        mongo_event(TOPIC, 0, "x", OID)
    with pytest.raises(ValueError, match="update events only"):
        mongo_event(TOPIC, 0, "c", OID, after={}, updated={"a": 1})
