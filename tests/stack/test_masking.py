"""Columns left out (``exclude``) and hashed (``hash``) at capture, on the real stack.

The same table replicated twice, through Debezium's snapshot and through the direct load, then
changed at the source (streamed) and re-snapshotted (Debezium's incremental snapshot, the direct
re-snapshot): every Iceberg row equals the source's row with the excluded column left out and
the hashed columns hashed as Debezium's v2 hashing does (computed here with hashlib), whichever
path wrote it; no Kafka event holds an excluded column or a hashed value in clear; the keys
reconciliation, which compares the hashed columns as hashed, passes.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import yaml
from pyiceberg.expressions import In
from typer.testing import CliRunner

from floe_cdc.capture.consumer import ChangeConsumer
from floe_cdc.cli.main import app
from floe_cdc.core.config import load_config
from floe_cdc.lake.catalog import open_catalog
from floe_cdc.lake.resnapshot_mark import RESNAPSHOT_PROPERTY
from floe_cdc.lake.schema import POSITION_COLUMN
from floe_cdc.pipeline.direct_resnapshot import resnapshot_table
from floe_cdc.pipeline.initial_load import load_direct_sources
from floe_cdc.pipeline.reconciliation import reconcile
from floe_cdc.stack.stack import LocalStack
from tests.lineage_events import valid
from tests.stack.pipeline import catch_up, remove_replication, run_sql, start_capture, write_config

pytestmark = pytest.mark.stack

SALT = "masking-test-salt-2026"
PEOPLE = [
    "DROP TABLE IF EXISTS people",
    "CREATE TABLE people (id int PRIMARY KEY, email varchar(40), nick char(6), ssn text, note text)",
    "INSERT INTO people SELECT g, 'user' || g || '@example.com', 'n' || (g % 7), 'ssn-' || g, "
    "'héllo ☃ ' || g FROM generate_series(1, 300) g",
    "INSERT INTO people VALUES (1000, NULL, NULL, NULL, NULL), (1001, '', '', '', '')",
]
CHANGES = [
    "UPDATE people SET email = 'changed' || id || '@example.org', ssn = 'new-' || id WHERE id % 10 = 0",
    "DELETE FROM people WHERE id % 25 = 1",
    "INSERT INTO people VALUES (2000, 'late@example.com', 'late', 'ssn-late', 'ünïcode ✓')",
]
TABLES = [{"name": "public.people", "exclude": ["ssn"], "hash": ["email", "nick", "note"]}]
LENGTHS = {"email": 40, "nick": 6, "note": None}


def _hashed(value: str | None, length: int | None) -> str | None:
    if value is None:
        return None
    return hashlib.sha256((SALT + value).encode()).hexdigest()[:length]


def _expected(stack: LocalStack, database: str) -> list[dict]:
    """The source's rows as capture should deliver them: ssn left out, the others hashed (char(n)
    values with their padding, as PostgreSQL prints them)."""
    conn = stack.postgres.connect(database)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT id, email, CASE WHEN nick IS NOT NULL THEN format('%s', nick) END, note "
                "FROM people ORDER BY id"
            )
            rows = cur.fetchall()
    finally:
        conn.close()
    return [
        {"id": i, "email": _hashed(e, 40), "nick": _hashed(n, 6), "note": _hashed(t, None)}
        for i, e, n, t in rows
    ]


def _stored(path: Path) -> list[dict]:
    config = load_config(path)
    table = open_catalog(config.iceberg).load_table((config.iceberg.namespace, "people"))
    rows = table.scan().to_arrow().drop_columns([POSITION_COLUMN.name]).sort_by("id")
    return rows.to_pylist()


def _config(stack: LocalStack, directory: Path, database: str, direct: bool) -> Path:
    path = write_config(stack, directory, database.removeprefix("floe_"), database, TABLES, idle_seconds=1)
    document = yaml.safe_load(path.read_text())
    document["sources"][0]["hash_salt"] = SALT
    if direct:
        document["sources"][0]["initial_load"] = "direct"
        document["lineage"] = {"file": str(directory / "lineage.jsonl")}
    path.write_text(yaml.safe_dump(document))
    return path


def _resnapshot_through_debezium(path: Path) -> None:
    asked = CliRunner().invoke(app, ["resnapshot", "--config", str(path), "--table", "people"])
    assert asked.exit_code == 0, asked.output
    config = load_config(path)
    table = open_catalog(config.iceberg).load_table((config.iceberg.namespace, "people"))
    deadline = time.monotonic() + 180
    while RESNAPSHOT_PROPERTY in table.refresh().properties:
        assert time.monotonic() < deadline, "the incremental re-snapshot did not complete"
        catch_up(path)


def test_excluded_and_hashed_columns_read_the_same_whichever_path_wrote_them(
    stack: LocalStack, tmp_path: Path
):
    paths = {}
    for name, direct in (("floe_masked_debezium", False), ("floe_masked_direct", True)):
        stack.postgres.ensure_database(name)
        run_sql(stack, name, PEOPLE)
        (tmp_path / name).mkdir()
        paths[name] = _config(stack, tmp_path / name, name, direct)
    try:
        start_capture(paths["floe_masked_debezium"])
        direct = load_config(paths["floe_masked_direct"])
        load_direct_sources(direct)  # as 'floe connectors apply' does, then streamed from there
        start_capture(direct)
        # The direct load's commits send their lineage events too (one per chunk).
        loaded = [
            valid(json.loads(line)) for line in (tmp_path / "floe_masked_direct" / "lineage.jsonl").open()
        ]
        assert sum(e["run"]["facets"]["floe_commit"]["inserted"] for e in loaded) == 302
        for path in paths.values():
            catch_up(path)
        for name, path in paths.items():
            assert _stored(path) == _expected(stack, name), f"{name}: after the initial load"
            run_sql(stack, name, CHANGES)
            catch_up(path)
            assert _stored(path) == _expected(stack, name), f"{name}: after streaming"

        # A row lost behind Floe's back, brought back by each kind of re-snapshot.
        for path in paths.values():
            config = load_config(path)
            open_catalog(config.iceberg).load_table((config.iceberg.namespace, "people")).delete(
                In("id", [5])
            )
        _resnapshot_through_debezium(paths["floe_masked_debezium"])
        direct = load_config(paths["floe_masked_direct"])
        source, ref = direct.find_table("people")
        assert resnapshot_table(direct, source, ref).done
        for name, path in paths.items():
            catch_up(path)
            assert _stored(path) == _expected(stack, name), f"{name}: after the re-snapshot"
            checks = reconcile(load_config(path), mode="keys")
            assert [(c.passed, c.differing_keys) for c in checks] == [(True, [])], checks

        # Kafka never held the excluded column, nor a hashed value in clear.
        config = load_config(paths["floe_masked_debezium"])
        topic = config.sources[0].topic_for(config.sources[0].tables[0])
        with ChangeConsumer(config.kafka) as consumer:
            values = [r.value for r in consumer.scan(topic, {}, 2.0, set()) if r.value is not None]
        assert len(values) > 300
        assert not [v for v in values if b'"ssn"' in v or b"@example" in v or "héllo".encode() in v]
    finally:
        for path in paths.values():
            remove_replication(stack, path)
