"""The change events between a source count and the Iceberg table it is compared with.

A source count is taken in one snapshot; the Iceberg table it is compared with has applied the
table's change events up to its checkpoint. Reading the table's topic from where the Iceberg
table stood when the count began tells both sides apart by transaction id:
- applied events of transactions the count did not see: their net row change (+1 an insert,
  -1 a delete) is what the Iceberg table holds beyond the count, the *correction*;
- events the count saw that the Iceberg table has not applied yet: it must catch up first.
With both known, a difference left is lost or duplicated data, never timing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import orjson

from floe_cdc.capture.consumer import ChangeConsumer
from floe_cdc.capture.envelope import KafkaRecord, split_envelope
from floe_cdc.capture.position import postgres_position
from floe_cdc.core.changes import CREATE, DELETE, READ, TRUNCATE
from floe_cdc.core.source_snapshot import SourceSnapshot

_NET_ROWS = {CREATE: 1, DELETE: -1}
# Operations whose net row change a change event does not tell.
_UNKNOWN = {READ: "a snapshot of the table was read meanwhile", TRUNCATE: "the table was truncated meanwhile"}


@dataclass
class ChangeWindow:
    """What the events around a count say (see the module docstring)."""

    correction: int = 0
    pending: int = 0  # events the count saw that the Iceberg table has not applied yet
    unknown: str | None = None  # why the correction cannot be known, if it cannot
    touched: set[bytes] = field(default_factory=set)  # keys (as Kafka keys) the unseen events changed


def _event(record: KafkaRecord) -> tuple[str, dict, int] | None:
    """(operation, source block, position) of a change event; None for a tombstone."""
    if record.value is None:
        return None
    payload = orjson.loads(split_envelope(record.value)[1])
    source = payload.get("source") or {}
    return payload.get("op") or "", source, postgres_position(source)


def read_window(
    consumer: ChangeConsumer,
    topic: str,
    start: dict[int, int],
    applied: dict[int, int],
    snapshot: SourceSnapshot,
    idle_seconds: float = 2.0,
) -> ChangeWindow:
    """Read *topic* from *start* (the Iceberg table's offsets when the count began) and sort its
    events against *applied* (the offsets it has applied now) and the count's *snapshot*.

    A partition is read past its applied events until one whose previous transaction committed
    at or after the snapshot's closing position: from there on nothing the count saw can follow.
    """
    window = ChangeWindow()
    seen_events: set[tuple[bytes | None, int]] = set()
    closed: set[int] = set()
    for record in consumer.scan(topic, start, idle_seconds, closed):
        event = _event(record)
        if event is None:
            continue
        op, source, position = event
        is_applied = record.offset < applied.get(record.partition, 0)
        if position >> 64 >= snapshot.lsn and record.offset + 1 >= applied.get(record.partition, 0):
            closed.add(record.partition)  # applied ones read; the rest committed after the count
        if (record.key, position) in seen_events:
            continue  # the same change sent twice (a connector restart): applied once
        seen_events.add((record.key, position))
        txid = source.get("txId")
        saw = txid is not None and snapshot.saw(int(txid))
        if saw and not is_applied:
            window.pending += 1
        elif not saw and is_applied:
            window.correction += _NET_ROWS.get(op, 0)
            window.unknown = window.unknown or _UNKNOWN.get(op)
            if record.key is not None:
                window.touched.add(record.key)
    return window
