"""MongoDB documents as Iceberg rows, by a collection's schema policy.

Every table has the key column ``_id``: the document's ``_id`` as compact relaxed extended JSON
(``{"$oid":"..."}``, ``"text"``, ``42``, ``{"$binary":{..,"subType":"04"}}`` for a UUID,
``{"a":1,"b":2}``), which keeps ids of different types apart and is the same text for the same id
however it arrives.

``typed``: each top-level field becomes a column, nested documents structs and arrays lists. Types
are inferred from the values (ObjectId as its hex string, dates as UTC timestamps, Decimal128 as
decimal(38,18), int32 and int64 as long, UUIDs as uuid, other BSON types as extended JSON text), and
new fields, at any depth, are added as they appear. The conflict rule: a field keeps the first type
it was stored with (long and double met in the same batch become double). A value that does not
fit its column's type, a field without a column (unusable name, or no type yet because only ``[]``
or ``{}`` was seen) goes, at its place in the document, into ``_floe_conflicts`` as extended JSON
and its column stays null. Nothing is lost and nothing fails. A null field and a missing field are
the same in this policy; a missing array of documents reads back as ``[]`` until pyiceberg writes
null lists of structs as null (apache/iceberg-python#3833).

``raw``: ``_doc`` holds the whole document as relaxed extended JSON; the ``extract``-ed top-level
fields are typed columns as above, null when a value does not fit (``_doc`` has it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import pyarrow as pa
from bson import ObjectId
from bson.decimal128 import Decimal128

from floe_cdc.capture.mongodb.extended_json import from_json, to_json
from floe_cdc.core.changes import Column

KEY_COLUMN = "_id"
DOC_COLUMN = "_doc"
CONFLICTS_COLUMN = "_floe_conflicts"
DECIMAL = pa.decimal128(38, 18)
TIMESTAMP = pa.timestamp("us", tz="UTC")
_DECIMAL_QUANTUM = Decimal(1).scaleb(-DECIMAL.scale)
_RESERVED = (KEY_COLUMN, DOC_COLUMN, CONFLICTS_COLUMN, "_floe_position")


def usable_name(name: str) -> bool:
    """A field name that can be an Iceberg column: nested paths are dotted, so no dots; and none
    of the names of Floe's own per-change columns (``__floe_*``)."""
    return bool(name) and "." not in name and not name.startswith(("$", "__floe_"))


def infer(value: Any) -> pa.DataType | None:
    """The Arrow type of a BSON value; None when the value says nothing (null, [], {})."""
    if value is None:
        return None
    if isinstance(value, bool):
        return pa.bool_()
    if isinstance(value, int):  # bson.Int64 is an int
        return pa.int64()
    if isinstance(value, float):
        return pa.float64()
    if isinstance(value, datetime):
        return TIMESTAMP
    if isinstance(value, Decimal128 | Decimal):
        return DECIMAL
    if isinstance(value, uuid.UUID):
        return pa.uuid()
    if isinstance(value, bytes):  # bson.Binary is bytes
        return pa.binary()
    if isinstance(value, dict):
        fields = [(k, t) for k, v in value.items() if usable_name(k) and (t := infer(v)) is not None]
        return pa.struct(fields) if fields else None
    if isinstance(value, list):
        element = None
        for item in value:
            element = unify(element, infer(item))
        return pa.list_(element) if element is not None else None
    return pa.string()  # str, ObjectId, and other BSON types (regex, code, timestamp) as text


def unify(first: pa.DataType | None, second: pa.DataType | None) -> pa.DataType | None:
    """The type for values of both types met in one batch; on a conflict the first one stays."""
    if first is None:
        return second
    if second is None or first == second:
        return first
    if {first, second} == {pa.int64(), pa.float64()}:
        return pa.float64()
    return extend(first, second)


