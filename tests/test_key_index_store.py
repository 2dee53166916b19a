"""Key indexes caught up and kept between runs: whatever was committed after the snapshot an
index describes (merges, ``maintain``'s rewrites, a rollback), the caught-up index equals one
built afresh from the table, entry for entry."""

from __future__ import annotations

import logging
import stat

import pytest

from floe_cdc.core.config import load_config
from floe_cdc.lake import key_index
from floe_cdc.lake.key_index import KeyIndex, applied_deletes
from floe_cdc.lake.key_index_store import index_path, read_index, write_index
from floe_cdc.lake.maintenance import maintain_table
from floe_cdc.lake.pyiceberg_adapter import live_files
from floe_cdc.lake.schema import POSITION_FIELD
from floe_cdc.pipeline import replication
from floe_cdc.pipeline.replication import Replicator
from tests.test_maintenance import EAGER, _batches, _catalog, _merge_all
from tests.test_replicator import _insert, _merge, columns


def _entries(index: KeyIndex) -> set[tuple]:
    """Each live entry (key, data file, row position), and the newest source position of each
    file that holds one."""
    state = index.state()
    codes, files, positions = state.live()
    entries = {
        (int(code), state.files[file], int(pos))
        for code, file, pos in zip(codes, files, positions, strict=True)
    }
    return entries | {(state.files[file], state.newest[file]) for file in set(files.tolist())}


def _load(catalog):
    return catalog.load_table(("ns", "items"))


@pytest.mark.parametrize("version", [2, 3])
@pytest.mark.parametrize("then", ["merges", "maintain", "rollback"])
def test_an_index_caught_up_from_an_older_snapshot_equals_a_fresh_one(tmp_path, then, version):
    """On v3 a merge replaces a data file's deletion vector: the catch-up reads the new vector,
    not the data file, unless the new vector lost rows (a rollback)."""
    catalog = _catalog(tmp_path)
    catalog.create_namespace("ns")
    batches = _batches(9, 200, seed=3)
    _merge_all(catalog, batches[:3], format_version=version)
    earlier = _load(catalog).current_snapshot().snapshot_id
    _merge_all(catalog, batches[:5])
    table = _load(catalog)
    index = KeyIndex.build(table, ["id"], POSITION_FIELD)
    applied = applied_deletes(live_files(table.metadata, table.io))
    assert any(applied.values())  # the merges left position deletes for the catch-up to keep
    saved = tmp_path / "index.arrow"
    write_index(index.state(), applied, saved)

    if then == "merges":  # new data files, and new delete files on the files the index knows
        _merge_all(catalog, batches)
    elif then == "maintain":  # files rewritten, delete files retired
        maintain_table(_load(catalog), "items", EAGER)
        _merge_all(catalog, batches[:7])
    else:  # rows the index saw deleted come back
        _load(catalog).manage_snapshots().set_current_snapshot(earlier).commit()
    table = _load(catalog)

    fresh = KeyIndex.build(table, ["id"], POSITION_FIELD)
    known = set(index.files)
    whole, _ = index.catch_up(table, applied)
    if then == "merges":  # only the merges' new data files are read whole
        assert whole == len(
            [t for t in live_files(table.metadata, table.io) if t.file.file_path not in known]
        )
    restored = read_index(table, ["id"], POSITION_FIELD, saved)
    assert index.snapshot_id == restored.snapshot_id == table.current_snapshot().snapshot_id
    assert _entries(index) == _entries(restored) == _entries(fresh)
    assert len(fresh) == len(table.scan().to_arrow())


def test_a_damaged_or_foreign_file_is_ignored(tmp_path, caplog):
    catalog = _catalog(tmp_path)
    catalog.create_namespace("ns")
    _merge_all(catalog, _batches(2, 100, seed=4))
    table = _load(catalog)
    index = KeyIndex.build(table, ["id"], POSITION_FIELD)
    saved = tmp_path / "index.arrow"
    write_index(index.state(), applied_deletes(live_files(table.metadata, table.io)), saved)
    assert read_index(table, ["id", "name"], POSITION_FIELD, saved) is None  # for another key
    saved.write_bytes(saved.read_bytes()[:200])
    with caplog.at_level(logging.WARNING, logger="floe.key_index"):
        assert read_index(table, ["id"], POSITION_FIELD, saved) is None
    assert "is not usable" in caplog.text and "building it from the table" in caplog.text
    assert read_index(table, ["id"], POSITION_FIELD, tmp_path / "none.arrow") is None


