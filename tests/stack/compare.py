"""Row-by-row, value-by-value comparison of a PostgreSQL table with its Iceberg table."""

from __future__ import annotations

import json
import struct
import uuid
from decimal import Decimal
from typing import Any

import pyarrow as pa
from psycopg2 import sql
from psycopg2.extensions import connection as PgConnection
from pyiceberg.table import Table

from floe_cdc.core.config import split_table_name


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def _column_kinds(conn: PgConnection, schema: str, table: str) -> dict[str, str]:
    with conn.cursor() as cur:
        cur.execute(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = %s AND table_name = %s",
            (schema, table),
        )
        return dict(cur.fetchall())


def _normalise(kind: str, value: Any, from_iceberg: bool) -> Any:
    """Bring both sides to one Python representation per PostgreSQL type."""
    if value is None:
        return None
    if kind in ("json", "jsonb"):
        return json.loads(value) if from_iceberg or isinstance(value, str) else value
    if kind in ("real", "double precision") and value != value:
        return "NaN"  # NaN equals nothing, not even itself
    if kind == "real":
        return _float32(value)
    if kind == "numeric":  # unconstrained NUMERIC is kept exact as text
        number = Decimal(value) if isinstance(value, str) else value
        if not number.is_finite():  # NaN and the infinities: the text, exactly as PostgreSQL prints it
            return value if isinstance(value, str) else str(number)
        return number
    if kind == "money":  # PostgreSQL prints the currency of lc_monetary; Floe keeps the amount
        return Decimal(str(value).replace("$", "").replace(",", ""))
    if kind == "ARRAY":
        return ["NaN" if isinstance(v, float) and v != v else v for v in value]
    if kind == "uuid":
        return value if isinstance(value, uuid.UUID) else uuid.UUID(value)
    if kind == "bytea":
        return bytes(value)
    return value


def source_rows(conn: PgConnection, source_table: str, key: list[str]) -> list[dict[str, Any]]:
    schema, table = split_table_name(source_table)
    kinds = _column_kinds(conn, schema, table)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("SELECT * FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
        names = [d.name for d in cur.description]
        rows = [dict(zip(names, row, strict=True)) for row in cur.fetchall()]
    rows = [{k: _normalise(kinds[k], v, False) for k, v in row.items()} for row in rows]
    return sorted(rows, key=lambda r: tuple(r[k] for k in key))


def iceberg_rows(rows: list[dict[str, Any]], kinds: dict[str, str], key: list[str]) -> list[dict[str, Any]]:
    rows = [{k: _normalise(kinds.get(k, ""), v, True) for k, v in row.items() if k in kinds} for row in rows]
    return sorted(rows, key=lambda r: tuple(r[k] for k in key))


def assert_same_rows(
    conn: PgConnection, source_table: str, table: Table, read: pa.Table | None = None
) -> int:
    """Fail with the first differing row; return the number of rows compared. The Iceberg rows are
    pyiceberg's scan of *table*, or *read*: the same table as another reader (DuckDB) returned it."""
    schema_name, table_name = split_table_name(source_table)
    key = [table.schema().find_column_name(i) for i in table.schema().identifier_field_ids]
    expected = source_rows(conn, source_table, key)
    stored = (read if read is not None else table.scan().to_arrow()).to_pylist()
    actual = iceberg_rows(stored, _column_kinds(conn, schema_name, table_name), key)
    if len(actual) != len(expected):
        keys = {tuple(r[k] for k in key) for r in expected}
        stored_keys = {tuple(r[k] for k in key) for r in actual}
        raise AssertionError(
            f"{source_table}: {len(expected)} source rows, {len(actual)} in Iceberg; only in the source: "
            f"{sorted(keys - stored_keys)[:10]}, only in Iceberg: {sorted(stored_keys - keys)[:10]}"
        )
    for want, got in zip(expected, actual, strict=True):
        assert got == want, (
            f"{source_table} row {[want[k] for k in key]} differs:\nsource  {want}\niceberg {got}"
        )
    return len(expected)
