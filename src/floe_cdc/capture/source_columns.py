"""A PostgreSQL table's columns read from its catalog, typed exactly as its change events type them.

The direct initial load reads rows with ADBC instead of through Debezium. The Iceberg table it
creates, and every value it writes, must be what replication would have made of Debezium's
snapshot events: the same Arrow type from the same declared type (``capture.types``), the same
source type in the column's doc, the same value. Only types whose values ADBC returns in a form
that converts to that exactly are loaded directly; a table with any other column is refused
with its name, so that it keeps Debezium's snapshot.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
from psycopg2 import sql

from floe_cdc.capture.types import MAX_DECIMAL_PRECISION
from floe_cdc.core.changes import Column

_CATALOG = """
SELECT a.attname,
       upper(t.typname),
       t.typcategory,
       upper(coalesce(e.typname, '')),
       t.typtype,
       a.atttypmod,
       a.attnotnull,
       coalesce(i.indisprimary, false)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary AND a.attnum = ANY (i.indkey)
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

# Source type -> Arrow type, as capture.types maps Debezium's schema for it (with Floe's connector
# settings: decimal.handling.mode=string, time.precision.mode=adaptive_time_microseconds).
_SCALARS: dict[str, pa.DataType] = {
    "INT2": pa.int16(),
    "INT4": pa.int32(),
    "INT8": pa.int64(),
    "FLOAT4": pa.float32(),
    "FLOAT8": pa.float64(),
    "BOOL": pa.bool_(),
    "TEXT": pa.string(),
    "VARCHAR": pa.string(),
    "BPCHAR": pa.string(),
    "DATE": pa.date32(),
    "TIME": pa.time64("us"),
    "TIMESTAMP": pa.timestamp("us"),
    "TIMESTAMPTZ": pa.timestamp("us", tz="UTC"),
    "UUID": pa.uuid(),
    "BYTEA": pa.binary(),
}
_JSON = ("JSON", "JSONB")
# Read as the text Debezium sends for them: the type's output (format's %s, which turns NULL into
# ''; a cast to text would add the netmask to every inet), and for MONEY the amount, not the
# currency text.
_AS_TEXT = "CASE WHEN {0} IS NOT NULL THEN format('%s', {0}) END"
_READ_AS: dict[str, str] = {"MONEY": "{}::numeric::text"} | {
    name: _AS_TEXT for name in ("INET", "CIDR", "MACADDR", "MACADDR8", "XML")
}
# Array elements ADBC reads as the Arrow types Debezium's item schemas map to.
_ELEMENTS = ("INT2", "INT4", "INT8", "FLOAT4", "FLOAT8", "BOOL", "TEXT", "VARCHAR", "BPCHAR")


class DirectLoadUnsupported(ValueError):
    """A column whose type the direct load does not reproduce exactly."""


@dataclass(frozen=True)
class SourceColumn:
    """A column as replication types it, and how its values read by ADBC become that type."""

    column: Column
    key: bool
    convert: Callable[[pa.ChunkedArray], pa.ChunkedArray | pa.Array]
    read_as: str | None = None  # an SQL expression of the column ({}), to read it as Debezium sends it

    @property
    def select(self) -> sql.Composable:
        """The column in a SELECT list: itself, or the expression that reads it as Debezium sends it."""
        name = sql.Identifier(self.column.name)
        if self.read_as is None:
            return name
        return sql.SQL("{} AS {}").format(sql.SQL(self.read_as).format(name), name)


def _storage(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """ADBC returns types it has no Arrow type for (numeric) as an opaque extension over text."""
    if isinstance(values.type, pa.BaseExtensionType):
        return pa.chunked_array([chunk.storage for chunk in values.chunks], values.type.storage_type)
    return values


def _cast(target: pa.DataType) -> Callable[[pa.ChunkedArray], pa.ChunkedArray]:
    return lambda values: _storage(values).cast(target)


def _uuid(values: pa.ChunkedArray) -> pa.Array:
    storage = _storage(values).combine_chunks()
    if not pa.types.is_fixed_size_binary(storage.type):
        storage = storage.cast(pa.binary(16))
    return pa.ExtensionArray.from_storage(pa.uuid(), storage)


def _typed(name: str, type_name: str, typmod: int, nullable: bool) -> Column:
    """The Column capture.types makes of Debezium's schema for a column of this declared type."""
    if type_name == "NUMERIC":
        if typmod >= 4:  # NUMERIC(p,s): typmod holds ((p << 16) | s) + 4
            precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
            source = f"NUMERIC({precision},{scale})"
            if precision <= MAX_DECIMAL_PRECISION:
                return Column(name, pa.decimal128(precision, scale), nullable, source)
            return Column(name, pa.string(), nullable, source)
        return Column(name, pa.string(), nullable, "NUMERIC")
    if type_name in _JSON:
        return Column(name, pa.string(), nullable, type_name, "json")
    if type_name not in _SCALARS:
        raise DirectLoadUnsupported(type_name)
    source = f"{type_name}({typmod - 4})" if type_name in ("VARCHAR", "BPCHAR") and typmod >= 4 else type_name
    return Column(name, _SCALARS[type_name], nullable, source)


# ADBC's text of a NUMERIC's special values, and PostgreSQL's (what the streaming path writes).
_NUMERIC_SPECIALS = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _numeric(target: pa.DataType) -> Callable[[pa.ChunkedArray], pa.ChunkedArray]:
    """NUMERIC read as text, special values as PostgreSQL prints them, then cast to *target*."""

    def convert(values: pa.ChunkedArray) -> pa.ChunkedArray:
        text = _storage(values)
        for read, printed in _NUMERIC_SPECIALS.items():
            text = pc.if_else(pc.equal(text, read), printed, text)
        return text.cast(target)

    return convert


def _converter(column: Column) -> Callable[[pa.ChunkedArray], pa.ChunkedArray | pa.Array]:
    if column.type == pa.uuid():
        return _uuid
    if column.source_type.startswith("NUMERIC"):
        return _numeric(column.type)
    return _cast(column.type)


def declared_columns(cur: psycopg2.extensions.cursor, schema: str, table: str) -> dict[str, tuple[str, bool]]:
    """Each column of *schema*.*table*: its declared type's name (upper case) and whether it is
    part of the primary key."""
    cur.execute(_CATALOG, (schema, table))
    return {name: (type_name, key) for name, type_name, *_, key in cur.fetchall()}


def source_columns(cur: psycopg2.extensions.cursor, schema: str, table: str) -> list[SourceColumn]:
    """The columns of *schema*.*table* in source order; DirectLoadUnsupported names a column of a
    type the direct load does not reproduce exactly."""
    cur.execute(_CATALOG, (schema, table))
    found = []
    for name, type_name, category, element, kind, typmod, not_null, key in cur.fetchall():
        if category == "A":
            if element not in _ELEMENTS:
                raise DirectLoadUnsupported(f"column {name} ({element}[])")
            item = _SCALARS[element]
            column = Column(name, pa.list_(item), not not_null, type_name)
            found.append(SourceColumn(column, key, _cast(column.type)))
            continue
        read_as = _AS_TEXT if kind == "e" else _READ_AS.get(type_name)  # kind "e": an enum
        try:
            column = (
                Column(name, pa.string(), not not_null, type_name)
                if read_as is not None
                else _typed(name, type_name, typmod, not not_null)
            )
        except DirectLoadUnsupported:
            raise DirectLoadUnsupported(f"column {name} ({type_name})") from None
        found.append(SourceColumn(column, key, _converter(column), read_as))
    return found
