"""Read stored rows by key, for changes that must be applied on top of the stored version."""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pyiceberg.expressions import In
from pyiceberg.table import Table

from floe_cdc.lake.schema import key_names
from floe_cdc.lake.soft_deletes import live_rows


def stored_rows(table: Table, key_column: str, keys: list[str]) -> list[dict[str, Any]]:
    """The current rows of *keys*.

    The ``In`` filter prunes data files by their column statistics and then rows; its cost grows
    with the number of keys, which is why only changes that need the stored row (MongoDB updates
    delivered as a patch) come here, not every change.
    """
    if table.current_snapshot() is None or not keys:
        return []
    return table.scan(row_filter=In(key_column, keys)).to_arrow().to_pylist()


class StoredTable:
    """A replicated table's Arrow schema and its current rows by key (MongoDB patches need both)."""

    def __init__(self, table: Table, key_column: str) -> None:
        self.table, self.key_column = table, key_column

    def arrow_schema(self) -> pa.Schema:
        return self.table.schema().as_arrow()

    def rows(self, keys: list[str]) -> list[dict[str, Any]]:
        return stored_rows(self.table, self.key_column, keys)


def key_columns(table: Table) -> pa.Table:
    """The table's identifier (key) columns, of the rows a source reader would see (a soft-deleted
    row is not one): enough to count them."""
    schema = table.schema()
    return table.scan(row_filter=live_rows(schema), selected_fields=tuple(key_names(schema))).to_arrow()
