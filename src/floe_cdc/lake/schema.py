"""Map replicated columns to Iceberg types, create tables and evolve their schemas.

Every column is optional except the primary key (Iceberg identifier fields must be required),
so that a column dropped at the source can stay in Iceberg with nulls from then on. The source
type is kept in the field's doc, so ``NUMERIC(12,2)`` or ``JSONB`` stays visible in Iceberg.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from importlib import resources
from typing import Any

import orjson
import pyarrow as pa
import yaml
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

from floe_cdc.core.changes import POSITION_TYPE, ChangeBatch, Column
from floe_cdc.core.errors import SchemaMappingError
from floe_cdc.lake.catalog import new_table
from floe_cdc.lake.layout import partition_spec, sort_order

POSITION_FIELD = "_floe_position"
# Table property: each source column's identity (PostgreSQL's attnum) and the names it has had,
# oldest first. It is how a column renamed at the source becomes a rename in Iceberg.
COLUMN_NAMES_PROPERTY = "floe.source-column-names"
# Properties of every replicated table, from the repository's iceberg/table-defaults.yaml (installed
# with the package).
_DEFAULTS = yaml.safe_load((resources.files(__package__) / "defaults" / "table-defaults.yaml").read_text())
TABLE_DEFAULTS: dict[str, str] = _DEFAULTS["properties"]
# The partition fields and sort columns of a table that configures none ("key": its key).
DEFAULT_PARTITION_BY: list[str] = _DEFAULTS["layout"]["partition_by"]
DEFAULT_SORT_BY: list[str] | str = _DEFAULTS["layout"]["sort_by"]
# Each row's source position: a change older than what the row holds never overwrites it.
POSITION_COLUMN = Column(
    POSITION_FIELD, POSITION_TYPE, True, "source position of the row's last change (Floe)"
)


@dataclass
class Evolution:
    """What a batch changed in a table's schema, and the defaults existing rows take."""

    changes: list[str] = field(default_factory=list)
    defaults: dict[str, Any] = field(default_factory=dict)


def column_history(properties: dict[str, str]) -> dict[int, list[str]]:
    """The names each source column has had (oldest first), by source column id, from a table's
    *properties*."""
    raw = properties.get(COLUMN_NAMES_PROPERTY)
    return {int(k): names for k, names in orjson.loads(raw).items()} if raw else {}


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


def key_names(schema: Schema) -> list[str]:
    """The names of the table's key (identifier) columns, in key order."""
    return [schema.find_column_name(i) for i in schema.identifier_field_ids]


def build_schema(table: str, columns: list[Column], key: list[str], append_only: bool = False) -> Schema:
    """A new table's schema: columns in source order, the primary key as identifier fields (none
    for an *append_only* table, whose rows are never matched: a history table)."""
    if not key and not append_only:
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


