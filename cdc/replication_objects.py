"""The replication slot and publication of a PostgreSQL source's connector.

Debezium creates both when its task starts. When ``floe connectors apply`` removes a connector it
has just created and that failed, it also drops the ones that did not exist before, so that a
failed apply leaves the source as it found it: a slot left behind pins WAL until it is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2
from psycopg2 import sql
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from floe.config import PostgresSource


@dataclass(frozen=True)
class ReplicationObjects:
    slot: bool
    publication: bool


def _connect(source: PostgresSource) -> psycopg2.extensions.connection:
    conn = psycopg2.connect(**source.connection_args("floe-apply"))
    conn.autocommit = True
    return conn


def existing(source: PostgresSource) -> ReplicationObjects:
    """Which of the source's slot and publication exist now."""
    conn = _connect(source)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (source.slot,))
            slot = cur.fetchone()[0] > 0
            cur.execute("SELECT count(*) FROM pg_publication WHERE pubname = %s", (source.publication_name,))
            publication = cur.fetchone()[0] > 0
        return ReplicationObjects(slot, publication)
    finally:
        conn.close()


# The slot stays active for a moment after Connect stops the task.
@retry(
    retry=retry_if_exception_type(psycopg2.errors.ObjectInUse),
    stop=stop_after_delay(20),
    wait=wait_fixed(0.5),
    reraise=True,
)
def _drop_slot(cur: psycopg2.extensions.cursor, slot: str) -> None:
    cur.execute(
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    )


def remove_new(source: PostgresSource, before: ReplicationObjects) -> list[str]:
    """Drop the slot and publication that did not exist *before*; return what was dropped."""
    dropped = []
    conn = _connect(source)
    try:
        with conn.cursor() as cur:
            if not before.slot:
                _drop_slot(cur, source.slot)
                dropped.append(f"replication slot {source.slot}")
            if not before.publication:
                cur.execute(
                    sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(source.publication_name))
                )
                dropped.append(f"publication {source.publication_name}")
    finally:
        conn.close()
    return dropped
