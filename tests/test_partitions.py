"""Partitioned and sorted tables: merges, the key index, maintain and partition evolution, each
compared with a model of the source row by row, rows that moved partition included."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.expressions import EqualTo
from pyiceberg.io.pyarrow import _determine_partitions, pyarrow_to_schema, write_file
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table import WriteTask
from pyiceberg.transforms import BucketTransform, DayTransform, IdentityTransform
from pyiceberg.types import LongType, NestedField, StringType, TimestamptzType

from floe_cdc.core.changes import Column
from floe_cdc.core.config import MaintainConfig, ReplicateConfig, parse_partition_field
from floe_cdc.lake.checkpoint import read_checkpoint
from floe_cdc.lake.key_index import KeyIndex
from floe_cdc.lake.layout import LayoutError, evolve_layout
from floe_cdc.lake.maintenance import maintain_table
from floe_cdc.lake.merge import Compaction, merge_batch
from floe_cdc.lake.pyiceberg_adapter import live_files, split_by_partition, write_rows
from floe_cdc.lake.schema import POSITION_FIELD, create_table
from tests.batches import make_batch

ORDERS = [
    Column("id", pa.int64(), False, "INT8"),
    Column("region", pa.string()),
    Column("placed", pa.timestamp("us", tz="UTC")),
    Column("note", pa.string()),
]
START = datetime(2026, 11, 1, tzinfo=UTC)


def _catalog(tmp_path) -> SqlCatalog:
    catalog = SqlCatalog("p", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "wh").as_uri())
    catalog.create_namespace("ns")
    return catalog


def _batches(count: int, size: int, seed: int) -> list[list[tuple]]:
    """Batches of inserts, updates (a new day and region: the row moves partition) and deletes,
    spread over 30 days."""
    rng = random.Random(seed)
    live: set[int] = set()
    next_id, batches = 0, []
    for _ in range(count):
        events, touched = [], set()
        for _ in range(size):
            choice = rng.random()
            if live and choice < 0.45:
                key = rng.choice(sorted(live - touched) or sorted(live))
                op = "u"
            elif live and choice < 0.6:
                key = rng.choice(sorted(live - touched) or sorted(live))
                op = "d"
            else:
                key, next_id, op = next_id, next_id + 1, "c"
            touched.add(key)
            if op == "d":
                live.discard(key)
                events.append(("d", {"id": key}))
                continue
            live.add(key)
            placed = START + timedelta(days=rng.randrange(30), hours=rng.randrange(24))
            events.append(
                (op, {"id": key, "region": rng.choice("abcd"), "placed": placed, "note": f"n{key}"})
            )
        batches.append(events)
    return batches


def _model(batches: list[list[tuple]]) -> dict[int, dict]:
    rows: dict[int, dict] = {}
    for events in batches:
        for op, row in events:
            if op == "d":
                rows.pop(row["id"], None)
            else:
                rows[row["id"]] = row
    return rows


def _rows(table) -> dict[int, dict]:
    found = table.scan().to_arrow().drop_columns([POSITION_FIELD]).to_pylist()
    return {row["id"]: row for row in found}


def _merge_all(catalog, batches, indexes, partition_by=None, sort_by=None, offset=0):
    """Merge each batch as replicate does: a warm key index, worn files rewritten in passing."""
    compaction = Compaction.of(ReplicateConfig())
    for number, events in enumerate(batches):
        batch = make_batch("orders", ["id"], ORDERS, events, offset=offset + number * 1000)
        if not catalog.table_exists(("ns", "orders")):
            create_table(catalog, "ns", batch, partition_by=partition_by, sort_by=sort_by)
        table = catalog.load_table(("ns", "orders"))
        merge_batch(table, batch, read_checkpoint(table), indexes, compaction)
    return catalog.load_table(("ns", "orders"))


def _entries(index: KeyIndex) -> set[tuple]:
    state = index.state()
    codes, files, positions = state.live()
    return {(int(c), state.files[f], int(p)) for c, f, p in zip(codes, files, positions, strict=True)}


@pytest.mark.parametrize(
    ("partition_by", "fields"),
    [
        (["bucket(4, id)"], ["id_bucket"]),
        (["day(placed)"], ["placed_day"]),
        (["region", "month(placed)"], ["region", "placed_month"]),
    ],
)
def test_a_partitioned_table_equals_its_source_row_by_row(tmp_path, partition_by, fields):
    catalog = _catalog(tmp_path)
    batches = _batches(8, 60, seed=len(partition_by[0]))
    indexes: dict[str, KeyIndex] = {}
    table = _merge_all(catalog, batches, indexes, partition_by=partition_by)
    assert _rows(table) == _model(batches)
    assert [f.name for f in table.spec().fields] == fields
    tasks = live_files(table.metadata, table.io)
    assert len({str(t.file.partition) for t in tasks}) > 2  # rows spread over partitions
    for task in tasks:  # a delete file applies within its data file's partition only
        assert all(str(d.partition) == str(task.file.partition) for d in task.delete_files)
    # Each merge wrote a file per partition and the index followed without reading them back.
    index = indexes["orders"]
    assert index.snapshot_id == table.current_snapshot().snapshot_id
    assert _entries(index) == _entries(KeyIndex.build(table, ["id"], POSITION_FIELD))

    maintain_table(table, "orders", MaintainConfig(delete_ratio=0.01, min_small_files=2))
    table = catalog.load_table(("ns", "orders"))
    assert _rows(table) == _model(batches)
    after = live_files(table.metadata, table.io)
    assert not any(t.delete_files for t in after)
    assert len(after) == len({str(t.file.partition) for t in after})  # one file per partition


def test_partition_evolution_keeps_every_row_and_new_files_take_the_new_spec(tmp_path):
    catalog = _catalog(tmp_path)
    batches = _batches(9, 50, seed=11)
    indexes: dict[str, KeyIndex] = {}
    table = _merge_all(catalog, batches[:3], indexes)
    assert table.spec().is_unpartitioned()
    assert evolve_layout(table, ["day(placed)"], None, "ns.orders") == ["partition spec now day(placed)"]
    assert evolve_layout(table, ["day(placed)"], None, "ns.orders") == []  # already so
    table = _merge_all(catalog, batches[3:6], indexes, offset=3000)
    assert _rows(table) == _model(batches[:6])
    assert table.spec().spec_id in {t.file.spec_id for t in live_files(table.metadata, table.io)}
    evolve_layout(table, [], None, "ns.orders")  # back to unpartitioned
    table = _merge_all(catalog, batches[6:], indexes, offset=6000)
    assert _rows(table) == _model(batches)
    assert _entries(indexes["orders"]) == _entries(KeyIndex.build(table, ["id"], POSITION_FIELD))


def test_a_sorted_table_lets_a_key_lookup_open_one_file_in_eight_after_maintain(tmp_path):
    """Merges write their files sorted by the key (the default sort order); maintain rewrites
    them into files of disjoint key ranges, which a reader's filter on one key prunes."""
    catalog = _catalog(tmp_path)
    rng = random.Random(5)
    wide = [
        ("c", {"id": key, "region": "a", "placed": START, "note": rng.randbytes(1200).hex()})
        for key in rng.sample(range(6000), 6000)
    ]
    table = _merge_all(catalog, [wide[i : i + 250] for i in range(0, 6000, 250)], {})
    assert [f.source_id for f in table.sort_order().fields] == [table.schema().find_field("id").field_id]
    for task in live_files(table.metadata, table.io):  # each merge's file is in key order
        with table.io.new_input(task.file.file_path).open() as handle:
            ids = pq.read_table(handle, columns=["id"])["id"].to_pylist()
        assert ids == sorted(ids)
    maintain_table(table, "orders", MaintainConfig(target_file_size_mb=1, min_small_files=2))
    table = catalog.load_table(("ns", "orders"))
    files = live_files(table.metadata, table.io)
    assert len(files) >= 8
    for key in (0, 2999, 5999):
        opened = list(table.scan(row_filter=EqualTo("id", key)).plan_files())
        assert 8 * len(opened) <= len(files)
        assert table.scan(row_filter=EqualTo("id", key)).to_arrow()["id"].to_pylist() == [key]


