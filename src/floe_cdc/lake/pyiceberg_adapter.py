"""The one module that uses pyiceberg's private parts, so that an upgrade has one module to check.

Every use was checked against pyiceberg 0.12.0 (the version pyproject.toml pins):

- ``pyiceberg.io.pyarrow``: ``_dataframe_to_data_files`` (writing data files) and
  ``_check_pyarrow_schema_compatible`` (checking rows against the schema), as ``Table.append``
  uses them; ``_read_deletes`` (reading a position delete file, as scans do);
  ``_get_parquet_writer_kwargs`` (the table's Parquet settings, for delete files).
- ``pyiceberg.table.update.snapshot._OverwriteFiles``: the base of the snapshot producers below,
  through its hooks (``_existing_manifests``, ``_deleted_entries``, ``_manifests``, ``_summary``,
  ``_validate_concurrency``) and its state (``_deleted_data_files``, ``_added_data_files``,
  ``_snapshot_id``, ``_parent_snapshot_id``, ``_commit_window``, ``_compression``, ``_io``).
- ``pyiceberg.manifest.ManifestWriterV2._meta``: declaring a delete manifest.
- ``pyiceberg.table.update.validate._validate_data_files_exist``: refusing a row delta whose data
  files a concurrent commit removed.
- ``pyiceberg.table.Transaction._table``: the table (and its file IO) a transaction commits to.

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
files of that snapshot's sequence number and older.
"""

from __future__ import annotations

import uuid
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import (
    _check_pyarrow_schema_compatible,
    _dataframe_to_data_files,
    _get_parquet_writer_kwargs,
    _read_deletes,
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
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
    ManifestWriterV2,
)
from pyiceberg.schema import Schema
from pyiceberg.table import Transaction
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyiceberg.table.refs import MAIN_BRANCH
from pyiceberg.table.snapshots import Operation, SnapshotSummaryCollector, Summary, update_snapshot_summaries
from pyiceberg.table.update.snapshot import _OverwriteFiles
from pyiceberg.table.update.validate import _validate_data_files_exist
from pyiceberg.types import LongType, NestedField, StringType

# The spec's reserved field ids. pyiceberg's own POSITIONAL_DELETE_SCHEMA types pos as int; the
# spec says long.
POSITION_DELETE_SCHEMA = Schema(
    NestedField(2147483546, "file_path", StringType(), required=True),
    NestedField(2147483545, "pos", LongType(), required=True),
)
# The default truncate(16) would cut the file_path bounds, and readers would no longer match a
# delete file to its data file by path.
_FULL_METRICS = {"write.metadata.metrics.default": "full"}


def transaction_io(tx: Transaction) -> FileIO:
    """The file IO of the table *tx* commits to."""
    return tx._table.io


