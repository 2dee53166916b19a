"""Table maintenance: rewrite files with many deletes, compact small files, expire snapshots and
remove files no snapshot needs.

Merge-on-read merges make every cycle cheap by leaving work for readers: each merge adds a
small data file and position delete files, which every scan must open and apply. Maintenance
pays that back in bulk. It runs beside ``replicate`` without a lock: each rewrite is planned on
one snapshot and its commit asserts that snapshot, so a merge that lands in between makes the
rewrite fail and be planned again (never the reverse: a rewrite committed on a stale plan would
bring back rows the merge deleted). A merge that loses the race to a rewrite fails the same way
and is applied by the next cycle, from the offsets in the table.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlparse

import pyarrow as pa
from pyarrow.fs import FileSelector, FileType
from pyiceberg.conversions import from_bytes
from pyiceberg.exceptions import CommitFailedException, ValidationException
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, PyArrowFileIO
from pyiceberg.manifest import DataFile, DataFileContent, ManifestContent
from pyiceberg.table import FileScanTask, Table, TableProperties
from pyiceberg.table.snapshots import Snapshot

from floe_cdc.core.config import MaintainConfig
from floe_cdc.lake.checkpoint import OFFSETS_KEY
from floe_cdc.lake.layout import sort_rows
from floe_cdc.lake.pyiceberg_adapter import (
    RewriteFiles,
    file_key,
    live_files,
    manifest_entries,
    snapshot_manifests,
    transaction,
    write_data_files,
)

log = logging.getLogger("floe.maintain")

MB = 1024 * 1024
# A file under this share of the target size is small (Iceberg's own default for compaction).
_SMALL_SHARE = 0.75
# A rewrite that keeps losing to merges gives up for this run; the next run tries again.
_ATTEMPTS = 3


@dataclass
class MaintainResult:
    """What one table's maintenance did, for the report."""

    table: str
    files_rewritten: int = 0
    delete_files_removed: int = 0
    files_written: int = 0
    snapshots_expired: int = 0
    orphan_files_removed: int = 0
    conflicts: int = 0
    error: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Group:
    """Data files rewritten in one commit, and the delete files that retire with them."""

    tasks: list[FileScanTask]
    retired: list[DataFile]


def _deleted_rows(task: FileScanTask) -> int:
    return sum(d.record_count for d in task.delete_files if d.content == DataFileContent.POSITION_DELETES)


def _live_delete_files(table: Table) -> dict[tuple[str, int | None], DataFile]:
    metadata = table.metadata
    snapshot = metadata.current_snapshot()
    files: dict[tuple[str, int | None], DataFile] = {}
    for manifest in snapshot_manifests(metadata, table.io, snapshot) if snapshot else []:
        if manifest.content == ManifestContent.DELETES:
            for entry in manifest_entries(table.io, manifest, metadata.format_version):
                files[file_key(entry.data_file)] = entry.data_file
    return files


def plan_rewrite(table: Table, settings: MaintainConfig) -> list[_Group]:
    """Data files whose deleted share passes the threshold, and small files, packed into groups
    of at most ``rewrite_group_mb`` of live data."""
    tasks = live_files(table.metadata, table.io)
    target = settings.target_file_size_mb * MB
    group_size = max(target, settings.rewrite_group_mb * MB)
    deleted = {t.file.file_path: _deleted_rows(t) for t in tasks}
    dirty = [
        t for t in tasks if deleted[t.file.file_path] >= settings.delete_ratio * max(t.file.record_count, 1)
    ]
    dirty_paths = {t.file.file_path for t in dirty}
    small = [
        t
        for t in tasks
        if t.file.file_path not in dirty_paths and t.file.file_size_in_bytes < _SMALL_SHARE * target
    ]
    # Small files join any rewrite that happens anyway; alone, only once there are enough.
    chosen = dirty + (small if dirty or len(small) >= settings.min_small_files else [])
    # Groups of at most the group size within one partition, in order of the files' first sort
    # column: a rewrite never mixes partitions, and its sorted output covers a range of keys.
    groups: list[_Group] = []
    size, partition = 0.0, None
    start = _sort_start(table)
    for task in sorted(chosen, key=lambda t: (_partition_key(t.file), start(t.file))):
        live_share = max(0.0, 1 - deleted[task.file.file_path] / max(task.file.record_count, 1))
        live = task.file.file_size_in_bytes * live_share
        if not groups or size + live > group_size or _partition_key(task.file) != partition:
            groups.append(_Group([], []))
            size, partition = 0, _partition_key(task.file)
        groups[-1].tasks.append(task)
        size += live
    # A delete file retires with the group holding every data file it applies to. One that
    # applies to none (its data file was removed by a copy-on-write commit) is dead weight for
    # readers and retires with the first group. One spanning groups waits: once its data files
    # are rewritten it applies to none, and the next run retires it.
    group_of = {t.file.file_path: i for i, g in enumerate(groups) for t in g.tasks}
    applies_to: dict[tuple[str, int | None], set[str]] = {}
    for task in tasks:
        for delete_file in task.delete_files:
            applies_to.setdefault(file_key(delete_file), set()).add(task.file.file_path)
    for key, delete_file in _live_delete_files(table).items():
        targets = applies_to.get(key, set())
        owners = {group_of.get(p) for p in targets}
        if not targets:
            groups = groups or [_Group([], [])]
            groups[0].retired.append(delete_file)
        elif len(owners) == 1 and None not in owners:
            groups[owners.pop()].retired.append(delete_file)
    return groups


