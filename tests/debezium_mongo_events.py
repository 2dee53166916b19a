"""Debezium MongoDB change events in the exact JSON-converter form the connector writes.

No MongoDB server is available to the tests, so they build the Kafka messages of Debezium's
MongoDB connector (3.x, checked against 3.6.3 with Kafka Connect's ``JsonConverter`` and
``schemas.enable=true``) with this module. The layout follows the connector's source:

* key: ``MongoDbSchema`` makes a struct ``<topic>.Key`` with one required string ``id``, which
  ``JsonSerialization.getDocumentId`` fills with the ``_id`` value as *relaxed* extended JSON;
* value: ``MongoDbSchema`` makes the envelope ``<topic>.Envelope`` with the fields ``before``,
  ``after`` (optional ``io.debezium.data.Json`` strings), ``updateDescription``
  (``MongoDbSchemaFactory``), ``source`` (``MongoDbSourceInfoStructMaker`` on top of
  ``SchemaFactory.sourceInfoSchemaBuilder``), ``op``, ``ts_ms`` and ``transaction``. There is no
  top-level ``ts_us``/``ts_ns`` in the MongoDB envelope;
* ``MongoDbCollectionSchema.valueFromDocumentChangeStream`` fills ``after``/``before`` with
  ``JsonSerialization.getDocumentValue`` (``JsonMode.STRICT``), and ``updatedFields`` with
  ``BsonDocument.toJson()`` (``JsonMode.RELAXED``, default layout);
* ``SourceInfo`` gives ``source.ts_ms`` from the change event's ``wallTime`` when present and
  else from its ``clusterTime`` seconds, and ``source.ord`` from the ``clusterTime`` increment.

BSON values map to extended JSON through ``bson.json_util.default`` with ``JSONOptions`` that
mirror the Java ``JsonMode`` (``STRICT`` ~ legacy mode with ``$numberLong`` and millisecond
``$date``; ``RELAXED``; UUIDs as binary subtype 4). The text itself is written here, because the
Java ``JsonWriter`` lays it out differently from Python's ``json``: ``"name": value`` pairs joined
by a bare ``,`` for the compact settings (``, `` for ``toJson()``), doubles as Java prints them
(``2.0``, ``1.0E+20``, ``5.0E-4``), relaxed dates with trimmed millisecond digits, upper-case
binary subtypes, and ``\\uXXXX`` escapes for every character that is not a letter, digit,
punctuation, symbol or space (so emoji become surrogate pairs).
"""

from __future__ import annotations

import base64
import math
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from bson import json_util
from bson.binary import Binary, UuidRepresentation
from bson.datetime_ms import DatetimeMS
from bson.int64 import Int64
from bson.json_util import DatetimeRepresentation, JSONMode, JSONOptions

from floe_cdc.capture.envelope import KafkaRecord

DEBEZIUM_VERSION = "3.6.3.Final"
OPS = ("c", "u", "d", "r")
SNAPSHOT_ALLOWED = "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"
SNAPSHOT_VALUES = tuple(SNAPSHOT_ALLOWED.split(","))

# JsonMode.STRICT of the Java driver: {"$numberLong": ..}, {"$date": <millis>}, {"$binary": .., "$type": ..}.
STRICT_OPTIONS = JSONOptions(
    json_mode=JSONMode.LEGACY,
    strict_number_long=True,
    datetime_representation=DatetimeRepresentation.LEGACY,
    strict_uuid=True,
    uuid_representation=UuidRepresentation.STANDARD,
)
# JsonMode.RELAXED: plain numbers, ISO-8601 dates, {"$binary": {"base64": .., "subType": ..}}.
RELAXED_OPTIONS = JSONOptions(json_mode=JSONMode.RELAXED, uuid_representation=UuidRepresentation.STANDARD)

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_MAX_ISO_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z, the last date relaxed mode writes as ISO-8601
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Character.getType categories org.bson.json.StrictCharacterStreamJsonWriter writes unescaped.
_UNESCAPED = "Lu Ll Lt Lo Nd Nl No Zs Pc Pd Ps Pe Pi Pf Po Sm Sc Sk So"
_RAW_CATEGORIES = frozenset(_UNESCAPED.split())
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@dataclass(frozen=True)
class _Layout:
    options: JSONOptions
    relaxed: bool
    separator: str  # between members and array items: "," (indent on, no indent characters) or ", "


