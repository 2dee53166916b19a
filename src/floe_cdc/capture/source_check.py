"""Check a PostgreSQL source before anything is created there or in Kafka Connect.

``floe connectors apply`` then makes the publication and Debezium the replication slot. A
configured table that does not exist would fail them with a cut-off message, and a table without
a primary key would be added to the publication, after which PostgreSQL rejects every UPDATE and
DELETE on it ("does not have a replica identity and publishes updates"). Both are refused here,
with the table and the fix, so that ``floe connectors apply`` leaves the source untouched; so is
a column to leave out or hash that the table lacks, that is part of its key, or (hashed) is not
text.
"""

from __future__ import annotations

from floe_cdc.capture.masking import masking_problems
from floe_cdc.capture.source_columns import declared_columns
from floe_cdc.core.config import PostgresSource
from floe_cdc.core.errors import ConfigError
from floe_cdc.core.postgres_client import connect

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
    conn = connect(source, "check", "check its tables", error=ConfigError)
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
                elif table.exclude or table.hash:
                    columns = declared_columns(cur, table.schema_name, table.table_name)
                    problems += masking_problems(table, setting, columns)
    finally:
        conn.close()
    if problems:
        raise ConfigError(f"source {source.name}: " + "; ".join(problems) + ". Nothing was created")
