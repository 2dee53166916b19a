"""The module that uses pyiceberg's private parts (with ``pyiceberg_v3``, for the v3 tables
pyiceberg cannot write, and ``snapshot_summary``, for the counts of their deletion vectors), so
that an upgrade has three modules to check.

Every use was checked against pyiceberg 0.12.0 (the version pyproject.toml pins):

- ``pyiceberg.io.pyarrow``: ``_dataframe_to_data_files`` (writing data files),
  ``pyarrow_to_schema`` and ``_to_requested_schema`` (writing a partitioned table's rows a file
  per partition, as ``write_file`` does) and
  ``_check_pyarrow_schema_compatible`` (checking rows against the schema), as ``Table.append``
  uses them; ``_read_deletes`` (reading a position delete file, as scans do);
  ``_get_parquet_writer_kwargs`` (the table's Parquet settings, for data and delete files, with
  ``store_decimal_as_integer`` as ``write_file`` sets it).
- ``pyiceberg.table.snapshots.SnapshotSummaryCollector`` and ``UpdateMetrics`` (in
  ``snapshot_summary``): their counters, ``update_partition_metrics`` and
  ``max_changed_partitions_for_summaries``, extended to count deletion vectors as Java does.
- ``pyiceberg.table.update.snapshot._OverwriteFiles``: the base of the snapshot producers below,
  through its hooks (``_existing_manifests``, ``_deleted_entries``, ``_manifests``, ``_summary``,
  ``_commit``, ``new_manifest_writer``, ``_validate_concurrency``, ``_refresh_for_retry``), its
  check ``_validate_required_deletes``, and its state (``_deleted_data_files``,
  ``_added_data_files``, ``_snapshot_id``, ``_parent_snapshot_id``, ``_commit_window``,
  ``_compression``, ``_io``, ``_written_manifest_lists``, ``commit_uuid``, ``_target_branch``);
  ``_new_manifest_list_file_name`` (a v3 snapshot's manifest list, named as pyiceberg names it).
- ``pyiceberg.manifest.ManifestWriterV2._meta``: declaring a delete manifest.
- ``pyiceberg.table.update.validate._validate_data_files_exist``: refusing a row delta whose data
  files a concurrent commit removed.
- ``pyiceberg.table.Transaction._table``, ``_updates``: the table (and its file IO) a transaction
  commits to, and its staged updates (``transaction`` works out the metadata once per update).

Iceberg v2 snapshots pyiceberg 0.12 cannot write, rows deltas and rewrites of files with deletes
(it reads position deletes but has no API to write them, nor to remove them), made of its parts:
- ``write_position_deletes`` writes one delete file for the rows a commit removes from the data
  files of one partition (sorted by path and position; full metrics, so that readers match it
  to its data files by path bounds). One file per commit rather than one per data file: with
  random keys a merge touches every data file, and readers open every delete file;
- ``RowDelta`` adds data files and delete files in one snapshot (reading no manifest unless it
  also removes data files), counts the delete files in the summary, and refuses to commit when a
  concurrent commit removed a data file it deletes from (the deleted rows would come back), as
  Java's ``RowDelta`` does;
- ``RewriteFiles`` replaces data files and the delete files that apply to them with new data
  files holding the same live rows (maintenance). pyiceberg's overwrite would carry the delete
  files over, dangling, and rewrites a delete manifest as a data manifest.
Sequence numbers are left to inheritance: a delete file added in a snapshot applies to the data
files of that snapshot's sequence number and older. On a v3 table the same producers write v3
manifests and manifest lists with row lineage, and a merge writes deletion vectors
(``deletion_vectors``) instead of position delete files; a vector goes with its data file when a
commit removes that file. Files of a manifest are told apart by path and, for a vector, offset
(``file_key``): a commit's vectors share one Puffin file, and pyiceberg compares paths only.
"""

from __future__ import annotations

import bisect
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from pyiceberg.exceptions import CommitFailedException
from pyiceberg.io import FileIO
from pyiceberg.io.fileformat import FileFormatFactory
from pyiceberg.io.pyarrow import (
    _check_pyarrow_schema_compatible,
    _dataframe_to_data_files,
    _get_parquet_writer_kwargs,
    _read_deletes,
    _to_requested_schema,
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
    pyarrow_to_schema,
    schema_to_pyarrow,
)
from pyiceberg.manifest import (
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    ManifestWriter,
    ManifestWriterV2,
    write_manifest,
)
from pyiceberg.partitioning import PartitionFieldValue, PartitionKey, PartitionSpec
from pyiceberg.schema import Schema, sanitize_column_names
from pyiceberg.table import (
    DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE,
    FileScanTask,
    Table,
    TableProperties,
    Transaction,
)
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import MAIN_BRANCH, SnapshotRefType
from pyiceberg.table.snapshots import (
    Operation,
    Snapshot,
    SnapshotSummaryCollector,
    Summary,
    update_snapshot_summaries,
)
from pyiceberg.table.update import (
    AddSnapshotUpdate,
    AssertRefSnapshotId,
    SetSnapshotRefUpdate,
    UpdatesAndRequirements,
    update_table_metadata,
)
from pyiceberg.table.update.snapshot import _new_manifest_list_file_name, _OverwriteFiles
from pyiceberg.table.update.validate import _validate_data_files_exist
from pyiceberg.typedef import Record
from pyiceberg.types import LongType, NestedField, StringType
from pyiceberg.utils.concurrent import ExecutorFactory
from pyiceberg.utils.config import Config
from pyiceberg.utils.properties import property_as_int