# JsonSerialization.COMPACT_JSON_SETTINGS (after, before) and SIMPLE_JSON_SETTINGS (the key's id).
_STRICT_COMPACT = _Layout(STRICT_OPTIONS, relaxed=False, separator=",")
_RELAXED_COMPACT = _Layout(RELAXED_OPTIONS, relaxed=True, separator=",")
# BsonDocument.toJson() with its default settings (updateDescription.updatedFields).
_RELAXED_DEFAULT = _Layout(RELAXED_OPTIONS, relaxed=True, separator=", ")


def _java_string(text: str) -> str:
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif 0x20 <= code < 0x7F:
            out.append(char)
        elif code > 0xFFFF:  # Java walks UTF-16 units, and a lone surrogate is never written raw
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
        elif unicodedata.category(char) in _RAW_CATEGORIES:
            out.append(char)
        else:
            out.append(f"\\u{code:04x}")
    out.append('"')
    return "".join(out)


def _java_double(value: float, relaxed: bool) -> str:
    """``Double.toString`` (shortest digits, as Java 19+ prints) with the ``E+`` of ``JsonDoubleHelper``."""
    if math.isnan(value) or math.isinf(value):
        text = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
        return f'{{"$numberDouble": "{text}"}}' if relaxed else text
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent) - 1  # the decimal exponent of the first digit
    if 1e-3 <= abs(value) < 1e7:
        if point >= 0:
            whole, fraction = digits[: point + 1].ljust(point + 1, "0"), digits[point + 1 :]
        else:
            whole, fraction = "0", "0" * (-point - 1) + digits
        return f"{sign}{whole}.{fraction or '0'}"
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{'+' if point > 0 else ''}{point}"


def _millis(value: datetime | DatetimeMS) -> int:
    return int(value) if isinstance(value, DatetimeMS) else int(DatetimeMS(value))


def _date(millis: int, layout: _Layout) -> str:
    if not layout.relaxed:
        return f'{{"$date": {millis}}}'
    if not 0 <= millis <= _MAX_ISO_MS:
        return f'{{"$date": {{"$numberLong": "{millis}"}}}}'
    moment = _EPOCH + timedelta(milliseconds=millis)
    fraction = f"{millis % 1000:03d}".rstrip("0")
    return f'{{"$date": "{moment:%Y-%m-%dT%H:%M:%S}{"." + fraction if fraction else ""}Z"}}'


def _binary(data: bytes, subtype: int, layout: _Layout) -> str:
    encoded, sep = base64.b64encode(data).decode(), layout.separator
    if layout.relaxed:
        return f'{{"$binary": {{"base64": "{encoded}"{sep}"subType": "{subtype:02X}"}}}}'
    return f'{{"$binary": "{encoded}"{sep}"$type": "{subtype:02X}"}}'


def _int64(value: int, layout: _Layout) -> str:
    if not _INT64[0] <= value <= _INT64[1]:
        raise OverflowError(f"{value} does not fit a BSON int64")
    return str(value) if layout.relaxed else f'{{"$numberLong": "{value}"}}'


