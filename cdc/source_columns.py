"""Column identities of a PostgreSQL source table, read from its catalog.

Debezium's change events name columns, nothing more, so a renamed column looks like a dropped
one plus a new one. PostgreSQL keeps a column's ``pg_attribute.attnum`` across a rename and never
reuses it, so asking the source which attnum a new name has tells a rename from a new column.
"""

from __future__ import annotations

import psycopg2

from floe.config import PostgresSource, TableRef
from floe.errors import SourceUnavailable
from floe.secrets import masked_line

_COLUMNS = """
SELECT a.attname, a.attnum
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped
"""


def column_ids(source: PostgresSource, table: TableRef) -> dict[str, int]:
    """Each current column name of *table* -> its attnum."""
    try:
        conn = psycopg2.connect(**source.connection_args("floe-columns"))
        try:
            with conn.cursor() as cur:
                cur.execute(_COLUMNS, (table.schema_name, table.table_name))
                return dict(cur.fetchall())
        finally:
            conn.close()
    except psycopg2.Error as exc:
        raise SourceUnavailable(
            f"table {table.target_name}: new column names arrived, and telling a renamed column from "
            f"a new one needs the source's catalog, but PostgreSQL source {source.name} at "
            f"{source.host}:{source.port} did not answer ({masked_line(exc)}); the table's events wait "
            "in Kafka and the next cycle asks again once the source is reachable"
        ) from None
