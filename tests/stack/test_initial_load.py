"""The direct initial load (``initial_load: direct``): tables read straight into Iceberg in chunks
by key from the snapshot the replication slot starts at, then streamed by Debezium from there.

Compared with PostgreSQL row by row: under live writes during the load, after a SIGKILL in the
middle of it, and against the same table replicated through Debezium's snapshot (every mapped
type, the same Iceberg schema and values).
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pyarrow as pa
import pytest
import yaml
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from pyiceberg.expressions import EqualTo
from typer.testing import CliRunner

from floe_cdc.cli.main import app
from floe_cdc.core.config import load_config
from floe_cdc.flows.replicate import replicate
from floe_cdc.flows.resnapshot import resnapshot
from floe_cdc.lake.catalog import open_catalog
from floe_cdc.lake.checkpoint import read_checkpoint
from floe_cdc.lake.resnapshot_branch import BRANCH
from floe_cdc.lake.schema import POSITION_COLUMN
from floe_cdc.pipeline.direct_resnapshot import resnapshot_table
from floe_cdc.pipeline.initial_load import LOAD_KEY, TableLoad
from floe_cdc.stack.stack import LocalStack
from tests.conftest import PROJECT_DIR
from tests.stack.pipeline import (
    assert_tables_equal,
    catch_up,
    remove_replication,
    run_sql,
    start_capture,
    write_config,
)

pytestmark = pytest.mark.stack

ROWS = 20_000
ITEMS = [
    "DROP TABLE IF EXISTS items",
    "CREATE TABLE items (id bigint PRIMARY KEY, name text, price numeric(10,2), qty int, "
    "changed_at timestamptz DEFAULT now(), note varchar(40))",
    "INSERT INTO items (id, name, price, qty, note) "
    f"SELECT g, 'item ' || g, g * 1.25, g % 97, 'n' || (g % 13) FROM generate_series(1, {ROWS}) g",
    "UPDATE items SET changed_at = now() - (id % 30) * interval '1 day'",  # over 30 days
]
# Every type the direct load reads, with edge values; the same rows go through Debezium's snapshot.
TYPES = [
    "DROP TABLE IF EXISTS typed",
    "DROP TYPE IF EXISTS mood",
    "CREATE TYPE mood AS ENUM ('sad', 'happy')",
    "CREATE TABLE typed (id int PRIMARY KEY, i2 smallint, i8 bigint, f4 real, f8 double precision, "
    "b boolean, t text, vc varchar(12), c char(3), n numeric(38,10), nu numeric, d date, tm time, "
    "tm3 time(3), ts timestamp, ts3 timestamp(3), tz timestamptz, u uuid, j json, jb jsonb, by bytea, "
    "e mood, ip inet, net cidr, mac macaddr, mac8 macaddr8, x xml, m money, ai int[], ai8 bigint[], "
    "atx text[], af float8[], ab boolean[])",
    "INSERT INTO typed VALUES (1, -32768, 9223372036854775807, 1.5, -2.25e300, true, 'héllo ☃', "
    "'twelve chars', 'ab', 1234567890123456789012345678.0123456789, "
    "3.14159265358979323846264338327950288, '2024-02-29', "
    "'23:59:59.999999', '12:00:00.123', '1999-12-31 23:59:59.999999', '2000-01-01 00:00:00.5', "
    "'2024-06-01 12:00:00+02', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{\"b\": [1, 2], \"a\": null}', "
    "'{\"b\": [1, 2], \"a\": null}', '\\x00ff10', 'happy', '192.168.0.1/24', '10.0.0.0/8', "
    "'08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05', '<a b=\"1\">t</a>', 12.34, '{1,NULL,3}', "
    "'{9223372036854775807}', '{\"x\",\"y z\",NULL}', '{1.5,NaN,-Infinity}', '{true,false}')",
    "INSERT INTO typed (id) VALUES (2)",
    "INSERT INTO typed (id, nu) VALUES (4, 'NaN'), (5, 'Infinity'), (6, '-Infinity')",
    "INSERT INTO typed VALUES (3, 0, 0, 'NaN', '-Infinity', false, '', '', '', 0, 0.000, '0001-01-01', "
    "'00:00', '00:00', '1970-01-01', '1970-01-01', '1970-01-01 00:00:00+00', "
    "'00000000-0000-0000-0000-000000000000', '[]', '{}', '', 'sad', '::1', '2001:db8::/32', "
    "'00:00:00:00:00:00', '00:00:00:00:00:00:00:00', '', -0.01, '{}', '{}', '{}', '{}', '{}')",
]


@pytest.fixture
def pipelines(stack: LocalStack) -> Iterator[list[Path]]:
    """Config paths whose connectors and slots are removed after the test."""
    paths: list[Path] = []
    yield paths
    for path in paths:
        remove_replication(stack, path)


def _nan_free(value: object) -> object:
    """NaN equals nothing, not even itself: compared as a word, in lists too."""
    if isinstance(value, list):
        return [_nan_free(item) for item in value]
    return "NaN" if isinstance(value, float) and math.isnan(value) else value


def _direct_config(
    stack: LocalStack, directory: Path, database: str, tables: list[str | dict], chunk_rows: int
) -> Path:
    path = write_config(stack, directory, database.removeprefix("floe_"), database, tables)
    document = yaml.safe_load(path.read_text())
    document["sources"][0]["initial_load"] = "direct"
    document["load"] = {"chunk_rows": chunk_rows}
    path.write_text(yaml.safe_dump(document))
    return path


def _apply(path: Path) -> str:
    result = CliRunner().invoke(app, ["connectors", "apply", "--config", str(path)])
    assert result.exit_code == 0, result.output
    return result.output


def _load_commits(path: Path, table: str) -> list[dict[str, str]]:
    config = load_config(path)
    iceberg = open_catalog(config.iceberg).load_table((config.iceberg.namespace, table))
    summaries = [snapshot.summary for snapshot in iceberg.snapshots()]
    return [dict(summary.additional_properties) for summary in summaries if summary.get(LOAD_KEY)]


@contextlib.contextmanager
def _live_writes(stack: LocalStack, database: str) -> Iterator[None]:
    """Updates, deletes and inserts at the source, every 50 ms, until the block ends."""
    stop = threading.Event()

    def write() -> None:
        step = 0
        while not stop.is_set():
            step += 1
            run_sql(
                stack,
                database,
                [
                    # A new day: on a table partitioned by day(changed_at), the row moves partition.
                    f"UPDATE items SET qty = qty + 1, name = 'live {step}', "
                    f"changed_at = now() - {step % 30} * interval '1 day' WHERE id % 50 = {step % 50}",
                    f"DELETE FROM items WHERE id = {(step * 37) % ROWS + 1}",
                    f"INSERT INTO items (id, name) VALUES ({ROWS + step}, 'new {step}')",
                ],
            )
            time.sleep(0.05)

    writer = threading.Thread(target=write)
    writer.start()
    try:
        yield
    finally:
        stop.set()
        writer.join()


def test_a_direct_load_under_live_writes_ends_identical(stack: LocalStack, tmp_path: Path, pipelines):
    """On a partitioned table, whose live updates move rows from one day's partition to another."""
    stack.postgres.ensure_database("floe_direct")
    run_sql(stack, "floe_direct", ITEMS)
    partitioned = {"name": "public.items", "partition_by": ["day(changed_at)", "bucket(4, id)"]}
    path = _direct_config(stack, tmp_path, "floe_direct", [partitioned], chunk_rows=2_000)
    pipelines.append(path)
    with _live_writes(stack, "floe_direct"):
        output = _apply(path)
    assert "loaded" in output and "floe-direct: created" in output, output
    chunks = [int(commit["floe.events"]) for commit in _load_commits(path, "items")]
    assert len(chunks) >= ROWS // 2_000 and set(chunks[:-1]) == {2_000} and chunks[-1] < 2_000, chunks
    # The writes keep the row count (a delete and an insert each): one more row, written last,
    # makes the counts agree only once every change before it is in Iceberg too.
    run_sql(stack, "floe_direct", [f"INSERT INTO items (id, name) VALUES ({10 * ROWS}, 'written last')"])
    catch_up(path)
    config = load_config(path)
    assert_tables_equal(stack, config, "floe_direct")
    table = open_catalog(config.iceberg).load_table((config.iceberg.namespace, "items"))
    assert [field.name for field in table.spec().fields] == ["changed_at_day", "id_bucket"]
    assert len({str(task.file.partition) for task in table.scan().plan_files()}) > 30