def extend(current: pa.DataType | None, seen: pa.DataType | None) -> pa.DataType | None:
    """*current* (a stored column's type, which cannot change) grown by the fields *seen* has."""
    if current is None:
        return seen
    if seen is None:
        return current
    if pa.types.is_struct(current) and pa.types.is_struct(seen):
        fields = {f.name: f.type for f in current}
        for f in seen:
            fields[f.name] = unify(fields[f.name], f.type) if f.name in fields else f.type
        return pa.struct(list(fields.items()))
    if pa.types.is_list(current) and pa.types.is_list(seen):
        return pa.list_(unify(current.value_type, seen.value_type))
    return current


def plain(kind: pa.DataType) -> pa.DataType:
    """An Arrow type read from an Iceberg schema, in the form ``infer`` builds (no large types)."""
    if pa.types.is_large_string(kind):
        return pa.string()
    if pa.types.is_large_binary(kind) or pa.types.is_fixed_size_binary(kind):
        return pa.binary()
    if pa.types.is_timestamp(kind) and kind.tz:
        return TIMESTAMP
    if pa.types.is_struct(kind):
        return pa.struct([(f.name, plain(f.type)) for f in kind])
    if pa.types.is_list(kind) or pa.types.is_large_list(kind):
        return pa.list_(plain(kind.value_type))
    return kind


class _Misfit(Exception):
    pass


def _fit_decimal(value: Decimal) -> Decimal:
    if not value.is_finite() or value.adjusted() >= DECIMAL.precision - DECIMAL.scale:
        raise _Misfit
    try:
        quantized = value.quantize(_DECIMAL_QUANTUM)
    except InvalidOperation:
        raise _Misfit from None
    if quantized != value:
        raise _Misfit
    return quantized


def _fit_scalar(value: Any, kind: pa.DataType) -> Any:
    """*value* as a value of *kind*, exactly, or _Misfit."""
    if kind == pa.bool_() and isinstance(value, bool):
        return value
    if isinstance(value, bool):
        raise _Misfit
    if kind == pa.int64() and isinstance(value, int) and -(2**63) <= value < 2**63:
        return int(value)
    if kind == pa.float64() and isinstance(value, float):
        return value
    if kind == pa.float64() and isinstance(value, int) and abs(value) <= 2**53:
        return float(value)
    if kind == TIMESTAMP and isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if kind == DECIMAL and isinstance(value, Decimal128 | Decimal):
        return _fit_decimal(value.to_decimal() if isinstance(value, Decimal128) else value)
    if isinstance(kind, pa.UuidType) and isinstance(value, uuid.UUID):
        return value
    if kind == pa.binary() and isinstance(value, bytes):
        return bytes(value)
    if kind == pa.string() and infer(value) == pa.string():
        return (
            value if isinstance(value, str) else str(value) if isinstance(value, ObjectId) else to_json(value)
        )
    raise _Misfit


class _Fitter:
    """Fits document values to column types, collecting what does not fit (the conflicts tree)."""

    def __init__(self) -> None:
        self.conflicts: dict[str, Any] = {}

    def _conflict(self, path: tuple[str, ...], value: Any) -> None:
        node = self.conflicts
        for name in path[:-1]:
            node = node.setdefault(name, {})
        node[path[-1]] = value

    def fit(self, value: Any, kind: pa.DataType | None, path: tuple[str, ...]) -> Any:
        if value is None:
            return None
        if kind is None:  # no column for this field (yet): keep the value as a conflict
            self._conflict(path, value)
            return None
        try:
            if pa.types.is_struct(kind):
                return self._fit_struct(value, kind, path)
            if pa.types.is_list(kind):
                return self._fit_list(value, kind)
            return _fit_scalar(value, kind)
        except _Misfit:
            self._conflict(path, value)
            return None

    def _fit_struct(self, value: Any, kind: pa.StructType, path: tuple[str, ...]) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _Misfit
        names = {f.name: f.type for f in kind}
        fitted = {}
        for name, item in value.items():
            if name in names:
                fitted[name] = self.fit(item, names[name], (*path, name))
            elif item is not None:
                self._conflict((*path, name), item)
        return fitted

    def _fit_list(self, value: Any, kind: pa.ListType) -> list[Any]:
        if not isinstance(value, list):
            raise _Misfit
        inner = _Fitter()
        items = [inner.fit(item, kind.value_type, ("",)) for item in value]
        if inner.conflicts:  # one element does not fit: the array is kept whole as a conflict
            raise _Misfit
        return items


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_strip_nulls(v) for v in value]
    return value


