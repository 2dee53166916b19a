"""Iceberg v3 tables: deletion vectors as the spec lays them out (read back by pyiceberg's own
reader), one per data file however many merges touch it, row ids that never change, and the
rows equal to a model. Other engines read these tables in tests/test_interop.py."""

from __future__ import annotations

import itertools
import random
from decimal import Decimal

import numpy as np
import pytest
from pyiceberg.table.deletion_vector import DeletionVector, _extract_vector_payload
from pyiceberg.table.puffin import PuffinFile

from floe_cdc.core.errors import Transient
from floe_cdc.lake import deletion_vectors, merge
from floe_cdc.lake.deletion_vectors import (
    _RecentVectors,
    as_vector,
    blob_vector,
    is_vector,
    read_vector,
    vector_blob,
    vector_positions,
)
from floe_cdc.lake.key_index import KeyIndex
from floe_cdc.lake.merge import Compaction, VectorsRefused
from floe_cdc.lake.pyiceberg_adapter import live_files
from floe_cdc.lake.pyiceberg_v3 import data_file_field
from floe_cdc.lake.schema import POSITION_FIELD, create_table
from tests.batches import make_batch
from tests.test_merge import ITEMS, apply, rows


def test_a_vector_reads_back_through_pyiceberg_and_its_crc_is_checked():
    positions = np.array([5, 1, 3, 2**32 + 7, 2**33 + 1, 9, 3], np.int64)
    blob = vector_blob(as_vector(positions))
    expected = sorted(set(positions.tolist()))
    assert vector_positions(blob_vector(blob)).tolist() == expected
    theirs = DeletionVector("f", DeletionVector._deserialize_bitmap(_extract_vector_payload(blob)))
    assert theirs.to_vector().to_pylist() == expected
    damaged = blob[:10] + bytes([blob[10] ^ 1]) + blob[11:]
    try:
        blob_vector(damaged)
    except ValueError as exc:
        assert "damaged" in str(exc)
    else:
        raise AssertionError("a damaged vector was read")


def _events(rng: random.Random, number: int, keys: int, model: dict[int, str]) -> list[tuple]:
    events = []
    for _ in range(40):
        key = rng.randrange(keys)
        if rng.random() < 0.3:
            events.append(("d", {"id": key}))
            model.pop(key, None)
        else:
            events.append(("u", {"id": key, "name": f"b{number}-{key}", "price": Decimal(key)}))
            model[key] = f"b{number}-{key}"
    return events


def _loaded_v3_table(catalog, count: int) -> tuple:
    """A v3 table of *count* rows, its key indexes and its rows by id (the model to compare with)."""
    reads = [("r", {"id": i, "name": f"n{i}", "price": Decimal(i)}) for i in range(count)]
    batch = make_batch("items", ["id"], ITEMS, reads)
    create_table(catalog, "ns", batch, format_version=3)
    indexes: dict = {}
    table, _ = apply(catalog, batch, indexes=indexes)
    return table, indexes, {i: f"n{i}" for i in range(count)}


def test_merges_on_a_v3_table_keep_one_vector_per_data_file_and_every_row_id(catalog):
    table, indexes, model = _loaded_v3_table(catalog, 200)
    rng, step, ids_of = random.Random(3), 200, {}
    for number in range(8):
        events = _events(rng, number, 260, model)
        table, _ = apply(
            catalog,
            make_batch("items", ["id"], ITEMS, events, offset=step),
            table,
            indexes,
            Compaction(0.6, 1),
        )
        step += len(events)
        tasks = live_files(table.metadata, table.io)
        for task in tasks:
            vectors = [d for d in task.delete_files if is_vector(d)]
            assert len(vectors) <= 1, f"{task.file.file_path} has {len(vectors)} deletion vectors"
            assert all(data_file_field(v, "referenced_data_file") == task.file.file_path for v in vectors)
            first = data_file_field(task.file, "first_row_id")
            assert ids_of.setdefault(task.file.file_path, first) == first, "a data file's row ids changed"
    assert table.metadata.format_version == 3
    assert {r["id"]: r["name"] for r in rows(table)} == model
    assert table.metadata.next_row_id == sum(int(s.added_rows or 0) for s in table.metadata.snapshots)
    starts = sorted(
        (ids_of[t.file.file_path], t.file.record_count) for t in live_files(table.metadata, table.io)
    )
    assert all(a + n <= b for (a, n), (b, _) in itertools.pairwise(starts)), "row ids overlap"
    vector = next(d for t in live_files(table.metadata, table.io) for d in t.delete_files if is_vector(d))
    puffin = PuffinFile(table.io.new_input(vector.file_path).open().read())
    assert {b.type for b in puffin.footer.blobs} == {"deletion-vector-v1"}
    assert len(vector_positions(read_vector(table.io, vector))) == vector.record_count
    rebuilt = KeyIndex.build(table, ["id"], POSITION_FIELD)
    assert len(rebuilt) == len(indexes["items"]) == len(model)


def test_a_merge_reads_from_the_store_no_vector_the_process_wrote_and_the_rows_stay_right(
    catalog, monkeypatch
):
    """Vectors are remembered by their file, offset and length: the merges after the first read
    none back from the object store, and each remembered vector equals the one stored."""
    monkeypatch.setattr(deletion_vectors, "_recent", _RecentVectors(budget=1 << 20))
    table, indexes, model = _loaded_v3_table(catalog, 100)
    opened: list[str] = []
    new_input = type(table.io).new_input

    def counting(io, location):
        opened.append(location)
        return new_input(io, location)

    monkeypatch.setattr(type(table.io), "new_input", counting)
    rng, step = random.Random(5), 100
    for number in range(5):
        events = _events(rng, number, 120, model)
        table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, events, offset=step), table, indexes)
        step += len(events)
    assert not [path for path in opened if path.endswith(".puffin")]
    assert {r["id"]: r["name"] for r in rows(table)} == model
    vectors = [d for t in live_files(table.metadata, table.io) for d in t.delete_files if is_vector(d)]
    remembered = [vector_positions(read_vector(table.io, v)).tolist() for v in vectors]
    opened.clear()  # the scan above read them with pyiceberg's reader
    monkeypatch.setattr(deletion_vectors, "_recent", _RecentVectors(budget=1 << 20))
    assert remembered == [vector_positions(read_vector(table.io, v)).tolist() for v in vectors]
    assert len([path for path in opened if path.endswith(".puffin")]) == len(vectors)


