"""Which rows differ between a source table and its Iceberg table, by bucketed row hashes.

Both sides turn each row into the same text (per column type, a form both PostgreSQL and DuckDB
produce identically), hash it with MD5, and group the hashes into 4,096 buckets by the key's
hash. Only buckets whose digests differ are read again, row by row, to name the keys. A table of
any size costs one scan on each side plus the differing buckets.

Columns whose text both sides cannot produce alike (floating point, intervals, arrays, enums,
times with a zone) are left out of the row hash and named in the result; keys are always compared.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from psycopg2 import sql

from floe_cdc.core.config import TableRef
from floe_cdc.reconcile.postgres_counts import SourceReader

BUCKET_DIGITS = 3  # hex digits of the key hash: 4,096 buckets
_NULL = "\\N"
_SEPARATOR = 31  # ASCII unit separator, between the column texts of a row

# The PostgreSQL types compared, by how their value becomes text (format_type() names).
_TEXT = re.compile(
    r"^(smallint|integer|bigint|boolean|text|character varying(\(\d+\))?|jsonb|json|date"
    r"|numeric(\(\d+,\d+\))?|time(\(\d\))? without time zone)$"
)
_EPOCH = re.compile(r"^timestamp(\(\d\))? with(out)? time zone$")


def comparable_kind(pg_type: str) -> str | None:
    """How a column of *pg_type* is turned into text on both sides; None: not compared."""
    if _TEXT.match(pg_type):
        return "text"
    if _EPOCH.match(pg_type):
        return "epoch"
    return {"uuid": "uuid", "bytea": "hex"}.get(pg_type)


@dataclass(frozen=True)
class Layout:
    """The columns a comparison hashes: the key first, then the compared others, each with its
    kind; *salt*: the source's salt, when some columns are hashed at capture (kind ``hashed``,
    or ``hashed:<n>`` for a column of declared length n)."""

    key: list[tuple[str, str]]
    columns: list[tuple[str, str]]
    left_out: list[str]
    salt: str | None = None


_HASHED_LENGTH = re.compile(r"^character(?: varying)?\((\d+)\)$")


def _pg_hashed(column: sql.Composable, kind: str, salt: str) -> sql.Composable:
    """The source's value as capture hashes it (``capture.masking``): hex SHA-256 of the salt and
    the value's text (a char(n)'s padding kept), cut to the declared length; null stays null."""
    # concat() takes the value's output text, a char(n)'s padding kept (a cast to text drops it).
    digest = sql.SQL("encode(sha256(convert_to({} || concat({}), 'UTF8')), 'hex')").format(
        sql.Literal(salt), column
    )
    if ":" in kind:
        digest = sql.SQL("left({}, {})").format(digest, sql.Literal(int(kind.split(":")[1])))
    return sql.SQL("CASE WHEN {} IS NOT NULL THEN {} END").format(column, digest)


def _pg_text(name: str, kind: str, salt: str | None = None) -> sql.Composable:
    column = sql.Identifier(name)
    if kind.startswith("hashed") and salt is not None:
        text = _pg_hashed(column, kind, salt)
    else:
        text = {
            "text": sql.SQL("{}::text"),
            "epoch": sql.SQL("(extract(epoch from {}) * 1000000)::bigint::text"),
            "uuid": sql.SQL("replace({}::text, '-', '')"),
            "hex": sql.SQL("encode({}, 'hex')"),
        }[kind].format(column)
    return sql.SQL("coalesce({}, {})").format(text, sql.Literal(_NULL))


def _duck_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _duck_text(name: str, kind: str) -> str:
    column = _duck_identifier(name)
    if kind.startswith("hashed"):  # stored as the hash's text
        kind = "text"
    text = {
        "text": f"CAST({column} AS VARCHAR)",
        "epoch": f"CAST(epoch_us({column}) AS VARCHAR)",
        "uuid": f"lower(hex({column}))",
        "hex": f"lower(hex({column}))",
    }[kind]
    return f"coalesce({text}, '{_NULL}')"


def _pg_join(parts: list[sql.Composable]) -> sql.Composable:
    return sql.SQL(f" || chr({_SEPARATOR}) || ").join(parts)


def _duck_join(parts: list[str]) -> str:
    return f" || chr({_SEPARATOR}) || ".join(parts)


def pg_hashes(layout: Layout, schema: str, table: str) -> sql.Composable:
    """A subquery of (bucket, key text, row hash) per row of the source table."""
    key = _pg_join([_pg_text(n, k) for n, k in layout.key])
    row = _pg_join([key, *(_pg_text(n, k, layout.salt) for n, k in layout.columns)])
    return sql.SQL(
        "SELECT substr(md5(k), 1, {digits}) AS bucket, k AS key, md5(r) AS hash"
        " FROM (SELECT {key} AS k, {row} AS r FROM {schema}.{table}) rows"
    ).format(
        digits=sql.Literal(BUCKET_DIGITS),
        key=key,
        row=row,
        schema=sql.Identifier(schema),
        table=sql.Identifier(table),
    )


def duck_hashes(layout: Layout, relation: str) -> str:
    """The same subquery over the Iceberg table's rows registered in DuckDB as *relation*."""
    key = _duck_join([_duck_text(n, k) for n, k in layout.key])
    row = _duck_join([key, *(_duck_text(n, k) for n, k in layout.columns)])
    return (
        f"SELECT substr(md5(k), 1, {BUCKET_DIGITS}) AS bucket, k AS key, md5(r) AS hash"
        f" FROM (SELECT {key} AS k, {row} AS r FROM {relation}) rows"
    )


