"""One engine of the merge benchmark in a process of its own, so that its peak memory is its own.

    python -m bench.merge_worker '<json arguments>'

Run twice per engine: ``"phase": "load"`` loads the initial table; then, in a new process (so
that what loading left in memory does not count), the table is opened, the peak-RSS mark reset,
and the batches applied; it prints one JSON line: seconds per batch, bytes written, peak RSS.
The first ``warmup`` batches are applied but not timed: a process's first writes open its
connections to the object store (about 25 ms of CPU each in the S3 client here, and a partitioned
merge writes to a dozen at once), which a replicator pays once, not per batch.
For Floe the key index is built (and timed) after the reset, so that its memory counts; it is
then kept between batches, as a following replicator keeps it.
"""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.expressions import EqualTo, In
from pyiceberg.manifest import ManifestEntryStatus
from pyiceberg.table import Table
from pyiceberg.table.snapshots import Snapshot

from bench.workload import DATA_SCHEMA, Changes, change_batches, initial_batch, initial_files
from floe_cdc.core.changes import ChangeBatch
from floe_cdc.core.config import MaintainConfig, ReplicateConfig
from floe_cdc.lake.checkpoint import read_checkpoint
from floe_cdc.lake.file_io import FILE_IO
from floe_cdc.lake.key_index import KeyIndex
from floe_cdc.lake.maintenance import maintain_table
from floe_cdc.lake.merge import Compaction, merge_batch
from floe_cdc.lake.pyiceberg_adapter import live_files, manifest_entries, snapshot_manifests
from floe_cdc.lake.schema import POSITION_FIELD, create_table

NAMESPACE = "bench"


def _peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _reset_peak_rss() -> None:
    gc.collect()
    pa.default_memory_pool().release_unused()
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the peak RSS mark starts again from now


class FloeEngine:
    """Floe's merge as replicate runs it: a key index kept between batches, and worn files
    rewritten in passing with the default settings."""

    def __init__(
        self, catalog: Catalog, name: str, format_version: int = 2, partition_by: list[str] | None = None
    ) -> None:
        self.catalog, self.name, self.table, self.indexes = catalog, name, None, {}
        self.offset, self.format_version, self.partition_by = 0, format_version, partition_by

    def load(self, changes: Changes) -> None:
        self.apply(self.receive(changes))

    def open(self, loaded_rows: int) -> None:
        """The table another process loaded with *loaded_rows* rows (one change each)."""
        self.table = self.catalog.load_table((NAMESPACE, self.name))
        self.offset = loaded_rows

    def prepare(self) -> float:
        self.indexes.clear()
        _reset_peak_rss()
        began = time.perf_counter()
        self.indexes[self.name] = KeyIndex.build(self.table, ["id"], POSITION_FIELD)
        return time.perf_counter() - began

    def receive(self, changes: Changes) -> ChangeBatch:
        """The batch as the decoder hands it to the merge (not timed: decoding is not merging)."""
        batch = changes.change_batch(self.name, self.offset)
        self.offset += len(changes.ops)
        return batch

    def apply(self, batch: ChangeBatch) -> None:
        if self.table is None:
            self.table = create_table(
                self.catalog, NAMESPACE, batch, self.format_version, partition_by=self.partition_by
            )
        # Compaction in passing as replicate does it by default.
        merge_batch(
            self.table, batch, read_checkpoint(self.table), self.indexes, Compaction.of(ReplicateConfig())
        )


class _Upsert:
    def __init__(self, catalog: Catalog, name: str) -> None:
        self.catalog, self.name, self.table = catalog, name, None

    def open(self, loaded_rows: int) -> None:
        self.table = self.catalog.load_table((NAMESPACE, self.name))

    def load(self, changes: Changes) -> None:
        if self.table is None:
            self.table = self.catalog.create_table((NAMESPACE, self.name), schema=DATA_SCHEMA)
            with self.table.update_schema() as update:
                update.set_identifier_fields("id")
        self.table.append(changes.upserts)

    def prepare(self) -> float:
        _reset_peak_rss()
        return 0.0

    def receive(self, changes: Changes) -> Changes:
        return changes

    def apply(self, changes: Changes) -> None:
        # pyiceberg needs two commits: the upsert, then the delete.
        self.table.upsert(changes.upserts, join_cols=["id"])
        self.table.delete(In("id", changes.deletes.tolist()))


