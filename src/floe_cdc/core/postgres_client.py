"""psycopg2 connections and queries on PostgreSQL sources, with errors that name the source.

A driver error becomes one line naming the source and what Floe was doing, its message masked
(a DSN in it never reaches a log), raised as the caller's error type.
"""

from __future__ import annotations

from typing import Any

import psycopg2

from floe_cdc.core.config import PostgresSource
from floe_cdc.core.errors import FloeError, SourceUnavailable
from floe_cdc.core.secrets import masked_line


def connect(
    source: PostgresSource, purpose: str, what: str, error: type[FloeError] = SourceUnavailable
) -> psycopg2.extensions.connection:
    """A connection to *source* for *purpose* (its application name), to do *what*."""
    try:
        return psycopg2.connect(**source.connection_args(f"floe-{purpose}"))
    except psycopg2.OperationalError as exc:
        raise error(
            f"cannot reach PostgreSQL source {source.name} (database {source.database} at {source.host}:"
            f"{source.port} as {source.user}) to {what} ({masked_line(exc)}); check the source's host, port, "
            "database, user and password in the pipeline configuration, and that PostgreSQL is up"
        ) from None


def fetch(
    conn: psycopg2.extensions.connection,
    source: PostgresSource,
    query: Any,
    args: Any,
    what: str,
    error: type[FloeError] = SourceUnavailable,
) -> list[tuple]:
    """The rows of *query*, run to do *what*."""
    try:
        with conn.cursor() as cur:
            cur.execute(query, args)
            return cur.fetchall()
    except psycopg2.Error as exc:
        raise error(f"cannot {what} in PostgreSQL source {source.name}: {masked_line(exc)}") from None
