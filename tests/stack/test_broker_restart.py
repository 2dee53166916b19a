"""The broker crashes and loses every topic mid-stream (tansu keeps them in memory): ``floe stack
up`` brings it and Kafka Connect back, Floe notices, reads the re-created topics from the
beginning, and the table still ends equal to the source."""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

import pytest
from typer.testing import CliRunner

from floe_cdc.cli.main import app
from floe_cdc.core.config import load_config
from floe_cdc.stack.stack import LocalStack
from tests.stack.pipeline import assert_tables_equal, catch_up, run_sql, start_capture, write_config

pytestmark = pytest.mark.stack

DATABASE = "floe_broker"
CATCH_UP = 240


@pytest.fixture(scope="module")
def config_path(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    stack.postgres.ensure_database(DATABASE)
    run_sql(
        stack,
        DATABASE,
        [
            "DROP TABLE IF EXISTS items",
            "CREATE TABLE items (id integer PRIMARY KEY, v text, n integer)",
            "INSERT INTO items SELECT g, 'v' || g, g FROM generate_series(1, 400) g",
        ],
    )
    path = write_config(stack, tmp_path_factory.mktemp("broker"), "brk", DATABASE, ["public.items"])
    start_capture(path)
    catch_up(path, timeout=CATCH_UP)
    return path


@pytest.mark.restarts_broker
def test_broker_losing_its_topics_mid_stream(stack, config_path, caplog):
    config = load_config(config_path)
    # Changes that reach the broker and are lost with it before Floe reads them.
    run_sql(
        stack, DATABASE, ["UPDATE items SET n = n * 10 WHERE id <= 50", "DELETE FROM items WHERE id > 380"]
    )
    # The broker crashes; 'floe stack up' at once starts it again on its port (its old
    # connections still linger there), and Kafka Connect with it: its topics are gone too.
    os.kill(stack.broker.process.pid(), signal.SIGKILL)  # its pid file stays, as after any crash
    up = CliRunner().invoke(app, ["stack", "up"])
    assert up.exit_code == 0, up.output
    assert "restarted: kafka, connect\n" in up.output, up.output
    start_capture(config)  # 'floe connectors apply' works again
    run_sql(
        stack,
        DATABASE,
        ["INSERT INTO items VALUES (1000, 'after restart', 1)", "DELETE FROM items WHERE id = 1"],
    )
    with caplog.at_level(logging.WARNING, logger="floe.consumer"):
        catch_up(config_path, timeout=CATCH_UP)
    assert "the broker lost or re-created the topic" in caplog.text
    assert_tables_equal(stack, config, DATABASE)
