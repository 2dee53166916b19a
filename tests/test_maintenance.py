"""Maintenance against real pyiceberg tables (SQLite catalog): rewrites keep every row, retire
delete files, keep Floe's checkpoint, and stay correct while merges commit at the same time."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pyarrow as pa
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.manifest import DataFileContent, ManifestContent, ManifestEntryStatus

from floe_cdc.core.changes import OP_COLUMN, Column
from floe_cdc.core.config import MaintainConfig
from floe_cdc.lake.checkpoint import read_checkpoint
from floe_cdc.lake.maintenance import expire_snapshots, maintain_table, plan_rewrite, remove_orphan_files
from floe_cdc.lake.merge import Compaction, ConcurrentWriteError, merge_batch
from floe_cdc.lake.pyiceberg_adapter import MERGE_MANIFESTS_AT
from floe_cdc.lake.schema import create_table
from tests.batches import make_batch
from tests.duckdb_iceberg import duckdb_with_iceberg
from tests.test_merge import rows

COLUMNS = [Column("id", pa.int64(), False, "INT8"), Column("name", pa.string())]
# Every rewrite and expiry applies at once: the tests' tables are tiny and young.
EAGER = MaintainConfig(
    target_file_size_mb=8,
    delete_ratio=0.05,
    min_small_files=2,
    snapshot_retention_hours=0,
    orphan_min_age_hours=0,
)
# The same, with every snapshot and file kept: each step of a test stays readable.
KEEP_HISTORY = EAGER.model_copy(update={"snapshot_retention_hours": 1000, "orphan_min_age_hours": 1000})


def _catalog(tmp_path: Path) -> SqlCatalog:
    # A plain warehouse path, not a file:// URI: DuckDB's iceberg extension opens only the former.
    return SqlCatalog("m", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=str(tmp_path / "wh"))


def _batches(count: int, size: int, seed: int) -> list:
    """*count* batches of inserts, updates and deletes of random keys, positions increasing."""
    rng = random.Random(seed)
    batches, step = [], 0
    for number in range(count):
        events = []
        for _ in range(size):
            key = rng.randrange(size * 2)
            op = "d" if rng.random() < 0.2 else "u"
            events.append((op, {"id": key, "name": f"b{number}-{key}"}))
        batches.append(make_batch("items", ["id"], COLUMNS, events, offset=step))
        step += size
    return batches


def _model(batches: list) -> list[dict]:
    state: dict[int, str] = {}
    for batch in batches:
        for row in batch.data.select(["id", "name", OP_COLUMN]).to_pylist():
            if row[OP_COLUMN] == "d":
                state.pop(row["id"], None)
            else:
                state[row["id"]] = row["name"]
    return [{"id": k, "name": v} for k, v in sorted(state.items())]


def _merge_all(
    catalog: SqlCatalog, batches: list, compaction: Compaction | None = None, format_version: int = 2
) -> None:
    """Merge each batch as a replicate cycle would: from the table's checkpoint, again after a
    lost race (the batch is read again from the offsets in the table); *compaction* rewrites worn
    files in passing; a new table is of Iceberg *format_version*."""
    indexes: dict = {}
    done = 0
    while done < len(batches):
        table = catalog.load_table(("ns", "items")) if catalog.table_exists(("ns", "items")) else None
        table = table or create_table(catalog, "ns", batches[0], format_version)
        checkpoint = read_checkpoint(table)
        done = checkpoint.offsets.get("topic.items", {}).get(0, 0) // len(batches[0].data)
        if done == len(batches):
            return
        try:
            merge_batch(table, batches[done], checkpoint, indexes, compaction)
        except ConcurrentWriteError:
            continue


def _delete_files(table) -> int:
    return sum(len(task.delete_files) for task in table.scan().plan_files())


def test_maintain_rewrites_files_with_deletes_and_keeps_rows_and_checkpoint(tmp_path):
    catalog = _catalog(tmp_path)
    catalog.create_namespace("ns")
    batches = _batches(6, 200, seed=1)
    _merge_all(catalog, batches)
    table = catalog.load_table(("ns", "items"))
    before = read_checkpoint(table)
    assert _delete_files(table) > 0 and len(list(table.scan().plan_files())) == 6

    result = maintain_table(table, "items", EAGER)

    table = catalog.load_table(("ns", "items"))
    assert rows(table) == _model(batches)
    assert _delete_files(table) == 0
    assert len(list(table.scan().plan_files())) == 1
    assert result.files_rewritten == 6 and result.files_written == 1 and result.delete_files_removed > 0
    assert table.current_snapshot().summary.operation.value == "replace"
    after = read_checkpoint(table)
    assert (after.offsets, after.watermarks, after.position) == (
        before.offsets,
        before.watermarks,
        before.position,
    )
    assert plan_rewrite(table, EAGER) == []
    with duckdb_with_iceberg(tmp_path) as duckdb:
        scanned = duckdb.execute(f"SELECT id, name FROM iceberg_scan('{table.metadata_location}')").fetchall()
    assert sorted(scanned) == [(r["id"], r["name"]) for r in _model(batches)]

    more = _batches(8, 200, seed=1)  # the same stream, two batches further
    _merge_all(catalog, more)
    assert rows(catalog.load_table(("ns", "items"))) == _model(more)


def _live_delete_files(table) -> set[str]:
    return {
        entry.data_file.file_path
        for manifest in table.current_snapshot().manifests(table.io)
        if manifest.content == ManifestContent.DELETES
        for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True)
    }


def test_removed_files_are_recorded_deleted_once_and_never_carried(tmp_path):
    """Iceberg's snapshot expiry (Java's, which Spark and Trino call) deletes from storage only
    the files a manifest records as DELETED, delete files included; a manifest of nothing but
    DELETED entries belongs to the snapshot that removed them, not to the ones after it."""
    catalog = _catalog(tmp_path)
    catalog.create_namespace("ns")
    batches = _batches(10, 200, seed=4)
    # Merges that rewrite worn files in passing (one commit removing files after another), then
    # merges that leave position deletes for maintain to retire.
    _merge_all(catalog, batches[:6], Compaction(delete_ratio=0.05, rows_per_change=10))
    _merge_all(catalog, batches)
    table = catalog.load_table(("ns", "items"))
    before = _live_delete_files(table)
    assert maintain_table(table, "items", KEEP_HISTORY).delete_files_removed > 0
    table = catalog.load_table(("ns", "items"))
    retired = before - _live_delete_files(table)
    assert retired and rows(table) == _model(batches)

    recorded: set[str] = set()
    removing = 0
    for snapshot in table.snapshots():
        for manifest in snapshot.manifests(table.io):
            entries = manifest.fetch_manifest_entry(table.io, discard_deleted=False)
            gone = [entry for entry in entries if entry.status == ManifestEntryStatus.DELETED]
            if manifest.added_snapshot_id != snapshot.snapshot_id:
                assert not gone, (
                    f"snapshot {snapshot.snapshot_id} carries an older snapshot's deleted entries"
                )
            removing += bool(gone)
            recorded |= {
                entry.data_file.file_path
                for entry in gone
                if entry.data_file.content == DataFileContent.POSITION_DELETES
                and manifest.content == ManifestContent.DELETES
            }
    assert removing > 2  # the merges' rewrites in passing, and maintain's
    assert retired <= recorded


def test_expiry_keeps_the_chain_back_to_floes_checkpoint_and_orphans_go(tmp_path):
    catalog = _catalog(tmp_path)
    catalog.create_namespace("ns")
    batches = _batches(4, 100, seed=2)
    _merge_all(catalog, batches)
    table = catalog.load_table(("ns", "items"))
    checkpoint = read_checkpoint(table)
    maintain_table(table, "items", EAGER.model_copy(update={"orphan_min_age_hours": 1}))
    table = catalog.load_table(("ns", "items"))
    # The rewrite's snapshot carries no offsets: its parent, which does, is kept.
    assert [s.snapshot_id for s in table.metadata.snapshots] == [
        checkpoint.snapshot_id,
        table.current_snapshot().snapshot_id,
    ]
    assert read_checkpoint(table).offsets == checkpoint.offsets
    assert expire_snapshots(table, EAGER) == 0

    files_before = {p for p in (tmp_path / "wh").rglob("*") if p.suffix in (".parquet", ".avro")}
    stray = tmp_path / "wh" / "ns" / "items" / "data" / "in-flight.parquet"
    stray.write_bytes(b"a file a writer is about to commit")
    assert remove_orphan_files(table, 1) == 0  # nothing is old enough
    removed = remove_orphan_files(table, 0)
    files_after = {p for p in (tmp_path / "wh").rglob("*") if p.suffix in (".parquet", ".avro")}
    assert removed == len(files_before | {stray}) - len(files_after) > 0
    assert not stray.exists()
    assert rows(catalog.load_table(("ns", "items"))) == _model(batches)


def test_maintain_while_merges_commit_loses_no_change_and_duplicates_no_row(tmp_path):
    _catalog(tmp_path).create_namespace("ns")
    batches = _batches(30, 150, seed=3)
    _merge_all(_catalog(tmp_path), batches[:2])
    failures: list[BaseException] = []
    rewritten: list[int] = []
    stop = threading.Event()

    def maintain_repeatedly() -> None:
        # Its own catalog, as a separate maintain run would have.
        catalog = _catalog(tmp_path)
        settings = EAGER.model_copy(update={"orphan_min_age_hours": 1})
        try:
            while not stop.is_set():
                result = maintain_table(catalog.load_table(("ns", "items")), "items", settings)
                rewritten.append(result.files_rewritten)
        except BaseException as exc:
            failures.append(exc)

    maintainer = threading.Thread(target=maintain_repeatedly)
    maintainer.start()
    try:
        _merge_all(_catalog(tmp_path), batches[:15])
        # On a busy machine the merges could all come before the first rewrite: half of them
        # wait for one, the other half race the rewrites that follow.
        deadline = time.monotonic() + 60
        while not any(rewritten) and not failures and time.monotonic() < deadline:
            time.sleep(0.05)
        _merge_all(_catalog(tmp_path), batches)
    finally:
        stop.set()
        maintainer.join()
    assert failures == []
    table = _catalog(tmp_path).load_table(("ns", "items"))
    assert rows(table) == _model(batches)
    assert sum(rewritten) > 0
    assert read_checkpoint(table).offsets == {"topic.items": {0: 30 * 150}}


def test_a_table_committed_often_keeps_few_manifests_and_reads_the_same(tmp_path):
    """Each merge adds a data and a delete manifest; small ones are merged once there are
    MERGE_MANIFESTS_AT of a kind, so readers and later commits open few. Sequence numbers survive
    the merging: pyiceberg and DuckDB read the model's rows."""
    catalog = _catalog(tmp_path)
    catalog.create_namespace("ns")
    batches = _batches(3 * MERGE_MANIFESTS_AT, 40, seed=3)
    _merge_all(catalog, batches)
    table = catalog.load_table(("ns", "items"))
    manifests = table.current_snapshot().manifests(table.io)
    for content in (ManifestContent.DATA, ManifestContent.DELETES):
        assert 0 < len([m for m in manifests if m.content == content]) <= MERGE_MANIFESTS_AT
    assert rows(table) == _model(batches)
    with duckdb_with_iceberg(tmp_path) as duckdb:
        scanned = duckdb.execute(f"SELECT id, name FROM iceberg_scan('{table.metadata_location}')").fetchall()
    assert sorted(scanned) == [(r["id"], r["name"]) for r in _model(batches)]