def write_data_files(metadata: TableMetadata, io: FileIO, rows: pa.Table) -> list[DataFile]:
    """*rows* written as data files of the table described by *metadata* (none for no rows)."""
    if not rows.num_rows:
        return []
    added = list(_dataframe_to_data_files(table_metadata=metadata, df=rows, io=io))
    for data_file in added:
        # pyiceberg's writer leaves it unset; a later commit that removes the file needs it.
        data_file.spec_id = metadata.default_spec_id
    return added


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
        [pa.array(paths, pa.string()), pa.array(positions, pa.int64())],
        schema=schema_to_pyarrow(POSITION_DELETE_SCHEMA),
    )
    any_file = next(iter(deletes))
    provider = load_location_provider(metadata.location, metadata.properties)
    path = provider.new_data_location(f"{uuid.uuid4()}-deletes.parquet")
    output = io.new_output(path)
    with (
        output.create(overwrite=False) as stream,
        pq.ParquetWriter(
            stream, schema=rows.schema, **_get_parquet_writer_kwargs(metadata.properties)
        ) as writer,
    ):
        writer.write_table(rows)
    statistics = data_file_statistics_from_parquet_metadata(
        writer.writer.metadata,
        compute_statistics_plan(POSITION_DELETE_SCHEMA, _FULL_METRICS),
        parquet_path_to_id_mapping(POSITION_DELETE_SCHEMA),
    )
    delete_file = DataFile.from_args(
        content=DataFileContent.POSITION_DELETES,
        file_path=path,
        file_format=FileFormat.PARQUET,
        partition=any_file.partition,
        file_size_in_bytes=len(output),
        sort_order_id=None,
        equality_ids=None,
        key_metadata=None,
        **statistics.to_serialized_dict(),
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


class _Replacing(_OverwriteFiles):
    """pyiceberg's overwrite, made to remove delete files too, and to keep a delete manifest a
    delete manifest when it rewrites one without the removed files."""

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
        self._removed_delete_files: set[DataFile] = set()

    def remove_delete_file(self, delete_file: DataFile) -> None:
        self._removed_delete_files.add(delete_file)

    def _existing_manifests(self) -> list[ManifestFile]:
        snapshot = self._transaction.table_metadata.snapshot_by_name(name=self._target_branch)
        manifests = snapshot.manifests(io=self._io) if snapshot else []
        removed = self._deleted_data_files | self._removed_delete_files
        if not removed:  # as a fast append: no manifest is read
            return [m for m in manifests if m.has_added_files() or m.has_existing_files()]
        carried: list[ManifestFile] = []
        for manifest in manifests:
            entries = manifest.fetch_manifest_entry(io=self._io, discard_deleted=True)
            kept = [entry for entry in entries if entry.data_file not in removed]
            if len(kept) == len(entries):
                carried.append(manifest)
                continue
            if not kept:
                continue
            spec = self.spec(manifest.partition_spec_id)
            writer = (
                _DeleteManifestWriter(
                    spec, self.schema(), self.new_manifest_output(), self._snapshot_id, self._compression
                )
                if manifest.content == ManifestContent.DELETES
                else self.new_manifest_writer(spec)
            )
            with writer:
                for entry in kept:
                    writer.add_entry(
                        ManifestEntry.from_args(
                            status=ManifestEntryStatus.EXISTING,
                            snapshot_id=entry.snapshot_id,
                            sequence_number=entry.sequence_number,
                            file_sequence_number=entry.file_sequence_number,
                            data_file=entry.data_file,
                        )
                    )
            carried.append(writer.to_manifest_file())
        return carried

    def _deleted_entries(self) -> list[ManifestEntry]:
        return super()._deleted_entries() if self._deleted_data_files else []

    def _collector(self) -> SnapshotSummaryCollector:
        """The added data files and every removed file, counted for the summary."""
        metadata = self._transaction.table_metadata
        collector = SnapshotSummaryCollector()
        for data_file in self._added_data_files:
            collector.add_file(data_file, schema=metadata.schema(), partition_spec=metadata.spec())
        specs = metadata.specs()
        for removed in (*self._deleted_data_files, *self._removed_delete_files):
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
        manifests = super()._manifests()  # the added data files, and every manifest carried over
        by_spec: dict[int, list[DataFile]] = {}
        for delete_file in self._added_delete_files:
            by_spec.setdefault(delete_file.spec_id, []).append(delete_file)
        added = []
        for spec_id, files in by_spec.items():
            with _DeleteManifestWriter(
                self.spec(spec_id),
                self.schema(),
                self.new_manifest_output(),
                self._snapshot_id,
                self._compression,
            ) as writer:
                for delete_file in files:
                    writer.add_entry(
                        ManifestEntry.from_args(
                            status=ManifestEntryStatus.ADDED,
                            snapshot_id=self._snapshot_id,
                            sequence_number=None,  # inherited from this snapshot
                            file_sequence_number=None,
                            data_file=delete_file,
                        )
                    )
            added.append(writer.to_manifest_file())
        return added + manifests

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
