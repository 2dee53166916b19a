"""A row delta: new row versions and position deletes in one snapshot, found through the key
index, read back the same by pyiceberg and by DuckDB, and the index kept equal to a rebuild."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from duckdb import DuckDBPyConnection
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.types import DecimalType, LongType, NestedField, StringType

from floe_cdc.lake.key_index import KeyIndex
from floe_cdc.lake.pyiceberg_adapter import RowDelta, transaction, write_data_files, write_position_deletes
from tests.duckdb_iceberg import duckdb_with_iceberg

POSITION = pa.decimal128(38, 0)
SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=True),
    NestedField(2, "name", StringType(), required=False),
    NestedField(3, "_floe_position", DecimalType(38, 0), required=False),
    identifier_field_ids=[1],
)


def _rows(ids: list[int], name: str, position: int) -> pa.Table:
    return pa.table(
        {"id": ids, "name": [f"{name}{i}" for i in ids], "_floe_position": [position] * len(ids)},
        schema=SCHEMA.as_arrow(),
    )


def _table(tmp_path) -> Table:
    # A plain path, not a file:// URI: DuckDB's iceberg extension opens only the former.
    catalog = SqlCatalog("d", uri=f"sqlite:///{tmp_path}/c.db", warehouse=str(tmp_path / "wh"))
    catalog.create_namespace("ns")
    table = catalog.create_table(("ns", "t"), schema=SCHEMA)
    for first in (0, 100, 200):
        table.append(_rows(list(range(first, first + 100)), "v", 1))
    return table


def _row_delta(table: Table, index: KeyIndex, upserts: pa.Table, deletes: list[int], snapshot: str) -> None:
    """Replace *upserts*' stored rows and delete *deletes*, in one commit; advance the index."""
    keys = upserts.select(["id"])
    changed = pa.concat_tables([keys, pa.table({"id": pa.array(deletes, pa.int64())}).cast(keys.schema)])
    located = index.locate(changed)
    data_files = {task.file.file_path: task.file for task in table.scan().plan_files()}
    by_file: dict[str, list[int]] = {}
    for path, pos in zip(located.file, located.pos.tolist(), strict=True):
        by_file.setdefault(path, []).append(pos)
    with table.transaction() as tx:
        delta = RowDelta(tx, {"floe.test": snapshot})
        deletes = {data_files[path]: positions for path, positions in by_file.items()}
        delta.add_position_deletes(write_position_deletes(tx, deletes), list(deletes))
        added = write_data_files(tx.table_metadata, table.io, upserts)
        for data_file in added:
            delta.append_data_file(data_file)
        delta.commit()
    assert len(added) == 1
    index.advance(located.entry, [(added[0], upserts)], table.current_snapshot().snapshot_id)


def _expected(rows: dict[int, str]) -> list[tuple[int, str]]:
    return sorted(rows.items())


def _assert_readers_agree(table: Table, duckdb: DuckDBPyConnection, expected: dict[int, str]) -> None:
    read = table.scan().to_arrow()
    assert sorted(zip(read["id"].to_pylist(), read["name"].to_pylist(), strict=True)) == _expected(expected)
    rows = duckdb.execute(f"SELECT id, name FROM iceberg_scan('{table.metadata_location}')").fetchall()
    assert sorted(rows) == _expected(expected)


def test_row_deltas_read_the_same_through_pyiceberg_and_duckdb(tmp_path):
    table = _table(tmp_path)
    index = KeyIndex.build(table, ["id"], "_floe_position")
    expected = {i: f"v{i}" for i in range(300)}
    duckdb = duckdb_with_iceberg(tmp_path)

    _row_delta(table, index, _rows([5, 150, 250, 300], "u", 2), [7, 299], "first")
    expected.update({5: "u5", 150: "u150", 250: "u250", 300: "u300"})
    del expected[7], expected[299]
    summary = table.current_snapshot().summary
    assert summary["floe.test"] == "first" and summary["added-position-deletes"] == "5"
    _assert_readers_agree(table, duckdb, expected)

    # On top: rows of the file the first delta wrote, and of an old file.
    _row_delta(table, index, _rows([5, 300, 6], "w", 3), [150], "second")
    expected.update({5: "w5", 300: "w300", 6: "w6"})
    del expected[150]
    _assert_readers_agree(table, duckdb, expected)
    assert len(index) == len(expected)

    rebuilt = KeyIndex.build(table, ["id"], "_floe_position")
    probe = pa.table({"id": pa.array(sorted(expected), pa.int64())})
    a, b = index.locate(probe), rebuilt.locate(probe)
    assert sorted(zip(a.incoming.tolist(), a.file, a.pos.tolist(), strict=True)) == sorted(
        zip(b.incoming.tolist(), b.file, b.pos.tolist(), strict=True)
    )

    # pyiceberg's own later commits keep the delete files.
    table.append(_rows([1000], "a", 4))
    expected[1000] = "a1000"
    _assert_readers_agree(table, duckdb, expected)


def test_a_row_delta_built_on_a_snapshot_that_moved_is_refused(tmp_path):
    table = _table(tmp_path)
    index = KeyIndex.build(table, ["id"], "_floe_position")
    located = index.locate(pa.table({"id": pa.array([5], pa.int64())}))
    target = next(task.file for task in table.scan().plan_files() if task.file.file_path == located.file[0])
    stale = transaction(table)
    delta = RowDelta(stale, {})
    delta.add_position_deletes(write_position_deletes(stale, {target: located.pos.tolist()}), [target])
    # Another writer (its own table object, as another process would have) removes that file.
    table.catalog.load_table(("ns", "t")).delete("id < 100")
    with pytest.raises(CommitFailedException):
        delta.commit()
        stale.commit_transaction()
    assert table.catalog.load_table(("ns", "t")).scan().to_arrow().num_rows == 200


def _append(tx, ids: list[int], name: str) -> None:
    with tx.update_snapshot().fast_append() as update:
        for data_file in write_data_files(tx.table_metadata, tx._table.io, _rows(ids, name, 2)):
            update.append_data_file(data_file)


def test_floes_commits_are_never_retried_and_other_writers_keep_their_retries(tmp_path):
    """A Floe commit is valid only on the snapshot it was planned on; the table carries no
    property that would take pyiceberg's (or Java's) commit retries from other writers."""
    table = _table(tmp_path)
    other = table.catalog.load_table(("ns", "t"))
    floe = transaction(table)
    _append(floe, [1000], "floe")
    other.append(_rows([2000], "other", 2))
    with pytest.raises(CommitFailedException):
        floe.commit_transaction()
    ids = table.catalog.load_table(("ns", "t")).scan().to_arrow()["id"].to_pylist()
    assert 1000 not in ids and 2000 in ids

    # The same race through pyiceberg's own transaction, as another writer of the table commits.
    stale = table.transaction()
    _append(stale, [3000], "retried")
    other.append(_rows([4000], "other", 2))
    stale.commit_transaction()
    ids = table.catalog.load_table(("ns", "t")).scan().to_arrow()["id"].to_pylist()
    assert {2000, 3000, 4000} <= set(ids)


def test_position_delete_paths_are_plain_strings(tmp_path):
    """iceberg-rust refuses position delete files whose file_path is an Arrow large_string."""
    table = _table(tmp_path)
    target = next(iter(table.scan().plan_files())).file
    with table.transaction() as tx:
        written = write_position_deletes(tx, {target: [3, 1]})
    schema = pq.read_schema(written.file_path.removeprefix("file://"))
    assert schema.field("file_path").type == pa.string()
    assert pq.read_table(written.file_path.removeprefix("file://"))["pos"].to_pylist() == [1, 3]