def test_a_load_killed_in_the_middle_resumes_without_loading_a_chunk_twice(
    stack: LocalStack, tmp_path: Path, pipelines
):
    stack.postgres.ensure_database("floe_resumed")
    run_sql(stack, "floe_resumed", ITEMS)
    path = _direct_config(stack, tmp_path, "floe_resumed", ["public.items"], chunk_rows=500)
    pipelines.append(path)
    floe = Path(sys.executable).parent / "floe"
    loader = subprocess.Popen(
        [str(floe), "connectors", "apply", "--config", str(path)],
        cwd=PROJECT_DIR,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                commits = _load_commits(path, "items")
            except Exception:  # the table is not there yet
                commits = []
            if len(commits) >= 3:
                break
            time.sleep(0.1)
        os.killpg(loader.pid, signal.SIGKILL)
    finally:
        loader.wait()
    interrupted = _load_commits(path, "items")
    assert interrupted and not any(orjson.loads(c[LOAD_KEY]).get("done") for c in interrupted), (
        "the load finished before it was killed"
    )
    run_sql(stack, "floe_resumed", ["UPDATE items SET name = 'after the crash' WHERE id % 100 = 1"])

    output = _apply(path)
    assert "floe-resumed: created" in output, output
    commits = _load_commits(path, "items")
    assert sum(int(c["floe.events"]) for c in commits) == ROWS, "a chunk was loaded twice"
    catch_up(path)
    assert_tables_equal(stack, load_config(path), "floe_resumed")


def test_the_direct_load_types_every_column_as_debezium_does(stack: LocalStack, tmp_path: Path, pipelines):
    for database in ("floe_typed_direct", "floe_typed_debezium"):
        stack.postgres.ensure_database(database)
        run_sql(stack, database, TYPES)
        (tmp_path / database).mkdir()
    direct = _direct_config(
        stack, tmp_path / "floe_typed_direct", "floe_typed_direct", ["public.typed"], chunk_rows=2
    )
    through_debezium = write_config(
        stack, tmp_path / "floe_typed_debezium", "typed_debezium", "floe_typed_debezium", ["public.typed"]
    )
    pipelines += [direct, through_debezium]
    _apply(direct)
    start_capture(through_debezium)
    catch_up(through_debezium)
    catch_up(direct)
    tables = []
    for path in (direct, through_debezium):
        config = load_config(path)
        tables.append(open_catalog(config.iceberg).load_table((config.iceberg.namespace, "typed")))
    loaded, streamed = tables
    assert loaded.schema() == streamed.schema()
    # Every column but the row's source position: loaded rows hold 0, so that every change wins.
    columns = [field.name for field in loaded.schema().fields if field.name != POSITION_COLUMN.name]
    rows = [t.scan().to_arrow().select(columns).sort_by("id").to_pylist() for t in tables]
    differences = [
        (a["id"], column, a[column], b[column])
        for a, b in zip(*rows, strict=True)
        for column in columns
        if _nan_free(a[column]) != _nan_free(b[column])
    ]
    assert not differences, differences
    assert_tables_equal(stack, load_config(direct), "floe_typed_direct")


def test_a_direct_resnapshot_repairs_a_table_under_live_writes(stack: LocalStack, tmp_path: Path, pipelines):
    stack.postgres.ensure_database("floe_reread")
    run_sql(stack, "floe_reread", ITEMS)
    path = _direct_config(stack, tmp_path, "floe_reread", ["public.items"], chunk_rows=1_000)
    pipelines.append(path)
    _apply(path)
    run_sql(stack, "floe_reread", ["UPDATE items SET name = 'streamed' WHERE id % 10 = 3"])
    config = load_config(path)
    table = open_catalog(config.iceberg).load_table((config.iceberg.namespace, "items"))
    deadline = time.monotonic() + 180
    while not read_checkpoint(table.refresh()).offsets:  # the update streamed: the table has offsets
        assert time.monotonic() < deadline, "the update never reached Iceberg"
        replicate(config_path=str(path))
    # Damage behind Floe's back: a row lost, a row the source never had.
    table.delete(EqualTo("id", 7))
    stray = table.scan(row_filter=EqualTo("id", 9)).to_arrow()
    index = stray.schema.get_field_index("id")
    table.append(stray.set_column(index, stray.schema.field(index), pa.array([10**9], pa.int64())))
    run_sql(stack, "floe_reread", ["UPDATE items SET name = 'before the re-snapshot' WHERE id % 10 = 4"])
    source, ref = config.find_table("items")
    before = table.refresh().current_snapshot().snapshot_id
    offsets = read_checkpoint(table).offsets
    skipped: list[list[dict]] = []

    def meanwhile(load: TableLoad) -> None:
        if load.chunks == 5:  # a replicate cycle in the middle leaves the table alone
            skipped.append(replicate(config_path=str(path)))

    with _live_writes(stack, "floe_reread"):
        read = resnapshot_table(config, source, ref, meanwhile)
    assert read.done and read.rows >= ROWS - 100, read
    assert skipped and [row["events"] for row in skipped[0] if row["table"] == "items"] in ([], [0]), skipped
    after = table.refresh()
    assert BRANCH not in after.metadata.refs
    switched = after.current_snapshot()
    assert switched.snapshot_id != before and switched.summary.get(LOAD_KEY) == '{"done":true}'
    assert offsets and read_checkpoint(after).offsets == offsets, "the switch kept the table's checkpoint"
    catch_up(path)
    assert_tables_equal(stack, config, "floe_reread")

    # The flow reads it again with a progress artifact that ends at 100.
    state = resnapshot(config_path=str(path), tables=["items"], return_state=True)
    assert state.is_completed(), state
    with get_client(sync_client=True) as client:
        run = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        artifacts = client.read_artifacts(flow_run_filter=run)
    assert [float(a.data) for a in artifacts if a.type == "progress"] == [100.0]
    catch_up(path)
    assert_tables_equal(stack, config, "floe_reread")
