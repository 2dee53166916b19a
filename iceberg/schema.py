"""Map replicated columns to Iceberg types, create tables and evolve their schemas.

Every column is optional except the primary key (Iceberg identifier fields must be required),
so that a column dropped at the source can stay in Iceberg with nulls from then on. The source
type is kept in the field's doc, so ``NUMERIC(12,2)`` or ``JSONB`` stays visible in Iceberg.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.schema import Schema
from pyiceberg.table import Table, Transaction
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    NestedField,
    PrimitiveType,
    StringType,
    StructType,
    TimestampType,
    TimestamptzType,
    TimeType,
    UUIDType,
)

from floe.changes import POSITION_TYPE, ChangeBatch, Column
from floe.errors import SchemaMappingError
from iceberg.catalog import ensure_namespace

POSITION_FIELD = "_floe_position"
# Each row's source position: a change older than what the row holds never overwrites it.
POSITION_COLUMN = Column(
    POSITION_FIELD, POSITION_TYPE, True, "source position of the row's last change (Floe)"
)


@dataclass
class Evolution:
    """What a batch changed in a table's schema, and the defaults existing rows take."""

    changes: list[str] = field(default_factory=list)
    defaults: dict[str, Any] = field(default_factory=dict)


class _Ids:
    def __init__(self, start: int = 1) -> None:
        self.next = start

    def take(self) -> int:
        value, self.next = self.next, self.next + 1
        return value


def iceberg_type(arrow_type: pa.DataType, ids: _Ids, where: str) -> IcebergType:
    """The Iceberg type for a column's Arrow type; list element ids are taken from *ids*."""
    if isinstance(arrow_type, pa.UuidType):
        return UUIDType()
    if pa.types.is_integer(arrow_type):
        return LongType() if arrow_type.bit_width == 64 else IntegerType()
    if pa.types.is_decimal(arrow_type):
        return DecimalType(arrow_type.precision, arrow_type.scale)
    if pa.types.is_timestamp(arrow_type):
        return TimestamptzType() if arrow_type.tz else TimestampType()
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        element_id = ids.take()
        element = iceberg_type(arrow_type.value_type, ids, where)
        return ListType(element_id=element_id, element_type=element, element_required=False)
    if pa.types.is_struct(arrow_type):
        field_ids = [ids.take() for _ in arrow_type]
        return StructType(
            *(
                NestedField(field_id, f.name, iceberg_type(f.type, ids, f"{where}.{f.name}"), required=False)
                for field_id, f in zip(field_ids, arrow_type, strict=True)
            )
        )
    simple = {
        pa.bool_(): BooleanType(),
        pa.float32(): FloatType(),
        pa.float64(): DoubleType(),
        pa.string(): StringType(),
        pa.large_string(): StringType(),
        pa.binary(): BinaryType(),
        pa.large_binary(): BinaryType(),
        pa.date32(): DateType(),
        pa.time64("us"): TimeType(),
    }
    if arrow_type in simple:
        return simple[arrow_type]
    raise SchemaMappingError(f"{where}: no Iceberg type for Arrow type {arrow_type}")


def _doc(column: Column) -> str | None:
    return column.source_type or None


def build_schema(table: str, columns: list[Column], key: list[str]) -> Schema:
    """A new table's schema: columns in source order, the primary key as identifier fields."""
    if not key:
        raise SchemaMappingError(
            f"table {table} has no primary key, so updates and deletes cannot be matched to rows; "
            "add a primary key to the source table"
        )
    ids = _Ids(len(columns) + 2)
    fields = []
    for field_id, column in enumerate([*columns, POSITION_COLUMN], start=1):
        fields.append(
            NestedField(
                field_id=field_id,
                name=column.name,
                field_type=iceberg_type(column.type, ids, f"{table}.{column.name}"),
                required=column.name in key,
                doc=_doc(column),
            )
        )
    by_name = {f.name: f.field_id for f in fields}
    return Schema(*fields, identifier_field_ids=[by_name[k] for k in key])