def create_table(
    catalog: Catalog,
    namespace: str,
    batch: ChangeBatch,
    format_version: int = 2,
    partition_by: list[str] | None = None,
    sort_by: list[str] | None = None,
    append_only: bool = False,
) -> Table:
    """The Iceberg table *batch*'s changes go to, of *format_version* (3: deletion vectors and row
    lineage), partitioned and sorted as configured (else as the table defaults say), with Floe's
    table defaults; *append_only*: without a key (a history table)."""
    schema = build_schema(batch.table, batch.columns, batch.key, append_only)
    if sort_by is None:
        sort_by = batch.key if DEFAULT_SORT_BY == "key" else list(DEFAULT_SORT_BY)
    return new_table(
        catalog,
        namespace,
        batch.table,
        schema,
        f"'target:' of table {batch.source_table} (or iceberg.namespace)",
        properties={
            "floe.source": batch.source,
            "floe.source-table": batch.source_table,
            "format-version": str(format_version),
            **TABLE_DEFAULTS,
        },
        partition_spec=partition_spec(
            schema, DEFAULT_PARTITION_BY if partition_by is None else partition_by, batch.table
        ),
        sort_order=sort_order(schema, sort_by, batch.table),
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


def _renames(schema: Schema, history: dict[int, list[str]]) -> dict[str, str]:
    """New name -> Iceberg name of each column renamed at the source and not yet in Iceberg."""
    renames = {}
    for names in history.values():
        current = names[-1]
        if current in schema.column_names:
            continue
        known = [old for old in names[:-1] if old in schema.column_names]
        if known:
            renames[current] = known[-1]
    return renames


def evolve(
    tx: Transaction,
    table: str,
    columns: list[Column],
    history: dict[int, list[str]] | None = None,
    replace_incompatible: bool = False,
) -> Evolution:
    """Stage the schema changes the batch needs in *tx*.

    Columns renamed at the source (*history*: the names of each source column) are renamed in
    Iceberg, which keeps their field ids and values. New columns, and new fields of nested
    structs, are added as optional (with the source's default noted for existing rows);
    widening promotions are applied, also inside structs and lists. A change Iceberg cannot
    follow raises with the column, both types and the way out, unless *replace_incompatible*
    (a re-snapshot is under way): then the column is replaced, empty until the snapshot fills it.
    """
    evolution = Evolution()
    changes = evolution.changes
    if history and history != column_history(tx.table_metadata.properties):
        recorded = {str(column_id): names for column_id, names in history.items()}
        tx.set_properties({COLUMN_NAMES_PROPERTY: orjson.dumps(recorded).decode()})
    renames = _renames(tx.table_metadata.schema(), history or {})
    if renames:
        # An update of its own: pyiceberg refuses to add a name that a rename in the same
        # update frees (RENAME code TO label, then ADD COLUMN code).
        with tx.update_schema() as update:
            for new, old in renames.items():
                update.rename_column(old, new)
                changes.append(f"renamed column {old} to {new}")
    _replace_incompatible(tx, table, columns, replace_incompatible, changes)
    schema = tx.table_metadata.schema()
    with tx.update_schema() as update:
        for column in [*columns, POSITION_COLUMN]:
            name = column.name
            existing = schema.find_field(name) if name in schema.column_names else None
            ids = _Ids(10_000)  # nested field ids are reassigned by the schema update
            wanted = iceberg_type(column.type, ids, f"{table}.{column.name}")
            if existing is None:
                update.add_column(column.name, wanted, doc=_doc(column))
                changes.append(f"added column {column.name} {wanted}")
                if column.default is not None:
                    evolution.defaults[column.name] = column.default
                continue
            steps = _changes(existing.field_type, wanted, (name,))
            for action, path, kind in steps:
                dotted = ".".join(path)
                if action == "add":
                    update.add_column(path, kind)
                    changes.append(f"added field {dotted} {kind}")
                elif len(path) == 1:
                    update.update_column(path, field_type=kind, doc=_doc(column))
                    changes.append(f"widened {dotted} {existing.field_type} -> {kind}")
                else:
                    update.update_column(path, field_type=kind)
                    changes.append(f"widened {dotted} -> {kind}")
    return evolution


class _Incompatible(Exception):
    pass


def _replace_incompatible(
    tx: Transaction, table: str, columns: list[Column], replace: bool, changes: list[str]
) -> None:
    """Drop the columns whose new type Iceberg cannot follow, if *replace*; else raise the way out."""
    schema = tx.table_metadata.schema()
    incompatible = []
    for column in columns:
        if column.name not in schema.column_names:
            continue
        existing = schema.find_field(column.name)
        wanted = iceberg_type(column.type, _Ids(10_000), f"{table}.{column.name}")
        try:
            _changes(existing.field_type, wanted, (column.name,))
        except _Incompatible:
            if not replace:
                raise SchemaMappingError(
                    f"table {table}: column {column.name} changed from {existing.field_type} to {wanted} "
                    f"(source type {column.source_type}), which Iceberg cannot change in place; run "
                    f"'floe resnapshot --table {table}': the column is replaced and the table read "
                    "again from the source"
                ) from None
            incompatible.append((column.name, existing.field_type, wanted))
    if incompatible:
        with tx.update_schema() as update:
            for name, old, new in incompatible:
                update.delete_column(name)
                changes.append(f"replaced column {name} {old} -> {new} (re-snapshot under way)")


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
