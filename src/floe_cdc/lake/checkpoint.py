"""Stream positions kept in the Iceberg snapshot summary, written in the same commit as the data.

This is what makes restarts exact: the table itself says up to which stream offsets it holds
changes, so no other store can disagree with it. Snapshots without Floe's properties (written by
maintenance, for example) are skipped by walking back to the parent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson
from pyiceberg.table import Table

OFFSETS_KEY = "floe.offsets"
POSITION_KEY = "floe.source-position"
WATERMARKS_KEY = "floe.watermarks"
STAMPS_KEY = "floe.stamps"


@dataclass
class Checkpoint:
    """Per stream and partition: the next offset to read and the highest source position applied
    (the watermark below which an event is a replay); and the source position of the last change."""

    offsets: dict[str, dict[int, int]] = field(default_factory=dict)
    position: dict[str, Any] = field(default_factory=dict)
    watermarks: dict[str, dict[int, int]] = field(default_factory=dict)
    stamps: dict[str, dict[int, int]] = field(default_factory=dict)
    snapshot_id: int | None = None
    committed_ms: int | None = None  # when that snapshot was committed (Unix ms)
    # The table's properties when the checkpoint was read (column names seen at the source, ...),
    # so that decoding a cycle's events needs no second catalog round trip.
    table_properties: dict[str, str] = field(default_factory=dict)
    refs: frozenset[str] = frozenset()  # the table's branches and tags

    def merged_with(
        self,
        offsets: dict[str, dict[int, int]],
        position: dict[str, Any],
        watermarks: dict[str, dict[int, int]],
        stamps: dict[str, dict[int, int]] | None = None,
    ) -> Checkpoint:
        combined, combined_stamps = _copy(self.offsets), _copy(self.stamps)
        for stream, parts in offsets.items():
            combined.setdefault(stream, {}).update(parts)
            # A stamp belongs to the record before the offset: drop it where the batch has none.
            for partition in parts:
                combined_stamps.get(stream, {}).pop(partition, None)
        for stream, parts in (stamps or {}).items():
            combined_stamps.setdefault(stream, {}).update(parts)
        marks = _copy(self.watermarks)
        for stream, parts in watermarks.items():
            for partition, mark in parts.items():
                current = marks.setdefault(stream, {}).get(partition)
                marks[stream][partition] = mark if current is None else max(current, mark)
        return Checkpoint(combined, position or self.position, marks, combined_stamps)

    def properties(self) -> dict[str, str]:
        return {
            OFFSETS_KEY: _dump(self.offsets),
            POSITION_KEY: orjson.dumps(self.position).decode(),
            WATERMARKS_KEY: _dump(self.watermarks),
            STAMPS_KEY: _dump(self.stamps),
        }


def _copy(nested: dict[str, dict[int, int]]) -> dict[str, dict[int, int]]:
    return {stream: dict(parts) for stream, parts in nested.items()}


def _dump(nested: dict[str, dict[int, int]]) -> str:
    # Positions exceed 64 bits, so numbers are kept as strings.
    as_text = {stream: {str(p): str(v) for p, v in parts.items()} for stream, parts in nested.items()}
    return orjson.dumps(as_text).decode()


def _load(raw: str | None) -> dict[str, dict[int, int]]:
    if not raw:
        return {}
    return {s: {int(p): int(v) for p, v in parts.items()} for s, parts in orjson.loads(raw).items()}


def read_checkpoint(table: Table | None) -> Checkpoint:
    """The checkpoint of the newest snapshot that carries one; empty for a new table."""
    if table is None:
        return Checkpoint()
    properties = dict(table.properties)
    refs = frozenset(table.metadata.refs)
    snapshot = table.current_snapshot()
    while snapshot is not None:
        summary = snapshot.summary
        if summary.get(OFFSETS_KEY) is not None:
            position = orjson.loads(summary.get(POSITION_KEY) or "{}")
            watermarks = _load(summary.get(WATERMARKS_KEY))
            stamps = _load(summary.get(STAMPS_KEY))
            offsets = _load(summary.get(OFFSETS_KEY))
            return Checkpoint(
                offsets,
                position,
                watermarks,
                stamps,
                snapshot.snapshot_id,
                snapshot.timestamp_ms,
                properties,
                refs,
            )
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return Checkpoint(table_properties=properties, refs=refs)


def commit_lags(table: Table, since_ms: int) -> list[tuple[int, float]]:
    """(commit time, seconds between the newest change it applied and the commit) for each of
    Floe's commits since *since_ms*, oldest first: how fresh the table was as it moved."""
    points = []
    for snapshot in table.snapshots():
        summary = snapshot.summary
        raw = summary.get(POSITION_KEY) if summary is not None and snapshot.timestamp_ms >= since_ms else None
        stamp = orjson.loads(raw).get("ts_ms") if raw else None
        if stamp is not None:
            points.append((snapshot.timestamp_ms, max(snapshot.timestamp_ms - int(stamp), 0) / 1000))
    return sorted(points)
