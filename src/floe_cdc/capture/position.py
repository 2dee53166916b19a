"""Source positions of Debezium events, as one comparable number per event.

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

from floe_cdc.core.changes import make_position

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


def mongo_position(source: dict[str, Any]) -> int:
    """A MongoDB event's place in the change stream, from Debezium's ``ts_ms`` and ``ord``.

    ``ord`` is the cluster time's increment. ``ts_ms`` is the operation's wall time (MongoDB 6.0
    and later) or the cluster time's seconds in milliseconds (earlier servers); either way
    (``ts_ms``, ``ord``) grows along the stream, and a change re-sent after a connector restart
    carries the same pair again. Snapshot reads carry the connector's clock at the read and
    ``ord`` -1: a change the read already saw sorts before it, a later one after it. Events of
    one transaction share the pair and keep their arrival order.
    """
    return make_position(int(source["ts_ms"]), max(int(source.get("ord") or 0), 0))
