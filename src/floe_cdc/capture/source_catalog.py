"""What a PostgreSQL source's catalog says about its tables' columns, asked while replicating.

- Column identities: Debezium's change events name columns, nothing more, so a renamed column
  looks like a dropped one plus a new one. PostgreSQL keeps a column's ``pg_attribute.attnum``
  across a rename and never reuses it, so asking the source which attnum a new name has tells a
  rename from a new column.
- The largest value: when a change event was too large for Kafka, the table and column behind it.
"""

from __future__ import annotations

from typing import NamedTuple

import psycopg2
from psycopg2 import sql
from psycopg2.extensions import cursor as Cursor

from floe_cdc.core.config import PostgresSource, TableRef
from floe_cdc.core.errors import SourceUnavailable
from floe_cdc.core.secrets import masked_line

_COLUMNS = """
SELECT a.attname, a.attnum, format_type(a.atttypid, NULL), a.attlen
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""
# octet_length of these reads the size a TOASTed value has when expanded, without fetching it.
_RAW_SIZED = ("text", "character varying", "character", "bytea")


class SourceColumn(NamedTuple):
    name: str
    attnum: int
    type_name: str
    length: int  # pg_attribute.attlen: -1 for variable-length types

    @property
    def variable_length(self) -> bool:
        return self.length == -1


def _columns(cur: Cursor, table: TableRef) -> list[SourceColumn]:
    cur.execute(_COLUMNS, (table.schema_name, table.table_name))
    return [SourceColumn(*row) for row in cur.fetchall()]


def column_ids(source: PostgresSource, table: TableRef) -> dict[str, int]:
    """Each current column name of *table* -> its attnum."""
    try:
        conn = psycopg2.connect(**source.connection_args("floe-columns"))
        try:
            with conn.cursor() as cur:
                return {column.name: column.attnum for column in _columns(cur, table)}
        finally:
            conn.close()
    except psycopg2.Error as exc:
        raise SourceUnavailable(
            f"table {table.target_name}: new column names arrived, and telling a renamed column from "
            f"a new one needs the source's catalog, but PostgreSQL source {source.name} at "
            f"{source.host}:{source.port} did not answer ({masked_line(exc)}); the table's events wait "
            "in Kafka and the next cycle asks again once the source is reachable"
        ) from None


def largest_value(source: PostgresSource) -> tuple[str, str, int] | None:
    """(table, column, bytes) of the largest variable-length value in the configured tables.

    Asked when a change event was too large for Kafka, to name the table behind it; it reads
    every configured table once, so it is only asked then.
    """
    largest: tuple[str, str, int] | None = None
    conn = psycopg2.connect(**source.connection_args("floe-check"))
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cur:
            for table in source.tables:
                columns = [column for column in _columns(cur, table) if column.variable_length]
                if not columns:
                    continue
                sizes = [
                    sql.SQL("max({}({}))").format(
                        sql.SQL("octet_length" if column.type_name in _RAW_SIZED else "pg_column_size"),
                        sql.Identifier(column.name),
                    )
                    for column in columns
                ]
                cur.execute(
                    sql.SQL("SELECT {} FROM {}.{}").format(
                        sql.SQL(", ").join(sizes),
                        sql.Identifier(table.schema_name),
                        sql.Identifier(table.table_name),
                    )
                )
                for column, size in zip(columns, cur.fetchone(), strict=True):
                    if size is not None and (largest is None or size > largest[2]):
                        largest = (source.source_table(table), column.name, size)
    finally:
        conn.close()
    return largest