def test_older_snapshots_are_thinned_to_one_per_span(tmp_path):
    """Recent snapshots all stay; older ones within the retention, the newest of each span."""
    catalog = _catalog(tmp_path)
    catalog.create_namespace("ns")
    batches = _batches(10, 20, seed=4)
    for count in range(1, len(batches) + 1):
        _merge_all(catalog, batches[:count])
        time.sleep(0.2)
    table = catalog.load_table(("ns", "items"))
    checkpoint = read_checkpoint(table)
    before = {s.snapshot_id: s.timestamp_ms for s in table.metadata.snapshots}
    settings = MaintainConfig(snapshot_recent_minutes=0.5 / 60, snapshot_spacing_minutes=1 / 60)
    recent = time.time() * 1000 - 500

    expired = expire_snapshots(table, settings)

    table = catalog.load_table(("ns", "items"))
    kept = {s.snapshot_id: s.timestamp_ms for s in table.metadata.snapshots}
    assert expired == len(before) - len(kept) > 0
    spans: dict[int, list[int]] = {}
    for stamp in before.values():
        spans.setdefault(int(stamp // 1000), []).append(stamp)
    older = [stamps for span, stamps in spans.items() if (span + 1) * 1000 < recent - 100]
    assert older  # spans wholly before the recent ones (clear of the moment the expiry drew its line)
    for stamps in older:
        assert [s for s in stamps if s in kept.values()] == [max(stamps)]
    assert read_checkpoint(table).offsets == checkpoint.offsets
    assert rows(table) == _model(batches)