def test_a_partition_field_the_configuration_cannot_mean_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"'bucket\(id\)' is not a partition field; write a column"):
        parse_partition_field("bucket(id)")
    assert parse_partition_field(" bucket( 16 , id ) ").width == 16
    assert parse_partition_field("Day(placed)").transform == "day"
    catalog = _catalog(tmp_path)
    batch = make_batch("orders", ["id"], ORDERS, [("c", {"id": 1})])
    with pytest.raises(
        LayoutError, match="partition_by names column 'created', which the table does not have"
    ):
        create_table(catalog, "ns", batch, partition_by=["day(created)"])
    with pytest.raises(LayoutError, match="cannot apply day to column 'region' of type string"):
        create_table(catalog, "ns", batch, partition_by=["day(region)"])
    assert not catalog.table_exists(("ns", "orders"))  # nothing half-made


def test_a_column_added_a_truncate_and_a_resnapshot_on_a_partitioned_table(tmp_path):
    """The copy-on-write paths (a truncate, a completed re-snapshot) and schema evolution write
    partitioned files too, and the key index catches up after them."""
    catalog = _catalog(tmp_path)
    batches = _batches(3, 40, seed=21)
    indexes: dict[str, KeyIndex] = {}
    _merge_all(catalog, batches, indexes, partition_by=["day(placed)"])
    model = _model(batches)
    # A column added at the source: later rows carry it.
    wider = [*ORDERS, Column("channel", pa.string())]
    added = [("u", {**model[key], "channel": "web"}) for key in sorted(model)[:5]]
    table = catalog.load_table(("ns", "orders"))
    batch = make_batch("orders", ["id"], wider, added, offset=5000)
    merge_batch(table, batch, read_checkpoint(table), indexes, None)
    expected = {key: {**row, "channel": None} for key, row in model.items()}
    expected.update({row["id"]: row for _, row in added})
    assert _rows(catalog.load_table(("ns", "orders"))) == expected
    # A truncate, then rows again: only those after it remain.
    after = [("c", {"id": 1000 + n, "region": "a", "placed": START + timedelta(days=n)}) for n in range(5)]
    table = catalog.load_table(("ns", "orders"))
    batch = make_batch("orders", ["id"], wider, [("t", {}), *after], offset=6000)
    merge_batch(table, batch, read_checkpoint(table), indexes, None)
    table = catalog.load_table(("ns", "orders"))
    assert sorted(_rows(table)) == [1000 + n for n in range(5)]
    # A completed re-snapshot without row 1002: it goes, the others stay, in their partitions.
    reread = [("r", {"id": 1000 + n, "region": "b", "placed": START}, 7000) for n in (0, 1, 3, 4)]
    batch = make_batch("orders", ["id"], wider, reread, offset=7000, snapshot_completed=7000)
    merge_batch(table, batch, read_checkpoint(table), indexes, None)
    table = catalog.load_table(("ns", "orders"))
    assert {key: row["region"] for key, row in _rows(table).items()} == {
        1000: "b",
        1001: "b",
        1003: "b",
        1004: "b",
    }
    assert all(t.file.partition is not None for t in live_files(table.metadata, table.io))
    merge_batch(
        table,
        make_batch("orders", ["id"], wider, [("d", {"id": 1000})], offset=8000),
        read_checkpoint(table),
        indexes,
        None,
    )
    table = catalog.load_table(("ns", "orders"))
    assert sorted(_rows(table)) == [1001, 1003, 1004]
    assert _entries(indexes["orders"]) == _entries(KeyIndex.build(table, ["id"], POSITION_FIELD))


