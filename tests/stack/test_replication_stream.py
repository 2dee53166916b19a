"""The replication stream on the real stack: commits by size and by age while Kafka is read on,
a read-ahead that stays within its bound, and a table whose first change comes while it runs."""

from __future__ import annotations

import itertools
import json
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition
from pyiceberg.table.snapshots import ancestors_of

from floe_cdc.core.config import load_config
from floe_cdc.lake.catalog import load_table, open_catalog
from floe_cdc.pipeline.replication import Replicator
from floe_cdc.pipeline.replication_stream import ReplicationStream
from floe_cdc.stack.stack import LocalStack
from tests.stack.pipeline import ITEMS, assert_tables_equal, catch_up, replicated_database, run_sql

pytestmark = pytest.mark.stack

DATABASE = "floe_stream"


@pytest.fixture(scope="module")
def config_path(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return replicated_database(
        stack,
        tmp_path_factory.mktemp("stream"),
        DATABASE,
        statements=[*ITEMS, "DROP TABLE IF EXISTS late", "CREATE TABLE late (id int PRIMARY KEY, v text)"],
        tables=("public.items", "public.late"),
        commit_events=50,
        buffer_events=120,
        commit_seconds=0.5,
        refresh_seconds=1,
    )


def _commit_offsets(config_path: Path, table: str) -> list[int]:
    """The offset each of Floe's commits of *table* read up to, oldest first."""
    config = load_config(config_path)
    loaded = open_catalog(config.iceberg).load_table(("stream", table))
    offsets = []
    for snapshot in ancestors_of(loaded.current_snapshot(), loaded.metadata):
        raw = snapshot.summary.get("floe.offsets")
        if raw:
            offsets.append(int(json.loads(raw)[f"floe.stream.public.{table}"]["0"]))
    return offsets[::-1]


def test_commits_come_by_size_with_the_read_ahead_bounded(stack: LocalStack, config_path: Path):
    before = _commit_offsets(config_path, "items")[-1]
    run_sql(stack, DATABASE, ["UPDATE items SET name = name || ' +' WHERE id <= 300"])
    catch_up(config_path)
    offsets = [before] + [o for o in _commit_offsets(config_path, "items") if o > before]
    steps = [later - earlier for earlier, later in itertools.pairwise(offsets)]
    # 300 changes, committed at 50 waiting or after 0.5 s, never more than the 120 read ahead
    assert len(steps) >= 3 and max(steps) <= 120 and sum(steps) >= 300, steps
    config = load_config(config_path)
    assert_tables_equal(stack, config, DATABASE, only=["items"])
    # The consumer group follows the commits, for lag dashboards (Iceberg holds the truth).
    group = Consumer({"bootstrap.servers": config.kafka.bootstrap_servers, "group.id": config.kafka.group_id})
    try:
        [committed] = group.committed([TopicPartition("floe.stream.public.items", 0)], timeout=10)
    finally:
        group.close()
    assert committed.offset == offsets[-1]


def test_a_following_stream_takes_up_a_table_whose_first_change_comes_while_it_runs(
    stack: LocalStack, config_path: Path
):
    config = load_config(config_path)
    catalog = open_catalog(config.iceberg)
    stop = threading.Event()
    with Replicator(config) as replicator, ReplicationStream(replicator) as stream:
        follower = threading.Thread(target=lambda: stream.step(120, stop))
        follower.start()
        try:
            run_sql(stack, DATABASE, ["INSERT INTO late SELECT g, 'v' || g FROM generate_series(1, 30) g"])
            deadline = time.monotonic() + 60
            while load_table(catalog, "stream", "late") is None and time.monotonic() < deadline:
                time.sleep(0.5)
        finally:
            stop.set()
            follower.join(timeout=60)
    assert load_table(catalog, "stream", "late") is not None, "the running stream never read the new topic"
    catch_up(config_path)
    assert_tables_equal(stack, config, DATABASE)
