"""Debezium field schemas (JSON converter, with propagated source types) to Arrow columns.

The Arrow type follows the source's declared type: NUMERIC(p,s) from the propagated length and
scale, dates and times from Debezium's semantic type names. Each mapping comes with a converter
that turns a list of JSON values into an Arrow array in one call, so decoding stays columnar.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from typing import Any

import orjson
import pyarrow as pa

from floe_cdc.core.changes import Column

Converter = Callable[[list[Any]], pa.Array]

_TYPE = "__debezium.source.column.type"
_LENGTH = "__debezium.source.column.length"
_SCALE = "__debezium.source.column.scale"
MAX_DECIMAL_PRECISION = 38

_PRIMITIVES: dict[str, pa.DataType] = {
    "int8": pa.int8(),
    "int16": pa.int16(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "float": pa.float32(),
    "float32": pa.float32(),
    "double": pa.float64(),
    "float64": pa.float64(),
    "boolean": pa.bool_(),
    "string": pa.string(),
}


def _plain(arrow_type: pa.DataType) -> Converter:
    return lambda values: pa.array(values, type=arrow_type)


def _float(arrow_type: pa.DataType) -> Converter:
    """Kafka Connect's JSON converter writes NaN and the infinities as the strings "NaN",
    "Infinity" and "-Infinity" (JSON has no literal for them); ``float`` reads exactly those."""
    return lambda values: pa.array([float(v) if isinstance(v, str) else v for v in values], type=arrow_type)


# A NUMERIC's special values by the names Debezium sends (its SpecialValueDecimal), as PostgreSQL
# prints them: what the direct load writes too (source_columns).
_NUMERIC_SPECIALS = {"NAN": "NaN", "POSITIVE_INFINITY": "Infinity", "NEGATIVE_INFINITY": "-Infinity"}


def _numeric(target: pa.DataType) -> Converter:
    """NUMERIC as text, special values as PostgreSQL prints them. A decimal cannot hold those, and
    its cast says so with that text (the event goes to quarantine)."""

    def convert(values: list[Any]) -> pa.Array:
        text = [_NUMERIC_SPECIALS.get(v, v) if isinstance(v, str) else v for v in values]
        return pa.array(text, type=pa.string()).cast(target)

    return convert


def _via(storage: pa.DataType, target: pa.DataType) -> Converter:
    return lambda values: pa.array(values, type=storage).cast(target)


def _bytes(values: list[Any]) -> pa.Array:
    return pa.array([None if v is None else base64.b64decode(v) for v in values], type=pa.binary())


def _uuid(values: list[Any]) -> pa.Array:
    storage = pa.array([None if v is None else uuid.UUID(v).bytes for v in values], type=pa.binary(16))
    return pa.ExtensionArray.from_storage(pa.uuid(), storage)


def _json_text(values: list[Any]) -> pa.Array:
    return pa.array(
        [None if v is None else v if isinstance(v, str) else orjson.dumps(v).decode() for v in values],
        type=pa.string(),
    )


def _list_of(item: Column, item_converter: Converter) -> Converter:
    arrow_type = pa.list_(item.type)

    def convert(values: list[Any]) -> pa.Array:
        offsets, flat, mask = [0], [], []
        for value in values:
            mask.append(value is None)
            if value is not None:
                flat.extend(value)
            offsets.append(len(flat))
        items = item_converter(flat)
        array = pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), items, mask=pa.array(mask))
        return array.cast(arrow_type)

    return convert


def _source_type(params: dict[str, str]) -> str:
    name = params.get(_TYPE, "")
    length, scale = params.get(_LENGTH), params.get(_SCALE)
    if name in ("NUMERIC", "DECIMAL") and length and length != "0":
        return f"{name}({length},{scale or 0})"
    if name in ("VARCHAR", "BPCHAR", "CHAR") and length and length != "2147483647":
        return f"{name}({length})"
    return name


def map_field(schema: dict[str, Any], name: str | None = None) -> tuple[Column, Converter]:
    """Map one Debezium field schema to a Column and the converter for its values.

    The column's default (what existing rows hold when the column is added) is converted too.
    """
    column, converter = _map_field(schema, name)
    raw_default = schema.get("default")
    if raw_default is not None:
        try:
            default = converter([raw_default]).to_pylist()[0]
        except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError):
            default = None
        column = Column(
            column.name, column.type, column.nullable, column.source_type, column.logical, default
        )
    return column, converter


def _map_field(schema: dict[str, Any], name: str | None = None) -> tuple[Column, Converter]:
    col_name = name if name is not None else schema.get("field", "")
    params = schema.get("parameters") or {}
    nullable = bool(schema.get("optional", True))
    source = _source_type(params)
    kind, semantic = schema["type"], schema.get("name")

    def column(arrow_type: pa.DataType, logical: str | None = None) -> Column:
        return Column(col_name, arrow_type, nullable, source, logical)

    if semantic == "io.debezium.time.Date":
        return column(pa.date32()), _via(pa.int32(), pa.date32())
    if semantic == "io.debezium.time.MicroTime":
        return column(pa.time64("us")), _via(pa.int64(), pa.time64("us"))
    if semantic == "io.debezium.time.Time":
        return column(
            pa.time64("us")
        ), lambda v: pa.array(v, pa.int32()).cast(pa.time32("ms")).cast(pa.time64("us"))
    if semantic == "io.debezium.time.MicroTimestamp":
        return column(pa.timestamp("us")), _via(pa.int64(), pa.timestamp("us"))
    if semantic == "io.debezium.time.Timestamp":
        return column(
            pa.timestamp("us")
        ), lambda v: pa.array(v, pa.int64()).cast(pa.timestamp("ms")).cast(pa.timestamp("us"))
    if semantic == "io.debezium.time.NanoTimestamp":
        return column(
            pa.timestamp("us")
        ), lambda v: pa.array(v, pa.int64()).cast(pa.timestamp("ns")).cast(pa.timestamp("us"), safe=False)
    if semantic == "io.debezium.time.ZonedTimestamp":
        target = pa.timestamp("us", tz="UTC")
        return column(target), _via(pa.string(), target)
    if semantic == "io.debezium.data.Uuid":
        return column(pa.uuid()), _uuid
    if semantic == "io.debezium.data.Json" or kind in ("struct", "map"):
        return column(pa.string(), "json"), _json_text
    if kind == "string" and params.get(_TYPE) in ("NUMERIC", "DECIMAL"):
        precision, scale = int(params.get(_LENGTH) or 0), int(params.get(_SCALE) or 0)
        if 0 < precision <= MAX_DECIMAL_PRECISION:
            target = pa.decimal128(precision, scale)
            return column(target), _numeric(target)
        # Unconstrained NUMERIC (or wider than Iceberg's 38 digits) stays exact as text.
        return column(pa.string()), _numeric(pa.string())
    if kind == "bytes":
        return column(pa.binary()), _bytes
    if kind == "array":
        item, item_converter = map_field(schema["items"], name="element")
        return column(pa.list_(item.type)), _list_of(item, item_converter)
    if kind in _PRIMITIVES:
        arrow_type = _PRIMITIVES[kind]
        convert = _float(arrow_type) if pa.types.is_floating(arrow_type) else _plain(arrow_type)
        return column(arrow_type), convert
    # Any other Debezium type is kept as its JSON text rather than dropped.
    return column(pa.string(), "json"), _json_text
