"""Helpers for real-stack tests: a pipeline config per test database, SQL, and comparison."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import yaml

from floe_cdc.capture.connect_client import ConnectClient
from floe_cdc.capture.deploy import apply_connectors
from floe_cdc.capture.replication_objects import drop_slot
from floe_cdc.core.config import PipelineConfig, PostgresSource, load_config
from floe_cdc.lake.catalog import open_catalog
from floe_cdc.lake.merge import MergeResult
from floe_cdc.pipeline.reconciliation import reconcile
from floe_cdc.pipeline.replication import Replicator
from floe_cdc.pipeline.replication_stream import ReplicationStream
from floe_cdc.stack.stack import LocalStack
from tests.stack.compare import assert_same_rows


def write_config(
    stack: LocalStack,
    directory: Path,
    source: str,
    database: str,
    tables: list[Any],
    catalog: dict[str, str] | None = None,
    **replicate: Any,
) -> Path:
    """A pipeline config for *database* on the test stack; the namespace is the source name, the
    catalog the stack's REST catalog unless *catalog* gives other pyiceberg properties."""
    settings = stack.settings
    document = {
        "sources": [
            {
                "name": source,
                "port": settings.pg_port,
                "database": database,
                "user": settings.pg_user,
                "password": settings.pg_password.get_secret_value(),
                "tables": tables,
            }
        ],
        "kafka": {"bootstrap_servers": settings.kafka_bootstrap},
        "connect": {"url": settings.connect_url},
        "iceberg": {
            "catalog": catalog or stack.settings.catalog_properties(),
            "namespace": source,
            **({} if catalog else {"reports_location": f"s3://{settings.reports_bucket}"}),
        },
        "replicate": {"idle_seconds": 2, "max_seconds": 60, **replicate},
    }
    path = directory / "floe.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


ITEMS = [
    "DROP TABLE IF EXISTS items",
    "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2), payload bytea, "
    "changed_at timestamptz DEFAULT now())",
    "INSERT INTO items (id, name, price, payload) "
    "SELECT g, 'item ' || g, g * 1.25, decode(md5(g::text), 'hex') FROM generate_series(1, 400) g",
]


CATCH_UP_SECONDS = 180
TOTALS = ("events", "inserted", "updated", "deleted")


def start_capture(config: PipelineConfig | Path) -> dict[str, str]:
    """``floe connectors apply`` without its settle time: a connector that fails on its first
    records fails the catch-up after it instead. The tests of apply's own report call it whole."""
    return apply_connectors(
        config if isinstance(config, PipelineConfig) else load_config(config), settle_seconds=0
    )


def catch_up(
    config_path: Path, tables: list[str] | None = None, timeout: float = CATCH_UP_SECONDS
) -> dict[str, dict[str, int]]:
    """Replicate until a cycle ends because nothing new came for the config's ``idle_seconds``
    and every table then holds as many rows as its source; each table's events, inserts, updates
    and deletes over all cycles.

    The pipeline driven directly (one stream, its steps), as the replicate flow drives it, without
    the flow's reconciliation, health, alerts, artifacts and locks: the tests of those run the flow.
    """
    config = load_config(config_path)
    deadline = time.monotonic() + timeout
    totals = {table.target_name: dict.fromkeys(TOTALS, 0) for _, table in config.tables(tables)}
    with Replicator(config, tables) as replicator, ReplicationStream(replicator) as stream:
        while True:
            merged, ended_because = replicate_until_idle(stream)
            for name, result in merged.items():
                for total in TOTALS:
                    totals[name][total] += getattr(result, total)
            if ended_because.startswith("idle") and all(check.passed for check in reconcile(config, tables)):
                return totals
            assert time.monotonic() < deadline, f"tables did not catch up within {timeout:.0f}s: {totals}"


def replicate_until_idle(stream: ReplicationStream) -> tuple[dict[str, MergeResult], str]:
    """A one-shot run of the pipeline: each table committed as its changes come until nothing
    new comes; the merges and why the step ended. A table that failed raises its error."""
    step = stream.step(stream.settings.max_seconds, until_idle=True)
    for failure in step.failures.values():
        raise failure
    return step.merges, step.ended_because


def replicated_database(
    stack: LocalStack,
    directory: Path,
    name: str,
    catalog: dict[str, str] | None = None,
    statements: list[str] = ITEMS,
    tables: tuple[str, ...] = ("public.items",),
    **replicate: Any,
) -> Path:
    """A database made by *statements* (one table by default), its connector applied and its
    snapshot replicated; *replicate* holds settings of the config's ``replicate:`` section."""
    stack.postgres.ensure_database(name)
    run_sql(stack, name, statements)
    path = write_config(
        stack, directory, name.removeprefix("floe_"), name, list(tables), catalog, **replicate
    )
    start_capture(path)
    catch_up(path)
    return path


def remove_replication(stack: LocalStack, config_path: Path) -> None:
    """Delete the config's connectors and drop their replication slots: the stack's PostgreSQL
    has room for a limited number of slots, and the suite shares it."""
    config = load_config(config_path)
    with ConnectClient(config.connect.url) as client:
        for source in config.sources:
            client.delete(source.connector_name)
    for source in config.sources:
        if isinstance(source, PostgresSource):
            conn = stack.postgres.connect(source.database)
            conn.autocommit = True
            try:
                with conn.cursor() as cur:
                    drop_slot(cur, source.slot)
            finally:
                conn.close()


def run_sql(stack: LocalStack, database: str, statements: list[str]) -> None:
    """Each statement in its own transaction."""
    conn = stack.postgres.connect(database)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def assert_tables_equal(
    stack: LocalStack, config: PipelineConfig, database: str, only: list[str] | None = None
) -> None:
    catalog = open_catalog(config.iceberg)
    known = [table.target_name for _, table in config.tables()]
    assert not set(only or []) - set(known), f"only= names tables not in the config: {only}, known {known}"
    with stack.postgres.connect(database) as conn:
        for _, table in config.tables():
            if only and table.target_name not in only:
                continue
            iceberg_table = catalog.load_table((config.iceberg.namespace, table.target_name))
            assert assert_same_rows(conn, table.name, iceberg_table) >= 0