def _overlay(document: dict[str, Any], conflicts: dict[str, Any]) -> None:
    for name, value in conflicts.items():
        if isinstance(value, dict) and isinstance(document.get(name), dict):
            _overlay(document[name], value)
        else:
            document[name] = value


@dataclass(frozen=True)
class DocumentShape:
    """How one collection's documents become rows."""

    policy: Literal["typed", "raw"]
    extract: tuple[str, ...] = ()

    def _fields(self, document: dict[str, Any]) -> Iterable[tuple[str, Any]]:
        if self.policy == "raw":
            return ((name, document[name]) for name in self.extract if name in document)
        return ((name, value) for name, value in document.items() if name != KEY_COLUMN)

    def types(
        self, documents: Iterable[dict[str, Any]], existing: pa.Schema | None
    ) -> dict[str, pa.DataType]:
        """Column types for the documents: the stored ones, grown by what the documents add."""
        stored = {f.name: plain(f.type) for f in existing or [] if f.name not in _RESERVED}
        seen: dict[str, pa.DataType | None] = {}
        for document in documents:
            for name, value in self._fields(document):
                if usable_name(name) and name not in _RESERVED:
                    seen[name] = unify(seen.get(name), infer(value))
        merged = dict(stored)
        for name, kind in seen.items():
            grown = extend(stored.get(name), kind)
            if grown is not None:
                merged[name] = grown
        return merged

    def columns(self, types: dict[str, pa.DataType]) -> list[Column]:
        key = Column(KEY_COLUMN, pa.string(), False, "MongoDB _id (relaxed extended JSON)")
        fields = [Column(name, kind, True, "MongoDB field") for name, kind in types.items()]
        if self.policy == "raw":
            return [
                key,
                Column(DOC_COLUMN, pa.string(), True, "MongoDB document (relaxed extended JSON)", "json"),
                *fields,
            ]
        conflicts = Column(
            CONFLICTS_COLUMN,
            pa.string(),
            True,
            "fields that did not fit their column (extended JSON)",
            "json",
        )
        return [key, *fields, conflicts]

    def row(self, key: str, document: dict[str, Any] | None, types: dict[str, pa.DataType]) -> dict[str, Any]:
        """A document as a row of *types*; None (a delete) gives just the key."""
        if document is None:
            return {KEY_COLUMN: key}
        fitter = _Fitter()
        row: dict[str, Any] = {KEY_COLUMN: key}
        for name, value in self._fields(document):
            kind = types.get(name) if name not in _RESERVED else None
            row[name] = fitter.fit(value, kind, (name,))
        if self.policy == "raw":
            row[DOC_COLUMN] = to_json(document)
        else:
            row[CONFLICTS_COLUMN] = to_json(fitter.conflicts) if fitter.conflicts else None
        return row

    def document(self, row: dict[str, Any]) -> dict[str, Any]:
        """The document a stored row holds (the base for a patch)."""
        if self.policy == "raw":
            return from_json(row[DOC_COLUMN])
        document = {KEY_COLUMN: from_json(row[KEY_COLUMN])}
        for name, value in row.items():
            if name not in _RESERVED and value is not None:
                document[name] = _strip_nulls(value)
        if row.get(CONFLICTS_COLUMN):
            _overlay(document, from_json(row[CONFLICTS_COLUMN]))
        return document
