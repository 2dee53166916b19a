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


@dataclass
class Checkpoint:
    """Next stream offset per stream and partition, and the source position of the last change."""

    offsets: dict[str, dict[int, int]] = field(default_factory=dict)
    position: dict[str, Any] = field(default_factory=dict)
    snapshot_id: int | None = None

    def merged_with(self, offsets: dict[str, dict[int, int]], position: dict[str, Any]) -> Checkpoint:
        combined = {stream: dict(parts) for stream, parts in self.offsets.items()}
        for stream, parts in offsets.items():
            combined.setdefault(stream, {}).update(parts)
        return Checkpoint(combined, position or self.position)

    def properties(self) -> dict[str, str]:
        return {
            OFFSETS_KEY: orjson.dumps(
                {stream: {str(p): o for p, o in parts.items()} for stream, parts in self.offsets.items()}
            ).decode(),
            POSITION_KEY: orjson.dumps(self.position).decode(),
        }


def read_checkpoint(table: Table | None) -> Checkpoint:
    """The checkpoint of the newest snapshot that carries one; empty for a new table."""
    if table is None:
        return Checkpoint()
    snapshot = table.current_snapshot()
    while snapshot is not None:
        raw = snapshot.summary.get(OFFSETS_KEY)
        if raw is not None:
            offsets = {
                s: {int(p): int(o) for p, o in parts.items()} for s, parts in orjson.loads(raw).items()
            }
            position = orjson.loads(snapshot.summary.get(POSITION_KEY) or "{}")
            return Checkpoint(offsets, position, snapshot.snapshot_id)
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    return Checkpoint()
