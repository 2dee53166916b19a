"""Reduce a ChangeBatch to the final change per key, before touching any file.

Pure Arrow functions over the batch: drop replays below the table's watermarks, apply a
truncate in position order, carry TOASTed values forward within a key's changes, and keep the
last change per key by source position (then by arrival).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from floe_cdc.core.changes import (
    OP_COLUMN,
    PARTITION_COLUMN,
    POS_COLUMN,
    POSITION_TYPE,
    SEQ_COLUMN,
    TRUNCATE,
    UNAVAILABLE_COLUMN,
)


def storage(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """Extension arrays (uuid) have no compute kernels; compare their storage instead."""
    if isinstance(column.type, pa.BaseExtensionType):
        if isinstance(column, pa.ChunkedArray):
            return pa.chunked_array([c.storage for c in column.chunks], type=column.type.storage_type)
        return column.storage
    return column


def keys_only(table: pa.Table, key: list[str]) -> pa.Table:
    return pa.table({name: storage(table[name]) for name in key})


def position_scalar(value: int) -> pa.Scalar:
    return pa.scalar(Decimal(value), POSITION_TYPE)


@dataclass
class Reduced:
    """The final change per key, and what the reduction learned on the way."""

    latest: pa.Table
    truncated_at: int | None
    replayed: int


def drop_replays(data: pa.Table, watermarks: dict[int, int]) -> pa.Table:
    """Drop events positioned below what the table already holds for their partition.

    Events at the watermark itself stay: they are the same change again (applying it twice is
    harmless), or rows of one snapshot sharing its position.
    """
    if not watermarks or data.num_rows == 0:
        return data
    keep = None
    for partition in pc.unique(data[PARTITION_COLUMN]).to_pylist():
        mark = watermarks.get(partition)
        in_partition = pc.equal(data[PARTITION_COLUMN], partition)
        fresh = (
            in_partition
            if mark is None
            else pc.and_(in_partition, pc.greater_equal(data[POS_COLUMN], position_scalar(mark)))
        )
        keep = fresh if keep is None else pc.or_(keep, fresh)
    return data.filter(keep)


def order(data: pa.Table) -> pa.Table:
    """Events in source order: by position, then by arrival."""
    return data.take(pc.sort_indices(data, sort_keys=[(POS_COLUMN, "ascending"), (SEQ_COLUMN, "ascending")]))


def apply_truncate(data: pa.Table) -> tuple[pa.Table, int | None]:
    """Events after the last truncate, and that truncate's position (None without one)."""
    truncates = pc.equal(data[OP_COLUMN], TRUNCATE)
    if not pc.any(truncates).as_py():
        return data, None
    last = int(pc.max(pc.filter(data[POS_COLUMN], truncates)).as_py())
    later = pc.and_(pc.greater(data[POS_COLUMN], position_scalar(last)), pc.invert(truncates))
    return data.filter(later), last


def _key_tuples(data: pa.Table, key: list[str]) -> list[tuple]:
    return list(zip(*(storage(data[k]).to_pylist() for k in key), strict=True))


def carry_unavailable(data: pa.Table, key: list[str]) -> pa.Table:
    """Fill columns the source did not send from the same key's previous change in the batch.

    *data* must be in source order. What no earlier change of the batch knows stays listed in
    the unavailable column, to be taken from the stored row.
    """
    unavailable = data[UNAVAILABLE_COLUMN].to_pylist()
    if not any(unavailable):
        return data
    names = sorted({name for names in unavailable if names for name in names})
    values = {name: data[name].to_pylist() for name in names}
    last_known: dict[tuple, dict[str, Any]] = {}
    for index, row_key in enumerate(_key_tuples(data, key)):
        known = last_known.setdefault(row_key, {})
        missing = set(unavailable[index] or ())
        for name in names:
            if name in missing and name in known:
                values[name][index] = known[name]
                missing.discard(name)
            elif name not in missing:
                known[name] = values[name][index]
        unavailable[index] = sorted(missing) or None
    for name in names:
        data = data.set_column(
            data.schema.get_field_index(name), name, pa.array(values[name], data[name].type)
        )
    index = data.schema.get_field_index(UNAVAILABLE_COLUMN)
    return data.set_column(index, UNAVAILABLE_COLUMN, pa.array(unavailable, data[UNAVAILABLE_COLUMN].type))


def last_per_key(data: pa.Table, key: list[str]) -> pa.Table:
    """The last change of each key; *data* must be in source order."""
    if data.num_rows == 0:
        return data
    ranked = keys_only(data, key).append_column("__rank", pa.array(range(data.num_rows), pa.int64()))
    latest = ranked.group_by(key, use_threads=False).aggregate([("__rank", "max")])
    ranks = latest["__rank_max"].combine_chunks()
    return data.take(pc.take(ranks, pc.sort_indices(ranks)))


def reduce(data: pa.Table, key: list[str], watermarks: dict[int, int]) -> Reduced:
    fresh = drop_replays(data, watermarks)
    ordered = order(fresh)
    after_truncate, truncated_at = apply_truncate(ordered)
    filled = carry_unavailable(after_truncate, key)
    return Reduced(last_per_key(filled, key), truncated_at, data.num_rows - fresh.num_rows)


def match_rows(existing: pa.Table, incoming: pa.Table, key: list[str], positions: Iterable[str]) -> pa.Table:
    """Pairs (existing row, incoming row) with the same key, with both positions.

    Returns a table of ``__existing``, ``__incoming``, ``__existing_pos`` and ``__incoming_pos``.
    """
    existing_pos, incoming_pos = positions
    left = keys_only(existing, key)
    left = left.append_column("__existing", pa.array(range(existing.num_rows), pa.int64()))
    left = left.append_column("__existing_pos", existing[existing_pos])
    right = keys_only(incoming, key)
    right = right.append_column("__incoming", pa.array(range(incoming.num_rows), pa.int64()))
    right = right.append_column("__incoming_pos", incoming[incoming_pos])
    joined = left.join(right, keys=key, join_type="inner", use_threads=False)
    return joined.select(["__existing", "__incoming", "__existing_pos", "__incoming_pos"])