def _write(value: Any, layout: _Layout) -> str:
    """One BSON value as org.bson.json.JsonWriter writes it with *layout*."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Int64):
        return _int64(int(value), layout)
    if isinstance(value, int):  # like the BSON encoder: int32 when it fits, else int64
        return str(value) if _INT32[0] <= value <= _INT32[1] else _int64(value, layout)
    if isinstance(value, float):
        return _java_double(value, layout.relaxed)
    if isinstance(value, str):
        return _java_string(value)
    if isinstance(value, datetime | DatetimeMS):
        return _date(_millis(value), layout)
    if isinstance(value, uuid.UUID):
        value = Binary.from_uuid(value, UuidRepresentation.STANDARD)
    if isinstance(value, Binary):
        return _binary(bytes(value), value.subtype, layout)
    if isinstance(value, bytes):
        return _binary(value, 0, layout)
    if isinstance(value, Mapping):
        members = (f"{_java_string(str(name))}: {_write(item, layout)}" for name, item in value.items())
        return "{" + layout.separator.join(members) + "}"
    if isinstance(value, list | tuple):
        return "[" + layout.separator.join(_write(item, layout) for item in value) + "]"
    # ObjectId, Decimal128, Timestamp, Regex, MinKey, MaxKey, Code, DBRef
    return _write(json_util.default(value, layout.options), layout)


def mongo_id_json(doc_id: Any) -> str:
    """The key's ``id``: ``_id`` as relaxed extended JSON (``JsonSerialization.getDocumentId``).

    ``{"$oid": "..."}`` for an ObjectId, ``"text"`` (with its quotes) for a string, a plain number
    for int32, int64 and double, ``{"$binary": {"base64": "...","subType": "04"}}`` for a UUID.
    """
    return _write(doc_id, _RELAXED_COMPACT)


def mongo_document_json(doc: dict[str, Any]) -> str:
    """A document as ``after``/``before`` carry it (``JsonSerialization.getDocumentValue``, strict)."""
    return _write(doc, _STRICT_COMPACT)


def mongo_updated_fields_json(updated: dict[str, Any]) -> str:
    """``updateDescription.updatedFields``: ``BsonDocument.toJson()``, relaxed with ``", "`` separators."""
    return _write(updated, _RELAXED_DEFAULT)


def _string(field: str, optional: bool = True, **extra: Any) -> dict[str, Any]:
    return {"type": "string", "optional": optional, **extra, "field": field}


def _int(kind: str, field: str, optional: bool) -> dict[str, Any]:
    return {"type": kind, "optional": optional, "field": field}


_JSON = {"name": "io.debezium.data.Json", "version": 1}


def _key_schema(topic: str) -> dict[str, Any]:
    return {
        "type": "struct",
        "fields": [_string("id", optional=False)],
        "optional": False,
        "name": f"{topic}.Key",
    }


_UPDATE_DESCRIPTION_SCHEMA = {
    "type": "struct",
    "fields": [
        {
            "type": "array",
            "items": {"type": "string", "optional": False},
            "optional": True,
            "field": "removedFields",
        },
        _string("updatedFields", **_JSON),
        {
            "type": "array",
            "items": {
                "type": "struct",
                "fields": [_string("field", optional=False), _int("int32", "size", False)],
                "optional": False,
                "name": "io.debezium.connector.mongodb.changestream.truncatedarray",
                "version": 1,
            },
            "optional": True,
            "field": "truncatedArrays",
        },
    ],
    "optional": True,
    "name": "io.debezium.connector.mongodb.changestream.updatedescription",
    "version": 1,
    "field": "updateDescription",
}

_SOURCE_SCHEMA = {
    "type": "struct",
    "fields": [
        _string("version", optional=False),
        _string("connector", optional=False),
        _string("name", optional=False),
        _int("int64", "ts_ms", False),
        {
            "type": "string",
            "optional": True,
            "name": "io.debezium.data.Enum",
            "version": 1,
            "parameters": {"allowed": SNAPSHOT_ALLOWED},
            "default": "false",
            "field": "snapshot",
        },
        _string("db", optional=False),
        _string("sequence"),
        _int("int64", "ts_us", True),
        _int("int64", "ts_ns", True),
        _string("collection", optional=False),
        _int("int32", "ord", False),
        _string("lsid"),
        _int("int64", "txnNumber", True),
        _int("int64", "wallTime", True),
    ],
    "optional": False,
    "name": "io.debezium.connector.mongo.Source",
    "version": 1,
    "field": "source",
}

_TRANSACTION_SCHEMA = {
    "type": "struct",
    "fields": [
        _string("id", optional=False),
        _int("int64", "total_order", False),
        _int("int64", "data_collection_order", False),
    ],
    "optional": True,
    "name": "event.block",
    "version": 1,
    "field": "transaction",
}


def _value_schema(topic: str) -> dict[str, Any]:
    return {
        "type": "struct",
        "fields": [
            _string("before", **_JSON),
            _string("after", **_JSON),
            _UPDATE_DESCRIPTION_SCHEMA,
            _SOURCE_SCHEMA,
            _string("op"),
            _int("int64", "ts_ms", True),
            _TRANSACTION_SCHEMA,
        ],
        "optional": False,
        "name": f"{topic}.Envelope",
    }


def mongo_key(doc_id: Any, topic: str) -> bytes:
    """The full JSON-converter key message: ``{"schema": <topic>.Key, "payload": {"id": ...}}``."""
    return orjson.dumps({"schema": _key_schema(topic), "payload": {"id": mongo_id_json(doc_id)}})


def _with_id(doc: dict[str, Any] | None, doc_id: Any) -> dict[str, Any] | None:
    if doc is None or "_id" in doc:
        return doc
    return {"_id": doc_id, **doc}


def mongo_event(
    topic: str,
    offset: int,
    op: str,
    doc_id: Any,
    *,
    after: dict[str, Any] | None = None,
    updated: dict[str, Any] | None = None,
    removed: list[str] | None = None,
    truncated: list[tuple[str, int]] | None = None,
    cluster_time: tuple[int, int] = (1_700_000_000, 1),
    snapshot: str | None = None,
    database: str = "shop",
    collection: str = "orders",
    partition: int = 0,
    before: dict[str, Any] | None = None,
    wall_time: int | None = None,
    ts_ms: int | None = None,
    server_name: str | None = None,
) -> KafkaRecord:
    """One change event with its key, as Debezium's MongoDB connector puts it on *topic*.

    *after* is the full document (creates, snapshot reads, updates in a ``*_update_full`` capture
    mode, replaces); *updated*/*removed*/*truncated* make ``updateDescription`` (``u`` only: an
    update without them is a replace). A document without ``_id`` gets *doc_id* as its first field.
    *before* is the pre-image of the ``*_with_pre_image`` capture modes (updates and deletes).

    ``source.ts_ms`` is *wall_time* (ms, set by MongoDB 6.0+ and then also in ``source.wallTime``)
    or else the *cluster_time* seconds × 1000; ``source.ord`` is the cluster time's increment.
    For an initial snapshot read Debezium usually writes the wall clock and ``ord`` -1; pass such a
    *cluster_time* to mimic it. *snapshot* defaults to ``"true"`` for ``r`` (the last read of a
    snapshot has ``"last"``, incremental snapshots ``"incremental"``) and ``"false"`` otherwise.
    The top-level ``ts_ms`` (when Debezium handled the event) is *ts_ms*, by default
    ``source.ts_ms``; it is also the record's broker timestamp. *server_name* (``topic.prefix``)
    defaults to the topic without its ``.<database>.<collection>`` suffix.
    """
    if op not in OPS:
        raise ValueError(f"unknown operation {op!r}; Debezium's MongoDB connector writes {OPS}")
    description = updated is not None or removed is not None or truncated is not None
    if description and op != "u":
        raise ValueError("updateDescription belongs to update events only")
    if snapshot is None:
        snapshot = "true" if op == "r" else "false"
    if snapshot not in SNAPSHOT_VALUES:
        raise ValueError(f"source.snapshot must be one of {SNAPSHOT_VALUES}")
    seconds, increment = cluster_time
    source_ms = wall_time if wall_time is not None else seconds * 1000
    suffix = f".{database}.{collection}"
    if server_name is None:
        server_name = topic[: -len(suffix)] if topic.endswith(suffix) else topic
    after = _with_id(after, doc_id) if op != "d" else None
    before = _with_id(before, doc_id)
    update_description = None
    if description:
        update_description = {
            "removedFields": list(removed) if removed else None,
            "updatedFields": mongo_updated_fields_json(updated or {}),
            "truncatedArrays": [{"field": name, "size": size} for name, size in truncated]
            if truncated
            else None,
        }
    source = {
        "version": DEBEZIUM_VERSION,
        "connector": "mongodb",
        "name": server_name,
        "ts_ms": source_ms,
        "snapshot": snapshot,
        "db": database,
        "sequence": None,
        "ts_us": source_ms * 1000,
        "ts_ns": source_ms * 1_000_000,
        "collection": collection,
        "ord": increment,
        "lsid": None,
        "txnNumber": None,
        "wallTime": wall_time,
    }
    handled_ms = source_ms if ts_ms is None else ts_ms
    payload = {
        "before": None if before is None else mongo_document_json(before),
        "after": None if after is None else mongo_document_json(after),
        "updateDescription": update_description,
        "source": source,
        "op": op,
        "ts_ms": handled_ms,
        "transaction": None,
    }
    value = orjson.dumps({"schema": _value_schema(topic), "payload": payload})
    return KafkaRecord(topic, partition, offset, mongo_key(doc_id, topic), value, handled_ms)


def tombstone(topic: str, offset: int, doc_id: Any, partition: int = 0) -> KafkaRecord:
    """The record that follows a delete (``tombstones.on.delete``, on by default): same key, null value."""
    return KafkaRecord(topic, partition, offset, mongo_key(doc_id, topic), None)
