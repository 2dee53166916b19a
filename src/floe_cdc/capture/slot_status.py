"""How far a PostgreSQL source's Debezium connector has come: its replication slot.

The slot's ``confirmed_flush_lsn`` moves only once Kafka Connect has committed the connector's
offsets, which it does after every record before them has reached Kafka: past a position, every
change committed before it is in Kafka. On a source with nothing to stream it stays where the
last change was; ``mark_position`` writes a logical decoding message for the connector to stream
past. The WAL the slot retains is what the source keeps on disk for the connector; it grows
without bound while the connector is stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from floe_cdc.core.config import PostgresSource
from floe_cdc.core.postgres_client import connect, fetch
from floe_cdc.core.source_snapshot import parse_lsn


@dataclass(frozen=True)
class SlotStatus:
    slot: str
    active: bool
    confirmed_lsn: int | None  # None: Debezium has not confirmed anything yet
    retained_wal_bytes: int


def _query(source: PostgresSource, query: str, args: tuple, what: str) -> tuple | None:
    conn = connect(source, "monitor", what)
    try:
        conn.autocommit = True
        rows = fetch(conn, source, query, args, what)
        return rows[0] if rows else None
    finally:
        conn.close()


def mark_position(source: PostgresSource) -> None:
    """Write a logical decoding message in a transaction of its own: the slot passes it once the
    connector has streamed everything before it, and the connector's place in the stream moves
    past every commit before it.

    Transactional on purpose: a non-transactional message leaves the connector without a
    transaction id, and Debezium's read-only incremental snapshot (3.x) then fails the task with
    a NullPointerException at the next idle moment.
    """
    _query(
        source,
        "SELECT pg_logical_emit_message(true, 'floe.position', '')",
        (),
        "write a position marker (pg_logical_emit_message)",
    )


def slot_status(source: PostgresSource) -> SlotStatus | None:
    """The source's slot now; None when it does not exist (the connector has not started)."""
    row = _query(
        source,
        "SELECT active, confirmed_flush_lsn::text, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint"
        " FROM pg_replication_slots WHERE slot_name = %s",
        (source.slot,),
        f"read replication slot {source.slot}",
    )
    if row is None:
        return None
    active, confirmed, retained = row
    return SlotStatus(source.slot, active, parse_lsn(confirmed) if confirmed else None, int(retained or 0))