def run(arguments: dict[str, Any]) -> dict[str, Any]:
    properties = arguments["catalog"]
    if arguments["engine"] == "floe":  # the catalog as Floe opens it (pyiceberg's upsert: as pyiceberg does)
        properties = {**FILE_IO, **properties}
    catalog = load_catalog("bench", **properties)
    catalog.create_namespace_if_not_exists(NAMESPACE)
    if arguments["engine"] == "floe":
        engine = FloeEngine(
            catalog,
            arguments["table"],
            format_version=arguments.get("format_version", 2),
            partition_by=arguments.get("partition_by"),
        )
    else:
        engine = _Upsert(catalog, arguments["table"])
    rows, size = arguments["rows"], arguments["batch"]
    if arguments.get("phase") == "load":
        began = time.perf_counter()
        for ids in initial_files(rows, arguments["files"]):
            engine.load(initial_batch(ids))
        return {"load_seconds": round(time.perf_counter() - began, 2)}
    engine.open(rows)
    table = engine.table
    loaded = table.metadata.last_sequence_number
    # Drawn before the peak-RSS mark is reset: drawing random keys of a 100M-row table takes
    # gigabytes (the live ids, sorted), which are the benchmark's, not the merge's.
    warmup = arguments.get("warmup", 0)
    batches = list(change_batches(rows, size, warmup + arguments["batches"], arguments["seed"]))
    prepare_seconds = engine.prepare()
    warmup_seconds: list[float] = []
    seconds: list[float] = []
    changed_bytes = 0
    for number, changes in enumerate(batches):
        changed_bytes += changes.parquet_bytes()
        received = engine.receive(changes)
        began = time.perf_counter()
        engine.apply(received)
        (warmup_seconds if number < warmup else seconds).append(time.perf_counter() - began)
    table = engine.catalog.load_table((NAMESPACE, arguments["table"]))
    merged = [s for s in table.metadata.snapshots if (s.sequence_number or 0) > loaded]
    written = sum(int(s.summary.get("added-files-size") or 0) for s in merged)
    index = getattr(engine, "indexes", {}).get(arguments["table"])
    measured = {
        "index_bytes_per_live_row": round(index.nbytes / len(index), 1) if index else None,
        "index_build_seconds": round(prepare_seconds, 3),
        "warmup_seconds": [round(s, 3) for s in warmup_seconds],
        "seconds_per_batch": [round(s, 3) for s in seconds],
        "events_per_second": round(size * len(seconds) / sum(seconds)),
        "peak_rss_mb": round(_peak_rss_mb()),  # before the lookups: maintain's memory is not the merge's
        "bytes_written": written,
        "changed_bytes": changed_bytes,
        "write_amplification": round(written / changed_bytes, 2),
        "objects_per_batch": round(_objects_written(table, merged) / len(batches), 1),
    }
    if index is not None:
        measured.update(_lookups(catalog, arguments["table"], rows, arguments["seed"]))
    return measured


def _objects_written(table: Table, snapshots: list[Snapshot]) -> int:
    """The objects *snapshots* wrote to the store: their data and delete files (a Puffin file of
    deletion vectors once), their manifests, manifest lists and metadata files. On an object
    store each object has a cost of its own, whatever its size: a partitioned merge writes more
    of them than an unpartitioned one."""
    objects = 0
    for snapshot in snapshots:
        added = [
            m
            for m in snapshot_manifests(table.metadata, table.io, snapshot)
            if m.added_snapshot_id == snapshot.snapshot_id
        ]
        files = {
            entry.data_file.file_path
            for manifest in added
            for entry in manifest_entries(table.io, manifest, table.metadata.format_version)
            if entry.status == ManifestEntryStatus.ADDED and entry.snapshot_id == snapshot.snapshot_id
        }
        # Its manifest list and a metadata file (pyiceberg's upsert commits two or three
        # snapshots with one metadata file: its count is a little high).
        objects += len(files) + len(added) + 2
    return objects


def _lookups(catalog: Catalog, name: str, rows: int, seed: int, count: int = 20) -> dict[str, Any]:
    """What a reader looking up one key opens, once ``floe maintain`` has rewritten the merges'
    files into the table's sort order: the share of the data files a pyiceberg scan filtered on
    one key plans, averaged over *count* keys of the initial rows."""
    table = catalog.load_table((NAMESPACE, name))
    began = time.perf_counter()
    maintain_table(table, name, MaintainConfig(min_small_files=2))
    maintain_seconds = time.perf_counter() - began
    table = catalog.load_table((NAMESPACE, name))
    files = len(live_files(table.metadata, table.io))
    shares = []
    for key in np.random.default_rng(seed).integers(0, rows, count).tolist():
        opened = len(list(table.scan(row_filter=EqualTo("id", key)).plan_files()))
        shares.append(opened / files)
    return {
        "maintain_seconds": round(maintain_seconds, 2),
        "data_files_after_maintain": files,
        "lookup_files_share": round(sum(shares) / len(shares), 3),
    }


if __name__ == "__main__":
    print(json.dumps(run(json.loads(sys.argv[1]))))
