"""Multi-MB rows replicate with the rendered defaults; a failed connector task is never silent."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from floe_cdc.capture.connect_client import ConnectClient
from floe_cdc.capture.deploy import apply_connectors
from floe_cdc.cli.main import app
from floe_cdc.core.config import load_config
from floe_cdc.core.errors import ConnectError
from floe_cdc.stack.stack import LocalStack
from tests.stack.pipeline import assert_tables_equal, catch_up, run_sql, write_config

pytestmark = pytest.mark.stack

# About 6 MB of hex text, stored TOASTed: a change event of over 6 MB (12 MB with before and after).
HUGE = "(SELECT string_agg(md5(g::text || '{seed}'), '') FROM generate_series(1, 200000) g)"
ONE_MB = "1048576"


def _database(stack: LocalStack, name: str, statements: list[str]) -> None:
    stack.postgres.ensure_database(name)
    create = "CREATE TABLE blobs (id int PRIMARY KEY, note text, body text)"
    run_sql(stack, name, ["DROP TABLE IF EXISTS blobs", create])
    run_sql(stack, name, statements)


def _forget(stack: LocalStack, config_path: Path) -> None:
    """Remove the test's connector and replication slot, so that nothing streams on afterwards."""
    config = load_config(config_path)
    source = config.sources[0]
    with ConnectClient(stack.settings.connect_url) as client:
        client.delete(source.connector_name)
    run_sql(
        stack,
        source.database,
        [
            "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots "
            f"WHERE slot_name = '{source.slot}' AND active_pid IS NOT NULL",
        ],
    )


def test_multi_megabyte_rows_replicate_exactly(stack, tmp_path):
    database = "floe_large"
    _database(
        stack,
        database,
        [f"INSERT INTO blobs VALUES (1, 'first', {HUGE.format(seed='a')}), (2, 'small', 'x')"],
    )
    path = write_config(stack, tmp_path, "large", database, ["public.blobs"])
    try:
        apply_connectors(load_config(path))
        run_sql(
            stack,
            database,
            [
                f"INSERT INTO blobs VALUES (3, 'third', {HUGE.format(seed='b')})",
                "UPDATE blobs SET note = 'unchanged body' WHERE id = 1",  # TOASTed body not sent
                f"UPDATE blobs SET body = {HUGE.format(seed='c')} WHERE id = 2",
            ],
        )
        catch_up(path)
        assert_tables_equal(stack, load_config(path), database)
    finally:
        _forget(stack, path)


def test_a_task_that_fails_is_reported_by_apply_status_and_replicate(stack, tmp_path):
    database = "floe_failing"
    # Uncompressed requests of at most 1 MB (Kafka's default): the large row cannot be sent.
    overrides = {"producer.override.max.request.size": ONE_MB, "producer.override.compression.type": "none"}
    _database(stack, database, [f"INSERT INTO blobs VALUES (1, 'big', {HUGE.format(seed='a')})"])
    path = write_config(stack, tmp_path, "failing", database, ["public.blobs"])
    document = yaml.safe_load(path.read_text())
    document["sources"][0]["connector_overrides"] = overrides
    path.write_text(yaml.safe_dump(document))
    runner = CliRunner()
    try:
        # The snapshot's first event is too large: apply fails with the task's trace and removes
        # the connector it created.
        applied = runner.invoke(app, ["connectors", "apply", "--config", str(path)])
        assert applied.exit_code == 1, applied.output
        assert "task 0 FAILED" in applied.output and "RecordTooLargeException" in applied.output
        assert "producer.override.max.request.size" in applied.output
        assert "is in table public.blobs, column body: 6,400,000 bytes" in applied.output
        assert "Traceback" not in applied.output
        removed = "connector floe-failing, replication slot floe_failing, publication floe_failing, topics"
        assert f"Removed again: {removed}" in applied.output
        with ConnectClient(stack.settings.connect_url) as client:
            assert client.status("floe-failing") is None
        with stack.postgres.connect(database) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'floe_failing'")
            assert cur.fetchone()[0] == 0
            cur.execute("SELECT count(*) FROM pg_publication WHERE pubname = 'floe_failing'")
            assert cur.fetchone()[0] == 0

        # Small rows run; a large row later fails the task, and status and replicate say so.
        run_sql(stack, database, ["DELETE FROM blobs", "INSERT INTO blobs VALUES (1, 'small', 'x')"])
        applied = runner.invoke(app, ["connectors", "apply", "--config", str(path)])
        assert applied.exit_code == 0, applied.output
        run_sql(stack, database, [f"INSERT INTO blobs VALUES (2, 'big', {HUGE.format(seed='b')})"])
        with (
            ConnectClient(stack.settings.connect_url) as client,
            pytest.raises(ConnectError, match="RecordTooLargeException"),
        ):
            client.wait_running("floe-failing", timeout=60, settle=60)
        status = runner.invoke(app, ["connectors", "status", "--config", str(path)])
        assert status.exit_code == 1, status.output
        assert "floe-failing: RUNNING (task 0 FAILED)" in status.output
        assert "error: connector floe-failing: task 0 FAILED" in status.output
        assert "is in table public.blobs, column body" in status.output
        replicated = runner.invoke(app, ["replicate", "--config", str(path)])
        assert replicated.exit_code == 1, replicated.output
        assert "task 0 FAILED" in replicated.output and "floe connectors apply" in replicated.output

        # With the limits raised, apply restarts the failed task and reports what runs now; the
        # large row arrives.
        del document["sources"][0]["connector_overrides"]
        path.write_text(yaml.safe_dump(document))
        applied = runner.invoke(app, ["connectors", "apply", "--config", str(path)])
        assert applied.exit_code == 0, applied.output
        assert applied.output.strip().splitlines()[-1] == "floe-failing: updated, RUNNING", applied.output
        catch_up(path)
        assert_tables_equal(stack, load_config(path), database)
    finally:
        _forget(stack, path)


def test_tables_missing_or_without_primary_key_are_refused_before_anything_is_created(stack, tmp_path):
    database = "floe_refused"
    stack.postgres.ensure_database(database)
    run_sql(stack, database, ["DROP TABLE IF EXISTS keyless", "CREATE TABLE keyless (id int, v text)"])
    path = write_config(stack, tmp_path, "refused", database, ["public.keyless", "public.absent"])
    result = CliRunner().invoke(app, ["connectors", "apply", "--config", str(path)])
    assert result.exit_code == 1, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.output
    assert "table public.keyless (sources[0].tables[0]) has no primary key" in errors[0]
    assert "table public.absent (sources[0].tables[1]) does not exist in database floe_refused" in errors[0]
    assert "Traceback" not in result.output
    with ConnectClient(stack.settings.connect_url) as client:
        assert client.status("floe-refused") is None
    with stack.postgres.connect(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'floe_refused'")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM pg_publication WHERE pubname = 'floe_refused'")
        assert cur.fetchone()[0] == 0
    # The source still takes writes to the keyless table.
    run_sql(stack, database, ["INSERT INTO keyless VALUES (1, 'a')", "UPDATE keyless SET v = 'b'"])
