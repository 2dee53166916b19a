"""Read stored rows by key, for changes that must be applied on top of the stored version."""

from __future__ import annotations

from typing import Any

from pyiceberg.expressions import In
from pyiceberg.table import Table


def stored_rows(table: Table, key_column: str, keys: list[str]) -> list[dict[str, Any]]:
    """The current rows of *keys*.

    The ``In`` filter prunes data files by their column statistics and then rows; its cost grows
    with the number of keys, which is why only changes that need the stored row (MongoDB updates
    delivered as a patch) come here, not every change.
    """
    if table.current_snapshot() is None or not keys:
        return []
    return table.scan(row_filter=In(key_column, keys)).to_arrow().to_pylist()