def create_table(catalog: Catalog, namespace: str, batch: ChangeBatch) -> Table:
    schema = build_schema(batch.table, batch.columns, batch.key)
    ensure_namespace(catalog, namespace)
    return catalog.create_table(
        (namespace, batch.table),
        schema=schema,
        properties={
            "floe.source": batch.source,
            "floe.source-table": batch.source_table,
            "write.parquet.compression-codec": "zstd",
            # A Floe commit is valid only on top of the snapshot whose offsets it continued from:
            # never let the client re-apply it on top of a concurrent commit.
            "commit.retry.num-retries": "0",
        },
    )


def _promotable(current: IcebergType, wanted: IcebergType) -> bool:
    """Type changes Iceberg allows in place."""
    if isinstance(current, IntegerType) and isinstance(wanted, LongType):
        return True
    if isinstance(current, FloatType) and isinstance(wanted, DoubleType):
        return True
    return (
        isinstance(current, DecimalType)
        and isinstance(wanted, DecimalType)
        and wanted.scale == current.scale
        and wanted.precision > current.precision
    )


def evolve(tx: Transaction, table: str, columns: list[Column]) -> Evolution:
    """Stage the schema changes the batch needs in *tx*.

    New columns, and new fields of nested structs, are added as optional (with the source's
    default noted for existing rows); widening promotions are applied, also inside structs and
    lists. A change Iceberg cannot follow raises with the column, both types and the way out.
    """
    schema = tx.table_metadata.schema()
    evolution = Evolution()
    changes = evolution.changes
    with tx.update_schema() as update:
        for column in [*columns, POSITION_COLUMN]:
            existing = schema.find_field(column.name) if column.name in schema.column_names else None
            ids = _Ids(10_000)  # nested field ids are reassigned by the schema update
            wanted = iceberg_type(column.type, ids, f"{table}.{column.name}")
            if existing is None:
                update.add_column(column.name, wanted, doc=_doc(column))
                changes.append(f"added column {column.name} {wanted}")
                if column.default is not None:
                    evolution.defaults[column.name] = column.default
                continue
            try:
                steps = _changes(existing.field_type, wanted, (column.name,))
            except _Incompatible:
                raise SchemaMappingError(
                    f"table {table}: column {column.name} changed from {existing.field_type} to {wanted} "
                    f"(source type {column.source_type}), which Iceberg cannot follow in place; restore the "
                    f"source type, or rename the Iceberg column (its values stay there) and replay the "
                    f"quarantined events, or re-create the Iceberg table and re-snapshot the source"
                ) from None
            for action, path, kind in steps:
                name = ".".join(path)
                if action == "add":
                    update.add_column(path, kind)
                    changes.append(f"added field {name} {kind}")
                elif len(path) == 1:
                    update.update_column(path, field_type=kind, doc=_doc(column))
                    changes.append(f"widened {name} {existing.field_type} -> {kind}")
                else:
                    update.update_column(path, field_type=kind)
                    changes.append(f"widened {name} -> {kind}")
    return evolution


class _Incompatible(Exception):
    pass


def _changes(
    current: IcebergType, wanted: IcebergType, path: tuple[str, ...]
) -> list[tuple[str, tuple[str, ...], IcebergType]]:
    """The steps ("add" or "widen", field path, type) that let *current* hold *wanted*'s values.

    Nested paths name a list's element ``element``, as pyiceberg's schema updates expect.
    """
    if isinstance(current, StructType) and isinstance(wanted, StructType):
        known = {f.name: f for f in current.fields}
        steps: list[tuple[str, tuple[str, ...], IcebergType]] = []
        for nested in wanted.fields:
            if nested.name in known:
                steps += _changes(known[nested.name].field_type, nested.field_type, (*path, nested.name))
            else:
                steps.append(("add", (*path, nested.name), nested.field_type))
        return steps
    if isinstance(current, ListType) and isinstance(wanted, ListType):
        return _changes(current.element_type, wanted.element_type, (*path, "element"))
    if current == wanted or _narrower(current, wanted):
        return []
    if _promotable(current, wanted):
        return [("widen", path, wanted)]
    raise _Incompatible


def _narrower(current: IcebergType, wanted: IcebergType) -> bool:
    """A value of *wanted* fits *current* without loss (the reverse of a promotion)."""
    return isinstance(current, PrimitiveType) and _promotable(wanted, current)