def test_remembered_vectors_stay_within_their_budget_oldest_out_first():
    recent = _RecentVectors(budget=10)
    first, second, third = as_vector(np.array([1])), as_vector(np.array([2])), as_vector(np.array([3]))
    recent.put("a#0+4", first, 4)
    recent.put("b#0+4", second, 4)
    assert recent.get("a#0+4") is first  # now the most recent
    recent.put("c#0+4", third, 4)
    assert recent.get("b#0+4") is None and recent.get("a#0+4") is first and recent.get("c#0+4") is third
    assert recent.size == 8


def test_a_snapshot_summary_counts_a_vector_by_its_blob_and_as_a_dv_as_java_does(catalog):
    first = make_batch("items", ["id"], ITEMS, [("r", {"id": i}) for i in range(10)])
    create_table(catalog, "ns", first, format_version=3)
    indexes: dict = {}
    table, _ = apply(catalog, first, indexes=indexes)
    deleted = [("d", {"id": 1}), ("d", {"id": 2})]
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, deleted, offset=10), table, indexes)
    (vector,) = [d for t in live_files(table.metadata, table.io) for d in t.delete_files]
    blob = data_file_field(vector, "content_size_in_bytes")
    assert vector.file_size_in_bytes > blob  # the Puffin file holds a footer too
    summary = table.metadata.current_snapshot().summary
    assert summary["added-files-size"] == str(blob) and summary["added-dvs"] == "1"
    assert "added-position-delete-files" not in summary.additional_properties
    assert summary["added-delete-files"] == "1" and summary["added-position-deletes"] == "2"
    table, _ = apply(
        catalog, make_batch("items", ["id"], ITEMS, [("d", {"id": 3})], offset=12), table, indexes
    )
    summary = table.metadata.current_snapshot().summary
    assert summary["removed-dvs"] == "1" and summary["removed-files-size"] == str(blob)
    (newer,) = [d for t in live_files(table.metadata, table.io) for d in t.delete_files]
    assert summary["total-delete-files"] == "1" and summary["total-position-deletes"] == "3"
    data = sum(t.file.file_size_in_bytes for t in live_files(table.metadata, table.io))
    assert summary["total-files-size"] == str(data + data_file_field(newer, "content_size_in_bytes"))


def test_a_puffin_file_is_retired_whole_never_in_part(catalog):
    """Iceberg's snapshot expiry deletes a Puffin file by path once an expired snapshot records
    one of its vectors as deleted: a commit that replaces one vector of a Puffin file writes the
    others again, so that no live vector is left in a file a manifest records as deleted."""
    first = make_batch("items", ["id"], ITEMS, [("r", {"id": i}) for i in range(0, 10)])
    create_table(catalog, "ns", first, format_version=3)
    indexes: dict = {}
    table, _ = apply(catalog, first, indexes=indexes)
    table, _ = apply(
        catalog, make_batch("items", ["id"], ITEMS, [("c", {"id": 100})], offset=10), table, indexes
    )
    # Rows deleted from both data files: one Puffin file, two vectors.
    both = [("d", {"id": 1}), ("d", {"id": 100})]
    table, _ = apply(catalog, make_batch("items", ["id"], ITEMS, both, offset=11), table, indexes)
    shared = {d.file_path for t in live_files(table.metadata, table.io) for d in t.delete_files}
    assert len(shared) == 1
    # A row deleted from one of them: its vector replaced, and the other one's written again.
    table, _ = apply(
        catalog, make_batch("items", ["id"], ITEMS, [("d", {"id": 2})], offset=13), table, indexes
    )
    vectors = [d for t in live_files(table.metadata, table.io) for d in t.delete_files]
    assert len(vectors) == 2 and not shared & {v.file_path for v in vectors}
    assert sorted(vector_positions(read_vector(table.io, v)).tolist() for v in vectors) == [[0], [1, 2]]
    assert sorted(r["id"] for r in rows(table)) == [0, *range(3, 10)]


def test_a_store_that_refuses_puffin_files_stops_the_table_with_the_fix(catalog, monkeypatch):
    """SeaweedFS's table buckets answer ACCESS_DENIED for a Puffin file: not a store that went
    away (retried for ever) but a table that cannot be v3 there."""
    first = make_batch("items", ["id"], ITEMS, [("r", {"id": i}) for i in range(3)])
    create_table(catalog, "ns", first, format_version=3)
    table, _ = apply(catalog, first, indexes={})

    def refuse(*_args, **_kwargs):
        raise OSError(
            "When getting information for key 'x.puffin': AWS Error ACCESS_DENIED during HeadObject"
        )

    monkeypatch.setattr(merge, "write_vectors", refuse)
    with pytest.raises(VectorsRefused, match=r"table items: .*format_version: 2") as raised:
        apply(catalog, make_batch("items", ["id"], ITEMS, [("d", {"id": 1})], offset=3), table)
    assert not isinstance(raised.value, Transient)
    assert sorted(r["id"] for r in rows(catalog.load_table(("ns", "items")))) == [0, 1, 2]
