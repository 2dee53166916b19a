"""Read a PostgreSQL source for reconciliation: row counts, the snapshot they describe, row hashes.

Counts are taken here, with the schema and table quoted as identifiers, and handed to the Soda
scan as a variable, as for MongoDB: SodaCL table names cannot carry every name PostgreSQL
accepts (capitals, spaces, quotes, dots, non-ASCII). Everything one ``SourceReader`` reads
describes one snapshot, whose transactions and WAL position it reports, so that an exact
reconciliation can tell which changes the counts saw.
"""

from __future__ import annotations

from typing import Any

from psycopg2 import sql

from floe_cdc.core.config import PostgresSource, TableRef
from floe_cdc.core.postgres_client import connect, fetch
from floe_cdc.core.source_snapshot import SourceSnapshot
from floe_cdc.reconcile.mongo_counts import SourceCountError


class SourceReader:
    """One read-only repeatable-read transaction on a source: every read sees one snapshot.

    Close it soon: while it is open, the source keeps the row versions it can see.
    """

    def __init__(self, source: PostgresSource) -> None:
        self.source = source
        self._conn = connect(source, "reconcile", "count its rows", SourceCountError)
        self._conn.set_session(readonly=True, isolation_level="REPEATABLE READ")
        # The first query fixes the snapshot; the WAL position read with it comes after every
        # transaction the snapshot saw.
        row = self._query(
            sql.SQL("SELECT pg_current_snapshot()::text, pg_current_wal_lsn()::text"), (), "read"
        )[0]
        self.snapshot = SourceSnapshot.parse(row[0], row[1])

    def close(self) -> None:
        self._conn.close()  # also ends the transaction: no lock on the source tables is held

    def __enter__(self) -> SourceReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _query(self, query: sql.Composable, args: Any, what: str) -> list[tuple]:
        return fetch(self._conn, self.source, query, args, what, SourceCountError)

    def count(self, table: TableRef) -> int:
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(
            sql.Identifier(table.schema_name), sql.Identifier(table.table_name)
        )
        return self._query(query, (), f"count the rows of {table.qualified}")[0][0]

    def column_types(self, table: TableRef) -> dict[str, str]:
        """The table's columns and their types as ``format_type`` names them."""
        query = sql.SQL(
            "SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute"
            " WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum"
        )
        name = sql.SQL("{}.{}").format(sql.Identifier(table.schema_name), sql.Identifier(table.table_name))
        return dict(
            self._query(query, (name.as_string(self._conn),), f"read the columns of {table.qualified}")
        )

    def rows(self, query: sql.Composable, args: Any, table: TableRef) -> list[tuple]:
        return self._query(query, args, f"read the rows of {table.qualified}")


def count_rows(source: PostgresSource, tables: list[TableRef]) -> dict[str, int]:
    """Exact row counts of *tables* by ``schema.table``, all in one read-only transaction."""
    with SourceReader(source) as reader:
        return {source.source_table(table): reader.count(table) for table in tables}
