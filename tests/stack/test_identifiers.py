"""Names as PostgreSQL accepts them: capitals, spaces, non-ASCII and reserved words, end to end."""

from __future__ import annotations

import pytest

from floe_cdc.core.config import load_config
from floe_cdc.pipeline.reconciliation import reconcile
from floe_cdc.stack.stack import LocalStack
from tests.stack.pipeline import assert_tables_equal, catch_up, run_sql, start_capture, write_config

pytestmark = pytest.mark.stack

DATABASE = "floe_names"
ITEMS = '"Sales Ünit"."Order Items"'
# A dot in the schema, a quote, a comma and a trailing space in the table: written as in SQL.
SAY = '"sales.eu"."Say ""hi"", now "'
SCHEMA = [
    'DROP SCHEMA IF EXISTS "Sales Ünit" CASCADE',
    'DROP SCHEMA IF EXISTS "sales.eu" CASCADE',
    'DROP TABLE IF EXISTS public."User", public.user',
    'CREATE SCHEMA "Sales Ünit"',
    'CREATE SCHEMA "sales.eu"',
    f'CREATE TABLE {SAY} ("a.b" int PRIMARY KEY, "x,y" text)',
    f"INSERT INTO {SAY} SELECT g, 'xy ' || g FROM generate_series(1, 12) g",
    # Not configured: "User" must not capture it, although Debezium compares names case-blind.
    "CREATE TABLE public.user (id int PRIMARY KEY, name text)",
    "INSERT INTO public.user VALUES (1, 'lower')",
    f'CREATE TABLE {ITEMS} ("Item ID" int PRIMARY KEY, "select" text, "Größe" numeric(8,2), '
    '"Note Text" text)',
    f"INSERT INTO {ITEMS} SELECT g, 'sel ' || g, g * 1.5, 'note ' || g FROM generate_series(1, 30) g",
    'CREATE TABLE public."User" ("Id" int PRIMARY KEY, "Name" text, "order" int)',
    """INSERT INTO public."User" SELECT g, 'Ünïcødé ' || g, g FROM generate_series(1, 10) g""",
]


def test_hostile_identifiers_replicate_and_reconcile(stack: LocalStack, tmp_path):
    stack.postgres.ensure_database(DATABASE)
    run_sql(stack, DATABASE, SCHEMA)
    path = write_config(stack, tmp_path, "names", DATABASE, ["Sales Ünit.Order Items", "public.User", SAY])
    config = load_config(path)
    assert [t.target_name for _, t in config.tables()] == ["order_items", "user", "say__hi___now_"]
    start_capture(config)
    with stack.postgres.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("SELECT schemaname, tablename FROM pg_publication_tables WHERE pubname = 'floe_names'")
        published = sorted(cur.fetchall())
    assert published == [("Sales Ünit", "Order Items"), ("public", "User"), ("sales.eu", 'Say "hi", now ')]
    catch_up(path)
    assert_tables_equal(stack, config, DATABASE)

    run_sql(
        stack,
        DATABASE,
        [
            f"""UPDATE {ITEMS} SET "select" = 'changed', "Größe" = 99.25 WHERE "Item ID" <= 5""",
            f"""DELETE FROM {ITEMS} WHERE "Item ID" > 25""",
            f'ALTER TABLE {ITEMS} ADD COLUMN "Neue Spalte" int DEFAULT 7',
            f"""INSERT INTO {ITEMS} VALUES (100, 'new', 1.25, 'n', 8)""",
            """UPDATE public."User" SET "Name" = 'Zoë', "order" = 0 WHERE "Id" = 3""",
            """DELETE FROM public."User" WHERE "Id" = 4""",
            f"""UPDATE {SAY} SET "x,y" = 'changed' WHERE "a.b" = 3""",
            "UPDATE public.user SET name = 'not replicated'",
        ],
    )
    catch_up(path)
    assert_tables_equal(stack, config, DATABASE)
    results = {r.table: r for r in reconcile(config)}
    assert results["order_items"].passed and results["order_items"].source_count == 26
    assert results["user"].passed and results["user"].source_count == 9