def _sort_start(table: Table) -> Callable[[DataFile], tuple]:
    """A data file's lowest value of the table's first sort column, from its statistics (files
    without one first): the order in which rewrites group files."""
    fields = table.sort_order().fields
    if not fields:
        return lambda data_file: ()
    field_id = fields[0].source_id
    field_type = table.schema().find_type(field_id)

    def start(data_file: DataFile) -> tuple:
        lower = (data_file.lower_bounds or {}).get(field_id)
        return (0,) if lower is None else (1, from_bytes(field_type, lower))

    return start


def _partition_key(data_file: DataFile) -> tuple[int, str]:
    return data_file.spec_id or 0, str(data_file.partition)


def _sorted_slices(rows: pa.Table, target: int) -> list[pa.Table]:
    """Consecutive slices of sorted *rows* of about *target* bytes in memory each (as pyiceberg
    sizes its files): written one file per slice, files hold disjoint ranges of the sort
    columns, which pyiceberg's own bin packing (first fit over record batches) does not keep."""
    per_slice = max(1, int(rows.num_rows * target / max(rows.nbytes, 1)))
    return [rows.slice(start, per_slice) for start in range(0, rows.num_rows, per_slice)]


def _rewrite_group(table: Table, group: _Group, target: int) -> int:
    """Read the group's live rows and commit them, in the table's sort order, as new files in
    place of the old ones."""
    with transaction(table) as tx:
        metadata = tx.table_metadata
        written: list[DataFile] = []
        if group.tasks:
            rows = ArrowScan(metadata, table.io, metadata.schema(), AlwaysTrue()).to_table(group.tasks)
            rows = sort_rows(rows, metadata.sort_order(), metadata.schema())
            properties = {**metadata.properties, TableProperties.WRITE_TARGET_FILE_SIZE_BYTES: str(target)}
            sized = metadata.model_copy(update={"properties": properties})
            for part in _sorted_slices(rows, target):
                written += write_data_files(sized, table.io, part)
        rewrite = RewriteFiles(tx)
        for task in group.tasks:
            rewrite.delete_data_file(task.file)
        for delete_file in group.retired:
            rewrite.remove_delete_file(delete_file)
        for data_file in written:
            rewrite.append_data_file(data_file)
        rewrite.commit()
    return len(written)


def rewrite_files(table: Table, settings: MaintainConfig, result: MaintainResult) -> None:
    """Rewrite what the plan selects, one commit per group."""
    target = settings.target_file_size_mb * MB
    for group in plan_rewrite(table, settings):
        result.files_written += _rewrite_group(table, group, target)
        result.files_rewritten += len(group.tasks)
        result.delete_files_removed += len(group.retired)


def _beside_merges(table: Table, result: MaintainResult, step: str, action: Callable[[], None]) -> None:
    """Run *action*, which plans on the table's current snapshot and commits on it; when a merge
    committed in between, the commit is refused, and the action is planned again from the new
    snapshot (up to three times, then the next run tries)."""
    for _ in range(_ATTEMPTS):
        try:
            action()
            return
        except (CommitFailedException, ValidationException) as exc:
            result.conflicts += 1
            log.info("%s of %s lost a race with a merge (%s); trying again", step, result.table, exc)
            table.refresh()
    result.notes.append(f"{step} gave up after {_ATTEMPTS} races with merges; the next run tries again")


