"""The replication slot and publication of a PostgreSQL source's connector.

``floe connectors apply`` makes the publication of exactly the configured tables before it puts
the connector (Debezium's ``publication.autocreate.mode`` is ``disabled``: one owner), and
Debezium creates the slot when its task starts. When apply removes a connector it has just
created and that failed, it also drops the ones that did not exist before, so that a failed
apply leaves the source as it found it: a slot left behind pins WAL until it is dropped.
Terraform's ``floe_publication`` and ``floe_replication_slot`` create, read and drop them ahead
of the connector through the same functions.
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg2
from psycopg2 import sql
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from floe_cdc.core.config import PostgresSource
from floe_cdc.core.errors import ConfigError
from floe_cdc.core.secrets import masked_line


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
            return ReplicationObjects(
                slot_details(cur, source.slot) is not None,
                publication_tables(cur, source.publication_name) is not None,
            )
    finally:
        conn.close()


def ensure_publication(source: PostgresSource) -> None:
    """Create the source's publication, or set its tables to the configured ones."""
    tables = [(table.schema_name, table.table_name) for table in source.tables]
    conn = _connect(source)
    try:
        with conn.cursor() as cur:
            current = publication_tables(cur, source.publication_name)
            if current is None:
                create_publication(cur, source.publication_name, tables)
            elif current != sorted(tables):
                set_publication_tables(cur, source.publication_name, tables)
    except psycopg2.errors.InsufficientPrivilege as exc:
        raise ConfigError(
            f"source {source.name}: user {source.user} cannot create or alter publication "
            f"{source.publication_name} ({masked_line(exc)}); grant it ownership of the tables, or "
            "create the publication of exactly the configured tables as their owner"
        ) from None
    finally:
        conn.close()


def publication_tables(cur: psycopg2.extensions.cursor, name: str) -> list[tuple[str, str]] | None:
    """The (schema, table) pairs publication *name* publishes, or None when it does not exist."""
    cur.execute("SELECT count(*) FROM pg_publication WHERE pubname = %s", (name,))
    if cur.fetchone()[0] == 0:
        return None
    cur.execute(
        "SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = %s "
        "ORDER BY schemaname, tablename",
        (name,),
    )
    return [(schema, table) for schema, table in cur.fetchall()]


def _table_list(tables: list[tuple[str, str]]) -> sql.Composable:
    return sql.SQL(", ").join(sql.Identifier(schema, table) for schema, table in tables)


def create_publication(cur: psycopg2.extensions.cursor, name: str, tables: list[tuple[str, str]]) -> None:
    cur.execute(
        sql.SQL("CREATE PUBLICATION {} FOR TABLE {}").format(sql.Identifier(name), _table_list(tables))
    )


def set_publication_tables(cur: psycopg2.extensions.cursor, name: str, tables: list[tuple[str, str]]) -> None:
    cur.execute(
        sql.SQL("ALTER PUBLICATION {} SET TABLE {}").format(sql.Identifier(name), _table_list(tables))
    )


def drop_publication(cur: psycopg2.extensions.cursor, name: str) -> None:
    cur.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(name)))


def slot_details(cur: psycopg2.extensions.cursor, slot: str) -> tuple[str, str] | None:
    """(database, output plugin) of logical replication slot *slot*, or None when it does not exist."""
    cur.execute("SELECT database, plugin FROM pg_replication_slots WHERE slot_name = %s", (slot,))
    row = cur.fetchone()
    return (row[0], row[1]) if row else None


def create_slot(cur: psycopg2.extensions.cursor, slot: str, plugin: str) -> None:
    """A logical slot in the database *cur* is connected to."""
    cur.execute("SELECT pg_create_logical_replication_slot(%s, %s)", (slot, plugin))


# The slot stays active for a moment after Connect stops the task.
@retry(
    retry=retry_if_exception_type(psycopg2.errors.ObjectInUse),
    stop=stop_after_delay(20),
    wait=wait_fixed(0.5),
    reraise=True,
)
def drop_slot(cur: psycopg2.extensions.cursor, slot: str) -> None:
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
                drop_slot(cur, source.slot)
                dropped.append(f"replication slot {source.slot}")
            if not before.publication:
                drop_publication(cur, source.publication_name)
                dropped.append(f"publication {source.publication_name}")
    finally:
        conn.close()
    return dropped
