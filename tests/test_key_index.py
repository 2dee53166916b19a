"""The key index: every live row of a table by key, with its file and row position."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.manifest import DataFile, FileFormat
from pyiceberg.schema import Schema
from pyiceberg.types import DecimalType, LongType, NestedField, StringType

from floe_cdc.lake import key_index
from floe_cdc.lake.key_index import KeyIndex

POSITION = pa.decimal128(38, 0)
SCHEMA = Schema(
    NestedField(1, "region", StringType(), required=True),
    NestedField(2, "id", LongType(), required=True),
    NestedField(3, "name", StringType(), required=False),
    NestedField(4, "_floe_position", DecimalType(38, 0), required=False),
    identifier_field_ids=[1, 2],
)


def _rows(ids: range, region: str = "eu") -> pa.Table:
    return pa.table(
        {
            "region": pa.array([region] * len(ids)),
            "id": pa.array(list(ids), pa.int64()),
            "name": pa.array([f"n{i}" for i in ids]),
            "_floe_position": pa.array([i * 10 for i in ids], POSITION),
        },
        schema=SCHEMA.as_arrow(),
    )


def _data_file(path: str) -> DataFile:
    """A data file's entry, as a commit reports it (the index reads only its path)."""
    return DataFile.from_args(
        file_path=path, file_format=FileFormat.PARQUET, record_count=1, file_size_in_bytes=1
    )


def _table(tmp_path):
    catalog = SqlCatalog("k", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "wh").as_uri())
    catalog.create_namespace("ns")
    table = catalog.create_table(("ns", "t"), schema=SCHEMA)
    for part in (range(0, 100), range(100, 250), range(250, 300)):
        table.append(_rows(part))
    table.append(_rows(range(0, 10), region="us"))  # the same ids under another region
    return table


def test_the_index_holds_every_live_row_at_its_file_and_position(tmp_path):
    table = _table(tmp_path)
    index = KeyIndex.build(table, ["region", "id"], "_floe_position")
    assert len(index) == 310 and index.snapshot_id == table.current_snapshot().snapshot_id
    # Each indexed position holds its key in its file.
    every = index.locate(_rows(range(0, 300)))
    assert len(every.incoming) == 300
    for file_path in set(every.file):
        with table.io.new_input(file_path).open() as handle:
            content = pq.read_table(handle)
        mine = [i for i, path in enumerate(every.file) if path == file_path]
        stored_ids = content.take(pa.array(every.pos[mine]))["id"].to_pylist()
        assert stored_ids == [int(every.incoming[i]) for i in mine]


def test_locate_compares_every_key_column_and_returns_the_newest_position_of_the_file(tmp_path):
    """The index keeps no source position per row: its file's newest bounds the stored row's."""
    index = KeyIndex.build(_table(tmp_path), ["region", "id"], "_floe_position")
    incoming = pa.table({"region": ["us", "eu", "us", "eu"], "id": pa.array([5, 120, 50, 999], pa.int64())})
    found = index.locate(incoming)
    by_incoming = dict(zip(found.incoming.tolist(), found.newest.to_pylist(), strict=True))
    assert sorted(by_incoming) == [0, 1]  # us/50 and eu/999 are not in the table
    assert int(by_incoming[0]) == 90 and int(by_incoming[1]) == 2490


def test_advance_drops_removed_rows_and_adds_a_new_files_rows_in_order(tmp_path):
    index = KeyIndex.build(_table(tmp_path), ["region", "id"], "_floe_position")
    located = index.locate(pa.table({"region": ["eu", "eu"], "id": pa.array([1, 2], pa.int64())}))
    index.advance(
        located.entry, [(_data_file("s3://bucket/new.parquet"), _rows(range(1, 3)))], snapshot_id=42
    )
    assert len(index) == 310 and index.snapshot_id == 42
    again = index.locate(pa.table({"region": ["eu", "eu"], "id": pa.array([1, 2], pa.int64())}))
    assert set(again.file) == {"s3://bucket/new.parquet"}
    assert dict(zip(again.incoming.tolist(), again.pos.tolist(), strict=True)) == {0: 0, 1: 1}


