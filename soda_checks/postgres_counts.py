"""Count a PostgreSQL table's rows, for reconciliation.

The count is taken here, with the schema and table quoted as identifiers, and handed to the Soda
scan as a variable, as for MongoDB: SodaCL table names cannot carry every name PostgreSQL
accepts (capitals, spaces, quotes, dots, non-ASCII), and a count taken in one transaction with
the source's WAL position can later be compared at that position.
"""

from __future__ import annotations

import psycopg2
from psycopg2 import sql

from floe.config import PostgresSource, TableRef
from floe.secrets import masked_line
from soda_checks.mongo_counts import SourceCountError


def count_rows(source: PostgresSource, tables: list[TableRef]) -> dict[str, int]:
    """Exact row counts of *tables* by ``schema.table``, all in one read-only transaction."""
    try:
        conn = psycopg2.connect(**source.connection_args("floe-reconcile"))
    except psycopg2.OperationalError as exc:
        raise SourceCountError(
            f"cannot reach PostgreSQL source {source.name} to count its rows "
            f"({masked_line(exc)}); check that it is up and reachable from here"
        ) from None
    counts: dict[str, int] = {}
    try:
        conn.set_session(readonly=True)
        with conn.cursor() as cur:
            for table in tables:
                name = source.source_table(table)
                query = sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(table.schema_name), sql.Identifier(table.table_name)
                )
                try:
                    cur.execute(query)
                except psycopg2.Error as exc:
                    raise SourceCountError(
                        f"cannot count the rows of {name} in PostgreSQL source {source.name}: "
                        f"{masked_line(exc)}"
                    ) from None
                counts[name] = cur.fetchone()[0]
    finally:
        conn.close()  # also ends the transaction: no lock on the source tables is held
    return counts