def expire_snapshots(table: Table, settings: MaintainConfig) -> int:
    """Expire snapshots older than the retention, and thin the older than recent ones to one per
    spacing (the newest of each span), keeping every branch and tag head and the chain from the
    current snapshot back to the newest one holding Floe's checkpoint (a restart reads its
    offsets there).

    A table's metadata holds every snapshot it keeps, and every commit writes it and every
    client parses it: kept at one per second for a day, it would be 80 MB."""
    metadata = table.metadata
    now = time.time() * 1000
    cutoff = now - settings.snapshot_retention_hours * 3600 * 1000
    recent = now - settings.snapshot_recent_minutes * 60 * 1000
    spacing = settings.snapshot_spacing_minutes * 60 * 1000
    keep = {s.snapshot_id for s in metadata.snapshots if s.timestamp_ms >= max(cutoff, recent)}
    if spacing:
        newest_of_span: dict[int, Snapshot] = {}
        for snapshot in metadata.snapshots:
            if cutoff <= snapshot.timestamp_ms < recent:
                span = int(snapshot.timestamp_ms // spacing)
                if span not in newest_of_span or newest_of_span[span].timestamp_ms < snapshot.timestamp_ms:
                    newest_of_span[span] = snapshot
        keep |= {snapshot.snapshot_id for snapshot in newest_of_span.values()}
    else:
        keep |= {s.snapshot_id for s in metadata.snapshots if s.timestamp_ms >= cutoff}
    keep |= {ref.snapshot_id for ref in metadata.refs.values()}
    snapshot = table.current_snapshot()
    while snapshot is not None:
        keep.add(snapshot.snapshot_id)
        if snapshot.summary.get(OFFSETS_KEY) is not None:
            break
        parent = snapshot.parent_snapshot_id
        snapshot = table.snapshot_by_id(parent) if parent is not None else None
    expired = [s.snapshot_id for s in metadata.snapshots if s.snapshot_id not in keep]
    if expired:
        table.maintenance.expire_snapshots().by_ids(expired).commit()
    return len(expired)


def _bare(path: str) -> str:
    """A file path without its scheme, as file system listings name it."""
    parsed = urlparse(path)
    return f"{parsed.netloc}{parsed.path}" if parsed.scheme not in ("", "file") else parsed.path


def _referenced(table: Table) -> set[str]:
    """Every data, delete, manifest and manifest-list file a snapshot of *table* still uses."""
    seen_manifests: set[str] = set()
    files: set[str] = set()
    for snapshot in table.metadata.snapshots:
        files.add(_bare(snapshot.manifest_list))
        for manifest in snapshot.manifests(table.io):
            if manifest.manifest_path in seen_manifests:
                continue
            seen_manifests.add(manifest.manifest_path)
            files.add(_bare(manifest.manifest_path))
            for entry in manifest.fetch_manifest_entry(table.io, discard_deleted=True):
                files.add(_bare(entry.data_file.file_path))
    return files


def remove_orphan_files(table: Table, min_age_hours: float) -> int:
    """Delete data and manifest files under the table's location that no snapshot uses and that
    are older than *min_age_hours* (younger ones may belong to a commit in flight). Metadata
    JSON files are the catalog's history and are left to ``write.metadata.*`` properties."""
    io = table.io
    if not isinstance(io, PyArrowFileIO):
        raise NotImplementedError(f"listing files needs pyiceberg's PyArrowFileIO, not {type(io).__name__}")
    scheme, netloc, path = PyArrowFileIO.parse_location(table.location())
    fs = io.fs_by_scheme(scheme, netloc)
    referenced = _referenced(table)
    cutoff = time.time() - min_age_hours * 3600
    removed = 0
    for info in fs.get_file_info(FileSelector(path, recursive=True, allow_not_found=True)):
        if info.type != FileType.File or not info.path.endswith((".parquet", ".avro")):
            continue
        if _bare(info.path) in referenced or info.mtime is None or info.mtime.timestamp() > cutoff:
            continue
        fs.delete_file(info.path)
        removed += 1
    return removed


def maintain_table(table: Table, name: str, settings: MaintainConfig) -> MaintainResult:
    """Rewrite, expire, then remove what neither the table nor a recent writer needs."""
    result = MaintainResult(name)

    def expire() -> None:
        result.snapshots_expired = expire_snapshots(table, settings)

    _beside_merges(table, result, "rewrite", lambda: rewrite_files(table, settings, result))
    _beside_merges(table, result, "snapshot expiry", expire)
    result.orphan_files_removed = remove_orphan_files(table, settings.orphan_min_age_hours)
    log.info(
        "maintained %s: %d files rewritten into %d, %d delete files retired, %d snapshots expired, "
        "%d orphan files removed",
        name,
        result.files_rewritten,
        result.files_written,
        result.delete_files_removed,
        result.snapshots_expired,
        result.orphan_files_removed,
    )
    return result