def test_an_integer_key_is_its_own_code_and_removed_keys_can_come_back(tmp_path):
    catalog = SqlCatalog("i", uri=f"sqlite:///{tmp_path}/c.db", warehouse=(tmp_path / "wh").as_uri())
    catalog.create_namespace("ns")
    schema = Schema(
        NestedField(1, "id", LongType(), required=True),
        NestedField(2, "name", StringType(), required=False),
        NestedField(3, "_floe_position", DecimalType(38, 0), required=False),
        identifier_field_ids=[1],
    )
    table = catalog.create_table(("ns", "t"), schema=schema)
    table.append(_rows(range(0, 50)).drop_columns(["region"]).cast(schema.as_arrow()))
    index = KeyIndex.build(table, ["id"], "_floe_position")
    assert index.exact_codes and len(index) == 50
    gone = index.locate(pa.table({"id": pa.array([7, 8], pa.int64())}))
    index.advance(gone.entry, [], snapshot_id=1)
    assert len(index.locate(pa.table({"id": pa.array([7, 8, 9], pa.int64())})).entry) == 1
    index.advance(
        np.zeros(0, np.int64), [(_data_file("new"), _rows(range(7, 8)).drop_columns(["region"]))], 2
    )
    back = index.locate(pa.table({"id": pa.array([7], pa.int64())}))
    assert back.file == ["new"] and back.pos.tolist() == [0] and len(index) == 49


def test_removed_entries_and_gone_files_are_dropped_once_they_outnumber_the_live_ones(tmp_path):
    index = KeyIndex.build(_table(tmp_path), ["region", "id"], "_floe_position")
    live = len(index)
    for round_ in range(70):  # each round replaces every row of region eu by a new file's rows
        keys = _rows(range(1, 101))
        located = index.locate(keys)
        index.advance(located.entry, [(_data_file(f"s3://bucket/r{round_}.parquet"), keys)], round_)
        assert len(index) == live and sum(len(run) for _, _, run in index._runs()) <= 2 * live + 100
    found = index.locate(_rows(range(1, 101)))
    assert set(found.file) == {"s3://bucket/r69.parquet"} and sorted(found.pos.tolist()) == list(range(100))
    assert "s3://bucket/r0.parquet" not in index.files and len(index.files) < 70
    untouched = index.locate(pa.table({"region": ["us"], "id": pa.array([1], pa.int64())}))
    assert len(untouched.entry) == 1 and untouched.file[0] in index.data_files


def test_a_spilled_index_finds_the_same_rows_from_memory_mapped_runs(tmp_path, monkeypatch):
    """An index bigger than its memory budget keeps its long runs on disk, memory-mapped: the
    same lookups and commits, less memory, and no file left by name."""
    monkeypatch.setattr(key_index, "SPILL_ENTRIES", 2)
    index = KeyIndex.build(_table(tmp_path), ["region", "id"], "_floe_position")
    probe = pa.table({"region": ["eu"] * 5 + ["us"], "id": pa.array([1, 2, 120, 299, 999, 3], pa.int64())})
    before = index.locate(probe)
    moved = index.spill(tmp_path / "mapped")
    assert moved > 0 and index.memory_bytes == index.nbytes - moved
    assert list((tmp_path / "mapped").iterdir()) == []
    after = index.locate(probe)
    assert (after.incoming.tolist(), after.file, after.pos.tolist()) == (
        before.incoming.tolist(),
        before.file,
        before.pos.tolist(),
    )
    replaced = after.entry[after.incoming < 2]  # eu/1 and eu/2
    index.advance(replaced, [(_data_file("s3://bucket/new.parquet"), _rows(range(1, 3)))], 7)
    again = index.locate(probe)
    moved_to = {int(i): path for i, path in zip(again.incoming, again.file, strict=True)}
    assert moved_to[0] == moved_to[1] == "s3://bucket/new.parquet" and len(index) == 310
