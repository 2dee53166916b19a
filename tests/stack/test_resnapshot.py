"""An incremental re-snapshot repairs a table while its source keeps writing and replication
goes on: rows removed, changed or added behind Floe's back in Iceberg end equal to the source,
and no change made meanwhile is lost."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pytest
import yaml
from pyiceberg.expressions import EqualTo, In
from typer.testing import CliRunner

from floe_cdc.capture.consumer import ChangeConsumer
from floe_cdc.cli.main import app
from floe_cdc.core.config import PipelineConfig, load_config
from floe_cdc.lake.catalog import open_catalog
from floe_cdc.lake.resnapshot_mark import RESNAPSHOT_PROPERTY
from floe_cdc.stack.stack import LocalStack
from tests.stack.live import Statement, live_source
from tests.stack.pipeline import assert_tables_equal, catch_up, run_sql, start_capture, write_config

pytestmark = pytest.mark.stack

DATABASE = "floe_resnap"
ROWS = 3000


def changes() -> Iterator[Statement]:
    """Single-row inserts, updates and deletes on both tables, for ever (rows below 20 are kept)."""
    rng, next_id = random.Random(11), 100_000
    while True:
        roll = rng.random()
        if roll < 0.3:
            next_id += 1
            yield "INSERT INTO items (id, name) VALUES (%s, 'live')", (next_id,)
        elif roll < 0.6:
            yield "UPDATE items SET name = md5(random()::text) WHERE id = %s", (rng.randint(20, ROWS),)
        elif roll < 0.75:
            yield "DELETE FROM items WHERE id = %s", (rng.randint(20, next_id),)
        else:
            yield "UPDATE others SET n = n + 1 WHERE id = %s", (rng.randint(1, 100),)


@pytest.fixture(scope="module")
def resnap_config(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    stack.postgres.ensure_database(DATABASE)
    run_sql(
        stack,
        DATABASE,
        [
            "DROP TABLE IF EXISTS items, others",
            "CREATE TABLE items (id int PRIMARY KEY, name text)",
            f"INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, {ROWS}) g",
            "CREATE TABLE others (id int PRIMARY KEY, n int)",
            "INSERT INTO others SELECT g, 0 FROM generate_series(1, 100) g",
        ],
    )
    path = write_config(
        stack,
        tmp_path_factory.mktemp("resnap"),
        "resnap",
        DATABASE,
        ["public.items", "public.others"],
        idle_seconds=1,
        max_seconds=3,
    )
    document = yaml.safe_load(path.read_text())
    # Small chunks: the snapshot takes many windows, each closed by the changes streaming past it.
    document["sources"][0]["connector_overrides"] = {"incremental.snapshot.chunk.size": "100"}
    path.write_text(yaml.safe_dump(document))
    start_capture(path)
    catch_up(path)
    return path


def tamper(config: PipelineConfig) -> None:
    """Behind Floe's back: row 5 removed, row 6 changed, a row the source never had added."""
    table = open_catalog(config.iceberg).load_table((config.iceberg.namespace, "items"))
    stored = table.scan(row_filter=In("id", [6, 7])).to_arrow()
    changed = stored.filter(pc.equal(stored["id"], 6))
    changed = changed.set_column(
        changed.schema.get_field_index("name"),
        "name",
        pa.array(["tampered"], stored.schema.field("name").type),
    )
    phantom = stored.filter(pc.equal(stored["id"], 7))
    phantom = phantom.set_column(
        0, phantom.schema.field("id"), pa.array([999_999], phantom.schema.field("id").type)
    )
    table.delete(In("id", [5, 6]))
    table.append(pa.concat_tables([changed, phantom]))


def test_incremental_resnapshot_repairs_a_table_while_the_source_writes(stack: LocalStack, resnap_config):
    config = load_config(resnap_config)
    tamper(config)
    source = config.sources[0]
    topic = source.topic_for(source.tables[0])
    with ChangeConsumer(config.kafka) as consumer:
        start = consumer.end_offsets(topic)
    with live_source(stack, DATABASE, config, changes()):
        time.sleep(2)
        asked = CliRunner().invoke(app, ["resnapshot", "--config", str(resnap_config), "--table", "items"])
        assert asked.exit_code == 0, asked.output
        assert "items: incremental re-snapshot of public.items requested" in asked.output
        again = CliRunner().invoke(app, ["resnapshot", "--config", str(resnap_config), "--table", "items"])
        assert again.exit_code == 1 and "is still running" in again.output, again.output
        table = open_catalog(config.iceberg).load_table((config.iceberg.namespace, "items"))
        deadline = time.monotonic() + 180
        while RESNAPSHOT_PROPERTY in table.refresh().properties and time.monotonic() < deadline:
            time.sleep(1)
        assert RESNAPSHOT_PROPERTY not in table.properties
        time.sleep(2)
    catch_up(resnap_config)
    assert_tables_equal(stack, config, DATABASE)
    stored = table.refresh().scan(row_filter=In("id", [5, 6, 999_999])).to_arrow()
    assert sorted(stored["id"].to_pylist()) == [5, 6]
    assert table.scan(row_filter=EqualTo("id", 6)).to_arrow()["name"].to_pylist() == ["item 6"]

    # Streaming went on during the snapshot: changes of the table sit between its reads.
    with ChangeConsumer(config.kafka) as consumer:
        kinds = [
            b'"snapshot":"incremental"' in record.value
            for record in consumer.scan(topic, start, 2.0, set())
            if record.value is not None
        ]
    reads = [i for i, is_read in enumerate(kinds) if is_read]
    assert len(reads) >= ROWS // 2
    assert not all(kinds[reads[0] : reads[-1] + 1]), "no change streamed while the table was read"
