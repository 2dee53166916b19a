"""A table's layout: its partition spec and its sort order, from the table's configuration.

Readers prune by partition (a day of a timestamp, a bucket of the key) and by the column ranges
of sorted files; ``maintain`` rewrites per partition. The configuration names partition fields
as Iceberg's SQL does (``day(created_at)``, ``bucket(16, id)``), and a sort order as column
names. Both apply when Floe creates a table, and a changed list changes the table's spec or
sort order (Iceberg's partition evolution: files already written keep their spec, new files get
the new one). pyiceberg writes each partition's rows to files of their own but sorts nothing,
so Floe sorts the rows it writes (:func:`sort_rows`).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.partitioning import UNPARTITIONED_PARTITION_SPEC, PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.table.sorting import UNSORTED_SORT_ORDER, SortField, SortOrder
from pyiceberg.transforms import (
    BucketTransform,
    DayTransform,
    HourTransform,
    IdentityTransform,
    MonthTransform,
    Transform,
    TruncateTransform,
    YearTransform,
)

from floe_cdc.core.config import PartitionField as ConfiguredField
from floe_cdc.core.config import parse_partition_field
from floe_cdc.core.errors import FloeError, Terminal
from floe_cdc.lake.changeset import keys_only

_FIRST_PARTITION_FIELD_ID = 1000  # Iceberg's first partition field id


class LayoutError(FloeError, Terminal):
    """A partition field or sort column the table does not have, or cannot be transformed so."""


def _transform(field: ConfiguredField) -> Transform:
    if field.transform == "identity":
        return IdentityTransform()
    if field.transform == "bucket":
        return BucketTransform(field.width)
    if field.transform == "truncate":
        return TruncateTransform(field.width)
    return {"year": YearTransform, "month": MonthTransform, "day": DayTransform, "hour": HourTransform}[
        field.transform
    ]()


def _field_name(field: ConfiguredField) -> str:
    """The partition field's name, as Spark names them (``id_bucket``, ``created_at_day``)."""
    if field.transform == "identity":
        return field.column
    return f"{field.column}_{'trunc' if field.transform == 'truncate' else field.transform}"


def _source_id(schema: Schema, column: str, table: str, setting: str) -> int:
    try:
        return schema.find_field(column).field_id
    except ValueError:
        raise LayoutError(
            f"table {table}: {setting} names column '{column}', which the table does not have; "
            f"its columns are {', '.join(schema.column_names)}"
        ) from None


def partition_spec(schema: Schema, fields: list[str], table: str) -> PartitionSpec:
    """The spec of the configured *fields* over *schema*; unpartitioned when there are none."""
    if not fields:
        return UNPARTITIONED_PARTITION_SPEC
    spec_fields = []
    for number, text in enumerate(fields):
        field = parse_partition_field(text)
        source = _source_id(schema, field.column, table, "partition_by")
        transform = _transform(field)
        if not transform.can_transform(schema.find_type(source)):
            raise LayoutError(
                f"table {table}: partition_by '{text}' cannot apply {field.transform} to column "
                f"'{field.column}' of type {schema.find_type(source)}; choose a transform for that type"
            )
        spec_fields.append(
            PartitionField(source, _FIRST_PARTITION_FIELD_ID + number, transform, _field_name(field))
        )
    return PartitionSpec(*spec_fields)


def sort_order(schema: Schema, columns: list[str], table: str) -> SortOrder:
    """Ascending by *columns*, nulls last; unsorted when there are none."""
    if not columns:
        return UNSORTED_SORT_ORDER
    fields = [
        SortField(_source_id(schema, column, table, "sort_by"), IdentityTransform()) for column in columns
    ]
    return SortOrder(*fields, order_id=1)


def _spec_fields(spec: PartitionSpec, schema: Schema) -> list[tuple[str, str]]:
    return [(schema.find_column_name(f.source_id), str(f.transform)) for f in spec.fields]


def _sort_fields(order: SortOrder, schema: Schema) -> list[str]:
    return [schema.find_column_name(f.source_id) for f in order.fields]


def evolve_layout(
    table: Table, partition_by: list[str] | None, sort_by: list[str] | None, name: str
) -> list[str]:
    """Change *table*'s partition spec and sort order to the configured ones where they differ
    (None: leave it as it is, whoever set it); what changed, for the log."""
    schema = table.schema()
    changes = []
    wanted = partition_spec(schema, partition_by, name) if partition_by is not None else None
    if wanted is not None and _spec_fields(wanted, schema) != _spec_fields(table.spec(), schema):
        wanted_keys = {(f.source_id, str(f.transform)) for f in wanted.fields}
        present = {(f.source_id, str(f.transform)) for f in table.spec().fields}
        with table.update_spec() as update:
            for field in table.spec().fields:
                if (field.source_id, str(field.transform)) not in wanted_keys:
                    update.remove_field(field.name)
            for field in wanted.fields:
                if (field.source_id, str(field.transform)) not in present:
                    update.add_field(schema.find_column_name(field.source_id), field.transform, field.name)
        changes.append(f"partition spec now {', '.join(partition_by) or 'unpartitioned'}")
    order = sort_order(schema, sort_by, name) if sort_by is not None else None
    if order is not None and _sort_fields(order, schema) != _sort_fields(table.sort_order(), schema):
        with table.update_sort_order() as update:
            for field in order.fields:
                update.asc(schema.find_column_name(field.source_id), IdentityTransform())
        changes.append(f"sort order now {', '.join(sort_by) or 'unsorted'}")
    return changes


def sort_rows(rows: pa.Table, order: SortOrder, schema: Schema) -> pa.Table:
    """*rows* in the table's sort order (a no-op for an unsorted table)."""
    columns = [c for c in _sort_fields(order, schema) if c in rows.column_names]
    if not columns or rows.num_rows < 2:
        return rows
    # On the columns' storage: Arrow sorts no extension type (UUIDs).
    order = pc.sort_indices(keys_only(rows, columns), [(c, "ascending") for c in columns])
    return rows.take(order)