from floe_cdc.lake.deletion_vectors import is_vector, read_vector, write_vectors
from floe_cdc.lake.pyiceberg_v3 import (
    V3,
    ManifestWriterV3,
    data_file_field,
    read_manifest_entries,
    read_manifest_list,
    write_snapshot_list,
)
from floe_cdc.lake.snapshot_summary import SummaryCollector

# The spec's reserved field ids. pyiceberg's own POSITIONAL_DELETE_SCHEMA types pos as int; the
# spec says long.
POSITION_DELETE_SCHEMA = Schema(
    NestedField(2147483546, "file_path", StringType(), required=True),
    NestedField(2147483545, "pos", LongType(), required=True),
)
# ``file_path`` as Arrow ``string``, not the ``large_string`` pyiceberg maps strings to: iceberg-rust
# (and what is built on it) refuses position delete files whose paths are large strings.
_POSITION_DELETE_ARROW = pa.schema(
    [
        column.with_type(pa.string()) if column.name == "file_path" else column
        for column in schema_to_pyarrow(POSITION_DELETE_SCHEMA)
    ]
)
# Full metrics: the default truncate(16) would cut the file_path bounds, and readers would no
# longer match a delete file to its data file by path.
_POSITION_DELETE_METRICS = (
    compute_statistics_plan(POSITION_DELETE_SCHEMA, {"write.metadata.metrics.default": "full"}),
    parquet_path_to_id_mapping(POSITION_DELETE_SCHEMA),
)


class _Transaction(Transaction):
    """pyiceberg's transaction, whose ``table_metadata`` is worked out once per staged change.

    pyiceberg applies the staged updates to a deep copy of the whole metadata at every read of
    ``table_metadata``, and a commit reads it a dozen times (each schema, spec and summary
    lookup). The copy holds every snapshot, so for a table committed every second the cost
    grew with the table's history. Metadata models are immutable, and updates are only ever
    appended, so the result of the last read stands until the table or the updates change."""

    def __init__(self, table: Table, autocommit: bool = False) -> None:
        super().__init__(table, autocommit)
        # (the table's metadata it was worked out from, how many updates, the result)
        self._worked_out: tuple[TableMetadata, int, TableMetadata] | None = None

    @property
    def table_metadata(self) -> TableMetadata:
        base, staged = self._table.metadata, len(self._updates)
        if self._worked_out is None or self._worked_out[0] is not base or self._worked_out[1] != staged:
            self._worked_out = (base, staged, update_table_metadata(base, self._updates))
        return self._worked_out[2]

    def _rebuild_snapshot_updates(self) -> None:
        """Refuse pyiceberg's retry of a commit that lost a race: it would rebuild the snapshot on
        top of the other writer's, but a Floe commit is valid only on the snapshot it was planned
        on (its offsets continue that snapshot's; a rewrite's plan is that snapshot's files). The
        failed commit's files are cleaned up and the error raised, as with no retries at all;
        before this, pyiceberg has refreshed the table and stopped if the commit had in fact
        landed (a lost response). Doing it here rather than by the table property
        ``commit.retry.num-retries: 0`` leaves other writers of the table their retries."""
        raise CommitFailedException("another writer committed first; a Floe commit is not re-applied on top")


def transaction(table: Table) -> Transaction:
    """A transaction on *table* (use it as ``table.transaction()`` is used)."""
    return _Transaction(table)


def transaction_io(tx: Transaction) -> FileIO:
    """The file IO of the table *tx* commits to."""
    return tx._table.io


def write_data_files(metadata: TableMetadata, io: FileIO, rows: pa.Table) -> list[DataFile]:
    """*rows* written as data files of the table described by *metadata* (none for no rows)."""
    return [data_file for data_file, _ in write_rows(metadata, io, rows)]


_WRITERS = 4


