"""Check a PostgreSQL source before anything is created there or in Kafka Connect.

Debezium creates the replication slot and the publication when its task starts. A configured
table that does not exist then fails the task with a cut-off message, and a table without a
primary key is added to the publication, after which PostgreSQL rejects every UPDATE and DELETE
on it ("does not have a replica identity and publishes updates"). Both are refused here, with
the table and the fix, so that ``floe connectors apply`` leaves the source untouched.
"""

from __future__ import annotations

import psycopg2
from psycopg2 import sql

from floe.config import PostgresSource
from floe.errors import ConfigError
from floe.secrets import masked_line

_TABLE = """
SELECT c.relkind,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s
"""
_TABLE_KINDS = ("r", "p")  # ordinary and partitioned tables


def check_postgres_source(source: PostgresSource, index: int) -> None:
    """Raise ConfigError naming every configured table that cannot be replicated, and why.

    *index* is the source's place in ``sources``, so that the message names the setting.
    """
    where = f"sources[{index}]"
    try:
        conn = psycopg2.connect(**source.connection_args("floe-check"))
    except psycopg2.OperationalError as exc:
        reason = masked_line(exc)
        raise ConfigError(
            f"source {source.name}: cannot connect to PostgreSQL database {source.database} at "
            f"{source.host}:{source.port} as {source.user} ({reason}); check {where}.host, port, "
            "database, user and password"
        ) from None
    problems: list[str] = []
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW wal_level")
            (wal_level,) = cur.fetchone()
            if wal_level != "logical":
                problems.append(
                    f"the server runs with wal_level={wal_level}; set wal_level=logical in "
                    "postgresql.conf and restart PostgreSQL"
                )
            for number, table in enumerate(source.tables):
                cur.execute(_TABLE, (table.schema_name, table.table_name))
                found = cur.fetchone()
                setting = f"{where}.tables[{number}]"
                if found is None or found[0] not in _TABLE_KINDS:
                    problems.append(
                        f"table {table.name} ({setting}) does not exist in database {source.database}; "
                        f"create it, or correct or remove {setting}"
                    )
                elif not found[1]:
                    problems.append(
                        f"table {table.name} ({setting}) has no primary key, so its updates and deletes "
                        "cannot be matched to rows (and publishing it would make PostgreSQL refuse "
                        f"them); add a primary key to it, or remove {setting}"
                    )
    finally:
        conn.close()
    if problems:
        raise ConfigError(f"source {source.name}: " + "; ".join(problems) + ". Nothing was created")


_VARLENA_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, NULL)
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped AND a.attlen = -1
"""
# octet_length of these reads the size a TOASTed value has when expanded, without fetching it.
_RAW_SIZED = ("text", "character varying", "character", "bytea")


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
                cur.execute(_VARLENA_COLUMNS, (table.schema_name, table.table_name))
                columns = cur.fetchall()
                if not columns:
                    continue
                sizes = [
                    sql.SQL("max({}({}))").format(
                        sql.SQL("octet_length" if kind in _RAW_SIZED else "pg_column_size"),
                        sql.Identifier(name),
                    )
                    for name, kind in columns
                ]
                cur.execute(
                    sql.SQL("SELECT {} FROM {}.{}").format(
                        sql.SQL(", ").join(sizes),
                        sql.Identifier(table.schema_name),
                        sql.Identifier(table.table_name),
                    )
                )
                for (name, _), size in zip(columns, cur.fetchone(), strict=True):
                    if size is not None and (largest is None or size > largest[2]):
                        largest = (source.source_table(table), name, size)
    finally:
        conn.close()
    return largest