def test_rows_split_by_partition_as_pyiceberg_splits_them_each_part_in_its_rows_order():
    """``split_by_partition`` against pyiceberg's own split: the same partitions with the same
    rows, nulls in a partition of their own, and each part's rows in the order they came."""
    rng = random.Random(5)
    rows = pa.table(
        {
            "id": pa.array(range(3000), pa.int64()),
            "region": pa.array([rng.choice(["eu", "us", None]) for _ in range(3000)]),
            "placed": pa.array(
                [
                    START + timedelta(hours=rng.randrange(24 * 40)) if rng.random() > 0.02 else None
                    for _ in range(3000)
                ],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    schema = Schema(
        NestedField(1, "id", LongType(), required=False),
        NestedField(2, "region", StringType(), required=False),
        NestedField(3, "placed", TimestamptzType(), required=False),
    )
    spec = PartitionSpec(
        PartitionField(3, 1000, DayTransform(), "placed_day"),
        PartitionField(2, 1001, IdentityTransform(), "region"),
        PartitionField(1, 1002, BucketTransform(4), "id_bucket"),
    )
    ours = {key.partition: part for key, part in split_by_partition(spec, schema, rows)}
    theirs = {
        p.partition_key.partition: p.arrow_table_partition for p in _determine_partitions(spec, schema, rows)
    }
    assert len(ours) > 100 and ours.keys() == theirs.keys()
    for partition, part in ours.items():
        assert part.equals(theirs[partition]), partition
        assert part["id"].to_pylist() == sorted(part["id"].to_pylist())  # the rows' own order


def test_a_partition_s_data_file_is_the_file_pyiceberg_writes(tmp_path):
    """Floe writes a partitioned merge's files itself (``write_rows``): each file's metadata (bounds,
    counts, metrics modes) and Parquet schema (field ids, decimals) equal pyiceberg's for its rows."""
    rng = random.Random(9)
    rows = pa.table(
        {
            "id": pa.array([rng.randrange(10**6) for _ in range(2000)], pa.int64()),
            "odd name": pa.array([None if i % 7 == 0 else f"n{i}" for i in range(2000)]),
            "amount": pa.array([None] * 2000, pa.decimal128(12, 2)),
            "price": pa.array([rng.random() for _ in range(2000)]),
            "placed": pa.array(
                [START + timedelta(hours=rng.randrange(24 * 20)) for _ in range(2000)],
                pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    table = _catalog(tmp_path).create_table(
        ("ns", "t"), schema=rows.schema, properties={"write.metadata.metrics.column.price": "counts"}
    )
    with table.update_spec() as update:
        update.add_field("placed", DayTransform(), "placed_day")
        update.add_field("id", BucketTransform(2), "id_bucket")
    metadata = table.refresh().metadata
    parts = split_by_partition(metadata.spec(), metadata.schema(), rows)
    ours = [data_file for data_file, _ in write_rows(metadata, table.io, rows)]
    task_schema = pyarrow_to_schema(
        rows.schema, name_mapping=metadata.schema().name_mapping, format_version=2
    )
    tasks = [
        WriteTask(uuid.uuid4(), n, task_schema, part.to_batches(), None, key)
        for n, (key, part) in enumerate(parts)
    ]
    theirs = list(write_file(table.io, metadata, iter(tasks)))
    assert len(ours) == len(parts) > 20
    for mine, pyiceberg in zip(ours, theirs, strict=True):
        for name in ("partition", "record_count", "value_counts", "null_value_counts", "nan_value_counts"):
            assert getattr(mine, name) == getattr(pyiceberg, name), name
        for name in (
            "column_sizes",
            "lower_bounds",
            "upper_bounds",
            "split_offsets",
            "content",
            "file_format",
        ):
            assert getattr(mine, name) == getattr(pyiceberg, name), name
        schemas = [pq.read_schema(f.file_path.removeprefix("file://")) for f in (mine, pyiceberg)]
        assert schemas[0].equals(schemas[1], check_metadata=True)