def test_a_replicator_saves_its_indexes_when_it_stops_and_the_next_one_reads_on_from_them(
    shop_config, tmp_path, caplog, monkeypatch
):
    """The next replicator, in a new process (no index in memory), restores the index from disk
    (on its thread, as a stream opening does) and catches it up with what another writer committed
    in between."""
    config = load_config(shop_config("fail"))
    settings = config.replicate.model_copy(
        update={"index_dir": str(tmp_path / "indexes"), "index_save_rows": 1}
    )
    config = config.model_copy(update={"replicate": settings})
    monkeypatch.setattr(replication, "_KEY_INDEXES", {})
    with Replicator(config, column_lookup=columns) as first:
        for offset in range(3):
            _merge(first, _insert(offset, offset, offset))
        saved = index_path(tmp_path / "indexes", first.table("items"))
    assert stat.S_IMODE(saved.stat().st_mode) == 0o600
    assert stat.S_IMODE(saved.parent.stat().st_mode) == 0o700

    monkeypatch.setattr(replication, "_KEY_INDEXES", {})
    with Replicator(config, column_lookup=columns) as second:
        second.load("items").delete("id = 1")  # another writer, after the save
        with caplog.at_level(logging.INFO, logger="floe.key_index"):
            second.load("items")
            second.prefetch_indexes()  # as a stream does when it opens, before its first changes
            _merge(second, _insert(3, 2, 20), _insert(4, 1, 10))
        assert "key index of items restored from disk: 2 rows in " in caplog.text
        assert _entries(second.indexes["items"]) == _entries(
            KeyIndex.build(second.load("items"), ["id"], POSITION_FIELD)
        )
        table = second.load("items")
        assert sorted(table.scan().to_arrow().select(["id", "code"]).to_pylist(), key=lambda r: r["id"]) == [
            {"id": 0, "code": 0},
            {"id": 1, "code": 10},
            {"id": 2, "code": 20},
        ]


def test_a_replicator_over_its_index_budget_lets_go_of_older_indexes_and_maps_its_own(
    shop_config, tmp_path, caplog, monkeypatch
):
    """``replicate.index_memory_mb``: the index of the table merged longest ago is saved and let
    go first; the table being merged keeps its index, its long runs memory-mapped."""
    config = load_config(shop_config("fail"))
    settings = config.replicate.model_copy(
        update={"index_dir": str(tmp_path / "indexes"), "index_save_rows": 1, "index_memory_mb": 1e-6}
    )
    config = config.model_copy(update={"replicate": settings})
    monkeypatch.setattr(replication, "_KEY_INDEXES", {})
    monkeypatch.setattr(key_index, "SPILL_ENTRIES", 1)
    with Replicator(config, column_lookup=columns) as replicator:
        _merge(replicator, _insert(0, 0, 0), _insert(1, 1, 10))
        table = replicator.catalog.load_table("ns.items")  # as of now: another table, merged before
        replicator.indexes["older"] = KeyIndex.build(table, ["id"], POSITION_FIELD)
        replicator._tables["older"] = table
        with caplog.at_level(logging.INFO, logger="floe.replication"):
            _merge(replicator, _insert(2, 2, 20))
        assert "older" not in replicator.indexes and index_path(tmp_path / "indexes", table).exists()
        index = replicator.indexes["items"]
        assert index.memory_bytes < index.nbytes
        assert _entries(index) == _entries(KeyIndex.build(replicator.load("items"), ["id"], POSITION_FIELD))
    assert "key index of older let go" in caplog.text and "memory-mapped from" in caplog.text
