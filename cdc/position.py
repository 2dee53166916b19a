"""Source positions of Debezium PostgreSQL events, as one comparable number per event.

Debezium's ``source.sequence`` is ``[lastCommittedLsn, currentLsn]``: the commit LSN of the
transaction streamed before this one, and the LSN of this change. The pair grows along the
replication stream, also across transactions that interleave in the WAL, and a change that is
re-sent after a connector restart carries the same pair again. Snapshot reads carry
``[null, L]`` with L the snapshot's consistent point: as ``(L, 0)`` they sort before every change
streamed after that snapshot, and after everything streamed before it.
"""

from __future__ import annotations

from typing import Any

import orjson

from floe.changes import make_position

# Debezium's markers of a snapshot's last event, for the whole snapshot or for one table.
SNAPSHOT_LAST = ("last", "last_in_data_collection")


def postgres_position(source: dict[str, Any]) -> int:
    sequence = source.get("sequence")
    if sequence:
        committed, current = orjson.loads(sequence)
        if committed is not None:
            return make_position(int(committed), int(current or 0))
        return make_position(int(current or source.get("lsn") or 0))
    return make_position(int(source.get("lsn") or 0))


def is_snapshot(source: dict[str, Any]) -> bool:
    return source.get("snapshot") not in (None, "false", False)
