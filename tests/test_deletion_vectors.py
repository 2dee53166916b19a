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
from floe_cdc.lake import merge
from floe_cdc.lake.deletion_vectors import (
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


def test_merges_on_a_v3_table_keep_one_vector_per_data_file_and_every_row_id(catalog):
    reads = [("r", {"id": i, "name": f"n{i}", "price": Decimal(i)}) for i in range(200)]
    model = {i: f"n{i}" for i in range(200)}
    batch = make_batch("items", ["id"], ITEMS, reads)
    create_table(catalog, "ns", batch, format_version=3)
    indexes: dict = {}
    table, _ = apply(catalog, batch, indexes=indexes)
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