def side_by_side(function: Callable[[Any], Any], items: list[Any]) -> list[Any]:
    """*function* of each of *items*, on a few threads: what writes files of several partitions
    at once (Parquet encoding and uploads release the GIL). Not pyiceberg's shared executor,
    which the writes themselves use: waiting on it from its own threads could deadlock."""
    if len(items) < 2:
        return [function(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(_WRITERS, len(items))) as pool:
        return list(pool.map(function, items))


def split_by_partition(
    spec: PartitionSpec, schema: Schema, rows: pa.Table
) -> list[tuple[PartitionKey, pa.Table]]:
    """*rows* split by the partition of *spec* they belong to, each part in the order of *rows*.

    What pyiceberg's ``_determine_partitions`` does, by one stable sort on the partition values and
    slices of the sorted rows, instead of a filter of all the rows per partition: a merge into a
    table partitioned by day over a month spent more time filtering than encoding its files."""
    values = pa.table(
        {
            f"_partition_{number}": partition.transform.pyarrow_transform(
                schema.find_field(partition.source_id).field_type
            )(rows[schema.find_column_name(partition.source_id)])
            for number, partition in enumerate(spec.fields)
        }
    )
    names = values.column_names
    order = pc.sort_indices(values, sort_keys=[(name, "ascending") for name in names])  # stable
    ordered = values.take(order).append_column("_row", pa.array(np.arange(len(order), dtype=np.int64)))
    groups = ordered.group_by(names, use_threads=False).aggregate([("_row", "min"), ("_row", "count")])
    rows = rows.take(order)
    parts = []
    for group in groups.to_pylist():
        key = PartitionKey(
            field_values=[
                PartitionFieldValue(field=partition, value=group[name])
                for partition, name in zip(spec.fields, names, strict=True)
            ],
            partition_spec=spec,
            schema=schema,
        )
        parts.append((key, rows.slice(group["_row_min"], group["_row_count"]).combine_chunks()))
    return parts


_PARQUET = FileFormatFactory.get(FileFormat.PARQUET)


class _PartitionWriter:
    """Writes one partition's rows as a data file, as pyiceberg's ``write_file`` writes a task.

    Written out here because ``write_file`` works out, for every file, what is the same for all
    the files of a merge (the file schema with its field ids, the Parquet settings, the statistics
    plan, the configuration file): a merge into a table partitioned by day over a month writes 30
    files of a few thousand rows, and that work, holding the GIL, cost as much as encoding them."""

    def __init__(self, metadata: TableMetadata, io: FileIO, arrow_schema: pa.Schema) -> None:
        table_schema = metadata.schema()
        self.downcast = Config().get_bool(DOWNCAST_NS_TIMESTAMP_TO_US_ON_WRITE) or False
        self.file_schema = sanitize_column_names(table_schema)
        self.task_schema = pyarrow_to_schema(
            arrow_schema,
            name_mapping=table_schema.name_mapping,
            downcast_ns_timestamp_to_us=self.downcast,
            format_version=metadata.format_version,
        )
        self.io = io
        self.locations = load_location_provider(metadata.location, metadata.properties)
        self.writer_kwargs = _get_parquet_writer_kwargs(metadata.properties)
        self.writer_kwargs["store_decimal_as_integer"] = True  # as pyiceberg's Parquet writer
        self.row_group_size = property_as_int(
            metadata.properties,
            TableProperties.PARQUET_ROW_GROUP_LIMIT,
            TableProperties.PARQUET_ROW_GROUP_LIMIT_DEFAULT,
        )
        self.statistics_plan = compute_statistics_plan(self.file_schema, metadata.properties)
        self.column_ids = parquet_path_to_id_mapping(self.file_schema)
        self.write_uuid = uuid.uuid4()

    def __call__(self, numbered: tuple[int, tuple[PartitionKey, pa.Table]]) -> DataFile:
        number, (key, rows) = numbered
        batches = [
            _to_requested_schema(
                requested_schema=self.file_schema,
                file_schema=self.task_schema,
                batch=batch,
                downcast_ns_timestamp_to_us=self.downcast,
                include_field_ids=True,
                format_model=_PARQUET,
            )
            for batch in rows.to_batches()
        ]
        table = pa.Table.from_batches(batches)
        path = self.locations.new_data_location(
            data_file_name=f"00000-{number}-{self.write_uuid}.parquet", partition_key=key
        )
        return _parquet_file(
            self.io,
            path,
            table,
            DataFileContent.DATA,
            key.partition,
            self.writer_kwargs,
            (self.statistics_plan, self.column_ids),
            self.row_group_size,
        )


def _parquet_file(
    io: FileIO,
    path: str,
    rows: pa.Table,
    content: DataFileContent,
    partition: Record,
    writer_kwargs: dict[str, Any],
    statistics: tuple[dict[int, Any], dict[str, int]],
    row_group_size: int | None = None,
) -> DataFile:
    """*rows* written as the Parquet file *path* (a new uuid path: no existence check, a round
    trip), and its manifest entry, with the metrics of *statistics* (plan, column ids)."""
    output = io.new_output(path)
    with (
        output.create(overwrite=True) as stream,
        pq.ParquetWriter(stream, rows.schema, **writer_kwargs) as writer,
    ):
        writer.write(rows, row_group_size=row_group_size)
    metrics = data_file_statistics_from_parquet_metadata(writer.writer.metadata, *statistics)
    return DataFile.from_args(
        content=content,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=partition,
        file_size_in_bytes=len(output),
        sort_order_id=None,
        equality_ids=None,
        key_metadata=None,
        **metrics.to_serialized_dict(),
    )


def write_rows(metadata: TableMetadata, io: FileIO, rows: pa.Table) -> list[tuple[DataFile, pa.Table | None]]:
    """*rows* written as data files of the table described by *metadata*, each file with the
    rows it holds in file order (what a key index adds); None in place of the rows where pyiceberg
    split an unpartitioned table's rows over several files, in an order of its own.

    A partitioned table's rows are split by partition once (``split_by_partition``, keeping
    their order) and each partition written as one file, a few at once (as pyiceberg's
    ``write_file`` does, without the bin packing of ``_dataframe_to_data_files``: a merge's
    partition never nears the target file size)."""
    if not rows.num_rows:
        return []
    spec = metadata.spec()
    if spec.is_unpartitioned():
        added = list(_dataframe_to_data_files(table_metadata=metadata, df=rows, io=io))
        written = [(data_file, rows if len(added) == 1 else None) for data_file in added]
    else:
        parts = split_by_partition(spec, metadata.schema(), rows)
        files = side_by_side(_PartitionWriter(metadata, io, rows.schema), list(enumerate(parts)))
        written = [(data_file, part) for data_file, (_, part) in zip(files, parts, strict=True)]
    for data_file, _ in written:
        # pyiceberg's writer leaves it unset; a later commit that removes the file needs it.
        data_file.spec_id = metadata.default_spec_id
    return written


def check_schema_compatible(metadata: TableMetadata, schema: pa.Schema) -> None:
    """Raise unless rows of *schema* can be written to the table (pyiceberg's own check)."""
    _check_pyarrow_schema_compatible(metadata.schema(), schema, format_version=metadata.format_version)


def read_position_deletes(io: FileIO, delete_file: DataFile) -> dict[str, pa.ChunkedArray]:
    """The positions a position delete file removes, by data file path."""
    return _read_deletes(io, delete_file)


def write_position_deletes(tx: Transaction, deletes: dict[DataFile, list[int]]) -> DataFile:
    """A delete file removing, from each data file of *deletes* (one partition), its positions."""
    metadata, io = tx.table_metadata, transaction_io(tx)
    paths: list[str] = []
    positions: list[int] = []
    for data_file in sorted(deletes, key=lambda f: f.file_path):  # the spec: by path, then position
        ordered = sorted(deletes[data_file])
        paths += [data_file.file_path] * len(ordered)
        positions += ordered
    rows = pa.Table.from_arrays(
        [pa.array(paths, pa.string()), pa.array(positions, pa.int64())], schema=_POSITION_DELETE_ARROW
    )
    any_file = next(iter(deletes))
    provider = load_location_provider(metadata.location, metadata.properties)
    path = provider.new_data_location(f"{uuid.uuid4()}-deletes.parquet")
    delete_file = _parquet_file(
        io,
        path,
        rows,
        DataFileContent.POSITION_DELETES,
        any_file.partition,
        _get_parquet_writer_kwargs(metadata.properties),
        _POSITION_DELETE_METRICS,
    )
    delete_file.spec_id = any_file.spec_id  # from_args drops it
    return delete_file


class _DeleteManifestWriter(ManifestWriterV2):
    """pyiceberg's v2 manifest writer always declares data content."""

    def content(self) -> ManifestContent:
        return ManifestContent.DELETES

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes"}


# Manifest files are immutable: a long-lived writer reads each one once, not at every commit that
# carries it over. Bounded, oldest out first; entries of a manifest are a few hundred bytes each.
_MANIFEST_CACHE_SIZE = 4096
_manifest_cache: OrderedDict[str, list[ManifestEntry]] = OrderedDict()
_manifest_cache_lock = threading.Lock()


# Small manifests of one kind are merged into one once there are this many (Java's default for
# ``commit.manifest.min-count-to-merge`` is 100; a reader of a table committed every second
# should not open a hundred manifests), and below this size a manifest counts as small.
MERGE_MANIFESTS_AT = 16
_SMALL_MANIFEST_BYTES = 8 * 1024 * 1024


def _remember(manifest: ManifestFile, entries: list[ManifestEntry]) -> None:
    with _manifest_cache_lock:
        _manifest_cache[manifest.manifest_path] = entries
        while len(_manifest_cache) > _MANIFEST_CACHE_SIZE:
            _manifest_cache.popitem(last=False)


def _restated(entry: ManifestEntry, status: ManifestEntryStatus, snapshot_id: int | None) -> ManifestEntry:
    """*entry* with a new status (and the snapshot that gives it), its sequence numbers kept."""
    return ManifestEntry.from_args(
        status=status,
        snapshot_id=snapshot_id,
        sequence_number=entry.sequence_number,
        file_sequence_number=entry.file_sequence_number,
        data_file=entry.data_file,
    )


def live_files(metadata: TableMetadata, io: FileIO, snapshot_id: int | None = None) -> list[FileScanTask]:
    """The live data files of a snapshot (the current one by default), each with the position
    delete files that may apply to it: those of its partition whose data sequence number is not
    below its own (the spec's rule; which of its rows a file deletes is in the file, by path).

    Like an unfiltered ``plan_files``, but from manifests read once per process
    (:func:`manifest_entries`, so that the commit after it reads none of them again), and without
    pruning by each delete file's path bounds: Floe's delete files span many data files, and
    pyiceberg's bounds check per pair (about 30 microseconds) cost 0.7 s for 200 data files and
    80 delete files, more than reading the delete files does."""
    snapshot = metadata.current_snapshot() if snapshot_id is None else metadata.snapshot_by_id(snapshot_id)
    if snapshot is None:
        return []
    version = metadata.format_version
    data_entries: list[ManifestEntry] = []
    deletes: dict[tuple[int, Record], list[tuple[int, DataFile]]] = {}
    vectors: dict[str, list[tuple[int, DataFile]]] = {}  # deletes of one data file: v3 vectors
    read = ExecutorFactory.get_or_create().map(
        lambda m: manifest_entries(io, m, version), snapshot_manifests(metadata, io, snapshot)
    )
    for entry in (entry for entries in read for entry in entries):
        content = entry.data_file.content
        pair = (entry.sequence_number or 0, entry.data_file)
        if content == DataFileContent.DATA:
            data_entries.append(entry)
        elif content == DataFileContent.POSITION_DELETES:
            referenced = data_file_field(entry.data_file, "referenced_data_file")
            if referenced is not None:
                vectors.setdefault(referenced, []).append(pair)
            else:
                deletes.setdefault(_partition_of(entry.data_file), []).append(pair)
        else:
            raise ValueError("Floe reads no equality deletes (another engine wrote them)")
    for files in deletes.values():
        files.sort(key=lambda pair: pair[0])
    sequences = {key: [sequence for sequence, _ in files] for key, files in deletes.items()}
    tasks = []
    for entry in data_entries:
        key, sequence = _partition_of(entry.data_file), entry.sequence_number or 0
        first = bisect.bisect_left(sequences.get(key, []), sequence)
        applying = {f for _, f in deletes.get(key, [])[first:]}
        applying |= {f for s, f in vectors.get(entry.data_file.file_path, []) if s >= sequence}
        tasks.append(FileScanTask(entry.data_file, delete_files=applying))
    return tasks


def file_key(data_file: DataFile) -> tuple[str, int | None]:
    """What tells one file of a manifest from another: its path, and for a deletion vector its
    offset too (a commit's vectors share one Puffin file; pyiceberg compares paths only)."""
    return data_file.file_path, data_file_field(data_file, "content_offset")


def snapshot_manifests(metadata: TableMetadata, io: FileIO, snapshot: Snapshot) -> list[ManifestFile]:
    """*snapshot*'s manifests, with the v3 fields on a v3 table."""
    return read_manifest_list(io, snapshot) if metadata.format_version >= V3 else snapshot.manifests(io)


def _partition_of(data_file: DataFile) -> tuple[int, Record]:
    return data_file.spec_id or 0, data_file.partition or Record()


def manifest_entries(io: FileIO, manifest: ManifestFile, version: int) -> list[ManifestEntry]:
    """The live (not deleted) entries of *manifest* of a table of format *version*, read once per
    process."""
    with _manifest_cache_lock:
        entries = _manifest_cache.get(manifest.manifest_path)
        if entries is not None:
            _manifest_cache.move_to_end(manifest.manifest_path)
            return entries
    if version >= V3:
        entries = read_manifest_entries(io, manifest)
    else:
        entries = manifest.fetch_manifest_entry(io=io, discard_deleted=True)
    _remember(manifest, entries)
    return entries


@dataclass
class _Scanned:
    """One pass over a snapshot's manifests: those carried into the next snapshot, and DELETED
    entries for the data files and the delete files it removes."""

    carried: list[ManifestFile]
    deleted_data: list[ManifestEntry] = field(default_factory=list)
    deleted_deletes: list[ManifestEntry] = field(default_factory=list)
    copied: list[DataFile] = field(default_factory=list)  # vectors written again (``_siblings``)


def _siblings(files: list[DataFile], removed: set[tuple[str, int | None]]) -> list[DataFile]:
    """The live deletion vectors that share a Puffin file with a vector being *removed*.

    Iceberg's snapshot expiry (Java's) deletes a file once a manifest of an expired snapshot
    records it as deleted, by path: a Puffin file whose other vectors still apply would go with
    them. So a commit that retires one vector of a Puffin file retires all of it, writing the
    others again into a file of its own."""
    retired = {path for path, offset in removed if offset is not None}
    return [f for f in files if is_vector(f) and f.file_path in retired and file_key(f) not in removed]


class _Replacing(_OverwriteFiles):
    """pyiceberg's overwrite, made to remove delete files too, and to keep a delete manifest a
    delete manifest when it rewrites one without the removed files.

    The manifests carried over and the entries recorded as deleted come from one pass over the
    parent's manifests (pyiceberg reads each of them twice, in two threads), through
    :func:`manifest_entries`."""

    def __init__(
        self, tx: Transaction, snapshot_properties: dict[str, str], branch: str = MAIN_BRANCH
    ) -> None:
        super().__init__(
            Operation.OVERWRITE,
            tx,
            transaction_io(tx),
            snapshot_properties=snapshot_properties,
            branch=branch,
        )
        self._removed_delete_files: dict[tuple[str, int | None], DataFile] = {}
        self._scan_lock = threading.Lock()
        self._scanned: _Scanned | None = None

    def remove_delete_file(self, delete_file: DataFile) -> None:
        self._removed_delete_files[file_key(delete_file)] = delete_file

    def new_manifest_writer(self, spec: PartitionSpec) -> ManifestWriter:
        return self._manifest_writer(ManifestContent.DATA, spec)

    def _manifest_writer(self, content: ManifestContent, spec: PartitionSpec) -> ManifestWriter:
        """A writer of a manifest of *content* (pyiceberg's v2 writer always declares data, and
        it writes no v3)."""
        output, version = self.new_manifest_output(), self._transaction.table_metadata.format_version
        if version >= V3:
            return ManifestWriterV3(
                spec, self.schema(), output, self._snapshot_id, self._compression, content
            )
        if content == ManifestContent.DELETES:
            return _DeleteManifestWriter(spec, self.schema(), output, self._snapshot_id, self._compression)
        return write_manifest(version, spec, self.schema(), output, self._snapshot_id, self._compression)

    def _existing_manifests(self) -> list[ManifestFile]:
        return self._scan().carried

    def _deleted_entries(self) -> list[ManifestEntry]:
        if not self._deleted_data_files:
            return []
        deleted = self._scan().deleted_data
        self._validate_required_deletes(deleted)
        return deleted

    def _manifests(self) -> list[ManifestFile]:
        """pyiceberg's manifests (added data files, data files recorded as deleted, those carried
        over), and one recording each removed delete file as deleted: pyiceberg would write those
        entries into a data manifest, and Iceberg's snapshot expiry (Java's, which Spark and
        Trino call) deletes from storage only the files a manifest records as deleted."""
        scanned = self._scan()
        return super()._manifests() + self._delete_manifests(
            scanned.deleted_deletes + self._added(scanned.copied)
        )

    def _added(self, delete_files: list[DataFile]) -> list[ManifestEntry]:
        return [
            ManifestEntry.from_args(
                status=ManifestEntryStatus.ADDED,
                snapshot_id=self._snapshot_id,
                sequence_number=None,  # inherited from this snapshot
                file_sequence_number=None,
                data_file=delete_file,
            )
            for delete_file in delete_files
        ]

    def _delete_manifests(self, entries: list[ManifestEntry]) -> list[ManifestFile]:
        """*entries* of delete files, in one delete manifest of this snapshot per partition spec."""
        by_spec: dict[int, list[ManifestEntry]] = {}
        for entry in entries:
            by_spec.setdefault(entry.data_file.spec_id, []).append(entry)
        written = []
        for spec_id, group in by_spec.items():
            with self._manifest_writer(ManifestContent.DELETES, self.spec(spec_id)) as writer:
                for entry in group:
                    writer.add_entry(entry)
            written.append(writer.to_manifest_file())
        return written

    def _refresh_for_retry(self) -> None:
        super()._refresh_for_retry()
        self._scanned = None  # a retry commits on a new parent

    def _scan(self) -> _Scanned:
        """The manifests carried over (those holding a removed file rewritten without it), and a
        DELETED entry for each removed file; computed once, whichever thread asks first."""
        with self._scan_lock:
            if self._scanned is None:
                self._scanned = self._carry_over()
            return self._scanned

    def _carry_over(self) -> _Scanned:
        metadata = self._transaction.table_metadata
        snapshot = metadata.snapshot_by_name(name=self._target_branch)
        manifests = snapshot_manifests(metadata, self._io, snapshot) if snapshot else []
        # A manifest with no live entry (only files an earlier snapshot recorded as deleted) is
        # not carried: those entries belong to the snapshot that removed the files.
        live = [m for m in manifests if m.has_added_files() or m.has_existing_files()]
        removed = {file_key(f) for f in self._deleted_data_files} | set(self._removed_delete_files)
        if not removed:  # as a fast append: no manifest is read
            return _Scanned(self._merged(live))
        read = [
            (manifest, manifest_entries(self._io, manifest, metadata.format_version)) for manifest in live
        ]
        files = [entry.data_file for _, entries in read for entry in entries]
        gone = {f.file_path for f in self._deleted_data_files}
        # A deletion vector goes with its data file (v3: it applies to that file alone).
        removed |= {file_key(f) for f in files if data_file_field(f, "referenced_data_file") in gone}
        siblings = _siblings(files, removed)
        removed |= {file_key(f) for f in siblings}
        scanned = _Scanned([], copied=self._copies(files, siblings))
        for manifest, entries in read:
            kept = [entry for entry in entries if file_key(entry.data_file) not in removed]
            for entry in entries:
                if file_key(entry.data_file) in removed:
                    restated = _restated(entry, ManifestEntryStatus.DELETED, self._snapshot_id)
                    data = entry.data_file.content == DataFileContent.DATA
                    (scanned.deleted_data if data else scanned.deleted_deletes).append(restated)
            if len(kept) == len(entries):
                scanned.carried.append(manifest)
            elif kept:
                scanned.carried.append(self._rewrite(manifest.content, manifest.partition_spec_id, kept))
        scanned.carried = self._merged(scanned.carried)
        return scanned

    def _copies(self, files: list[DataFile], siblings: list[DataFile]) -> list[DataFile]:
        """The *siblings* (live vectors of a Puffin file this commit retires) written again, into
        a Puffin file of this commit."""
        if not siblings:
            return []
        data = {f.file_path: f for f in files if f.content == DataFileContent.DATA}
        vectors = {
            data[data_file_field(v, "referenced_data_file")]: read_vector(self._io, v) for v in siblings
        }
        return [vector for _, vector in write_vectors(self._transaction.table_metadata, self._io, vectors)]

    def _rewrite(self, content: ManifestContent, spec_id: int, entries: list[ManifestEntry]) -> ManifestFile:
        """A manifest of this snapshot holding *entries* as existing, with their sequence numbers."""
        writer = self._manifest_writer(content, self.spec(spec_id))
        written = [_restated(entry, ManifestEntryStatus.EXISTING, entry.snapshot_id) for entry in entries]
        with writer:
            for entry in written:
                writer.add_entry(entry)
        manifest = writer.to_manifest_file()
        _remember(manifest, written)
        return manifest

    def _merged(self, manifests: list[ManifestFile]) -> list[ManifestFile]:
        """*manifests*, their small ones merged into one per content and spec once there are
        ``MERGE_MANIFESTS_AT`` of a kind (as Iceberg's Java writers do, by
        ``commit.manifest.min-count-to-merge``): a writer that commits every second adds two
        manifests a commit, and every reader and every later commit would read them all."""
        small: dict[tuple[ManifestContent, int], list[ManifestFile]] = {}
        for manifest in manifests:
            if manifest.manifest_length < _SMALL_MANIFEST_BYTES:
                small.setdefault((manifest.content, manifest.partition_spec_id), []).append(manifest)
        merging = {id(m) for group in small.values() if len(group) >= MERGE_MANIFESTS_AT for m in group}
        if not merging:
            return manifests
        kept = [manifest for manifest in manifests if id(manifest) not in merging]
        for (content, spec_id), group in small.items():
            if len(group) >= MERGE_MANIFESTS_AT:
                version = self._transaction.table_metadata.format_version
                entries = [
                    entry for manifest in group for entry in manifest_entries(self._io, manifest, version)
                ]
                kept.append(self._rewrite(content, spec_id, entries))
        return kept

    def _commit(self) -> UpdatesAndRequirements:
        """pyiceberg's commit; on a v3 table, the same with a v3 manifest list and row lineage
        (pyiceberg writes no v3 list, and gives the snapshot no ``added-rows``)."""
        metadata = self._transaction.table_metadata
        if metadata.format_version < V3:
            return super()._commit()
        manifests = self._manifests()
        name = _new_manifest_list_file_name(
            snapshot_id=self._snapshot_id, attempt=0, commit_uuid=self.commit_uuid
        )
        path = self._transaction._table.location_provider().new_metadata_location(name)
        self._written_manifest_lists.append(path)
        first_row_id = metadata.next_row_id or 0
        snapshot = Snapshot(
            snapshot_id=self._snapshot_id,
            parent_snapshot_id=self._parent_snapshot_id,
            manifest_list=path,
            sequence_number=metadata.next_sequence_number(),
            summary=self._summary(self.snapshot_properties),
            schema_id=metadata.current_schema_id,
            first_row_id=first_row_id,
        )
        added = write_snapshot_list(self._io, path, snapshot, first_row_id, manifests, self._compression)
        snapshot = snapshot.model_copy(update={"added_rows": added})
        branch = self._target_branch
        ref = metadata.refs.get(branch)
        return (
            AddSnapshotUpdate(snapshot=snapshot),
            SetSnapshotRefUpdate(
                snapshot_id=self._snapshot_id,
                parent_snapshot_id=self._parent_snapshot_id,
                ref_name=branch,
                type=SnapshotRefType.BRANCH,
            ),
        ), (AssertRefSnapshotId(snapshot_id=ref.snapshot_id if ref else None, ref=branch),)

    def _collector(self) -> SnapshotSummaryCollector:
        """The added data files and every removed file, counted for the summary."""
        metadata = self._transaction.table_metadata
        collector = SummaryCollector()
        for data_file in self._added_data_files:
            collector.add_file(data_file, schema=metadata.schema(), partition_spec=metadata.spec())
        specs = metadata.specs()
        scanned = self._scan()
        for copied in scanned.copied:
            collector.add_file(copied, schema=metadata.schema(), partition_spec=specs[copied.spec_id])
        for removed in (*self._deleted_data_files, *(entry.data_file for entry in scanned.deleted_deletes)):
            collector.remove_file(removed, schema=metadata.schema(), partition_spec=specs[removed.spec_id])
        return collector

    def _totals(self, collector: SnapshotSummaryCollector, operation: Operation) -> Summary:
        metadata = self._transaction.table_metadata
        parent_id = self._parent_snapshot_id
        parent = metadata.snapshot_by_id(parent_id) if parent_id is not None else None
        # pyiceberg totals up only append, overwrite and delete summaries.
        totals = update_snapshot_summaries(
            Summary(operation=Operation.OVERWRITE, **collector.build(), **self.snapshot_properties),
            parent.summary if parent else None,
        )
        return Summary(operation=operation, **totals.additional_properties)


class RowDelta(_Replacing):
    """New data files and position delete files in one snapshot; data files whose rows it
    carries over into its new files (a compaction in passing) can be removed in the same one."""

    def __init__(
        self, tx: Transaction, snapshot_properties: dict[str, str], branch: str = MAIN_BRANCH
    ) -> None:
        super().__init__(tx, snapshot_properties, branch)
        self._added_delete_files: list[DataFile] = []
        self._referenced_data_files: set[DataFile] = set()

    def add_position_deletes(self, delete_file: DataFile, data_files: list[DataFile]) -> None:
        self._added_delete_files.append(delete_file)
        self._referenced_data_files.update(data_files)

    def _manifests(self) -> list[ManifestFile]:
        return self._delete_manifests(self._added(self._added_delete_files)) + super()._manifests()

    def _summary(self, snapshot_properties: dict[str, Any] | None = None) -> Summary:
        metadata = self._transaction.table_metadata
        collector = self._collector()
        for delete_file in self._added_delete_files:
            spec = metadata.specs()[delete_file.spec_id]
            collector.add_file(delete_file, schema=metadata.schema(), partition_spec=spec)
        if not self._added_delete_files and not self._deleted_data_files:
            operation = Operation.APPEND
        else:
            operation = Operation.OVERWRITE if self._added_data_files else Operation.DELETE
        return self._totals(collector, operation)

    def _validate_concurrency(self) -> None:
        super()._validate_concurrency()
        window = self._commit_window
        if window is None or window.is_empty() or window.head is None or not self._referenced_data_files:
            return
        _validate_data_files_exist(
            self._transaction._table, window.head, self._referenced_data_files, window.base
        )


class RewriteFiles(_Replacing):
    """Replaces data files, and the delete files that apply only to them, by new data files.

    The new files take this snapshot's sequence number, so no older delete file applies to them.
    The operation is ``replace``: the table's rows do not change, and incremental readers skip it.
    Like every Floe commit it asserts the snapshot it was planned on, so a concurrent merge makes
    it fail instead of resurrecting rows that merge deleted.
    """

    def __init__(self, tx: Transaction) -> None:
        super().__init__(tx, {})

    def _summary(self, snapshot_properties: dict[str, Any] | None = None) -> Summary:
        return self._totals(self._collector(), Operation.REPLACE)