_DIGESTS = "SELECT bucket, md5(string_agg(hash, '' ORDER BY hash)) FROM ({}) h GROUP BY bucket"
_PG_ROWS = "SELECT key, hash FROM ({}) h WHERE bucket = ANY(%s)"
_DUCK_ROWS = "SELECT key, hash FROM ({}) h WHERE list_contains(?, bucket)"
_RELATION = "floe_iceberg_rows"


def layout(
    source_types: dict[str, str],
    iceberg_columns: list[str],
    key: list[str],
    hashed: Sequence[str] = (),
    salt: str | None = None,
) -> Layout:
    """What to compare: the key, and the other columns both sides have and can render alike;
    the *hashed* columns (hashed at capture with *salt*) as the source's values hashed alike."""
    compared, left_out = [], []
    for name in iceberg_columns:
        kind = comparable_kind(source_types.get(name, ""))
        if name in key:
            continue
        if name in hashed and salt is not None and name in source_types:
            length = _HASHED_LENGTH.match(source_types[name])
            compared.append((name, f"hashed:{length.group(1)}" if length else "hashed"))
            continue
        if kind is None or name not in source_types:
            left_out.append(name)
        else:
            compared.append((name, kind))
    key_kinds = [(name, comparable_kind(source_types.get(name, "")) or "text") for name in key]
    return Layout(key_kinds, compared, left_out, salt if hashed else None)


def compare_rows(
    reader: SourceReader,
    table: TableRef,
    plan: Layout,
    iceberg_rows: Callable[[list[str]], pa.RecordBatchReader],
    excused: set[str],
    limit: int,
) -> list[KeyDifference]:
    """The first *limit* keys whose rows differ between the source (as *reader* sees it) and the
    Iceberg table (*iceberg_rows* reads the given columns of the snapshot compared, afresh each call)."""
    names = [name for name, _ in plan.key + plan.columns]
    source_query = pg_hashes(plan, table.schema_name, table.table_name)
    source_digests = dict(reader.rows(sql.SQL(_DIGESTS).format(source_query), (), table))
    with duckdb.connect() as connection:
        connection.register(_RELATION, iceberg_rows(names))
        iceberg_query = duck_hashes(plan, _RELATION)
        iceberg_digests = dict(connection.execute(_DIGESTS.format(iceberg_query)).fetchall())
        buckets = sorted(
            b
            for b in source_digests.keys() | iceberg_digests.keys()
            if source_digests.get(b) != iceberg_digests.get(b)
        )
        if not buckets:
            return []
        connection.register(_RELATION, iceberg_rows(names))
        iceberg = dict(connection.execute(_DUCK_ROWS.format(iceberg_query), [buckets]).fetchall())
    source = dict(reader.rows(sql.SQL(_PG_ROWS).format(source_query), (buckets,), table))
    return differences(source, iceberg, excused, limit)


@dataclass(frozen=True)
class KeyDifference:
    key: str  # the key's column values, separated by ", "
    why: str  # "missing in Iceberg", "not in the source", "values differ"

    def __str__(self) -> str:
        return f"{self.key} ({self.why})"


def differences(
    source: dict[str, str], iceberg: dict[str, str], excused: set[str], limit: int
) -> list[KeyDifference]:
    """The first *limit* keys whose rows differ (key text -> row hash on each side); *excused*
    keys were changed after the source was read, so their difference is timing."""
    found = []
    for key in sorted(source.keys() | iceberg.keys()):
        if key in excused or source.get(key) == iceberg.get(key):
            continue
        why = (
            "missing in Iceberg"
            if key not in iceberg
            else "not in the source"
            if key not in source
            else "values differ"
        )
        found.append(KeyDifference(key.replace(chr(_SEPARATOR), ", "), why))
        if len(found) == limit:
            break
    return found


def key_text(values: list[object]) -> str:
    """A key's text as both sides build it, from its values as a change event carries them."""
    parts = [
        _NULL if v is None else ("true" if v is True else "false" if v is False else str(v)) for v in values
    ]
    return chr(_SEPARATOR).join(parts)
