"""The mark a requested re-snapshot leaves on its Iceberg table until the snapshot is applied.

While the mark is there, a column whose type changed in a way Iceberg cannot follow is replaced
(its values are read again by the snapshot) instead of stopping the table. For an incremental
snapshot the mark also holds what completing it needs: the id of the signal (the connector's
notifications about the snapshot carry it), where the notification topic stood at the request,
and the floor: just above the table's highest applied source position at the request. Every row
the source still has at completion was read again or changed after the request, so it is
positioned at or above the floor; a row below it is gone from the source.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from pyiceberg.table import Table

RESNAPSHOT_PROPERTY = "pipeline.resnapshot-requested"


@dataclass(frozen=True)
class ResnapshotMark:
    requested_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    signal: str | None = None  # an incremental snapshot's signal id; None: a blocking snapshot
    floor: int = 0
    notifications: dict[int, int] = field(default_factory=dict)  # partition -> offset at the request

    @property
    def incremental(self) -> bool:
        return self.signal is not None

    def text(self) -> str:
        # Positions exceed 64 bits: the floor is kept as a string.
        return orjson.dumps(
            {
                "requested_at": self.requested_at,
                "signal": self.signal,
                "floor": str(self.floor),
                "notifications": {str(p): o for p, o in self.notifications.items()},
            }
        ).decode()


def read_mark(properties: dict[str, str]) -> ResnapshotMark | None:
    """The table's mark, if a re-snapshot is pending. A mark that is not a JSON object (a bare
    time, as earlier releases wrote) stands for a blocking snapshot."""
    raw = properties.get(RESNAPSHOT_PROPERTY)
    if raw is None:
        return None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        return ResnapshotMark(requested_at=raw)
    return ResnapshotMark(
        data["requested_at"],
        data.get("signal"),
        int(data.get("floor") or 0),
        {int(p): int(o) for p, o in (data.get("notifications") or {}).items()},
    )


def mark_resnapshot(table: Table, mark: ResnapshotMark) -> None:
    with table.transaction() as tx:
        tx.set_properties({RESNAPSHOT_PROPERTY: mark.text()})


def unmark_resnapshot(table: Table) -> None:
    """Take the mark away again (a request that could not be sent)."""
    with table.transaction() as tx:
        tx.remove_properties(RESNAPSHOT_PROPERTY)
