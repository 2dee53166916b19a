"""Writing Iceberg format version 3, which pyiceberg 0.12 models and reads but refuses to write.

Everything here uses pyiceberg's private parts, like ``pyiceberg_adapter`` (which uses this
module), and was checked against pyiceberg 0.12.0:

- **Table metadata.** ``TableMetadataV3.model_dump_json`` raises; it is replaced by the model's
  plain serialization (the v3 fields, ``next-row-id`` among them, are already modelled), so that
  a catalog that writes metadata files itself (the SQL catalog) can create and commit v3 tables;
  a new table's ``next-row-id`` is 0 (pyiceberg leaves it unset).
- **Manifests and manifest lists.** pyiceberg's writers stop at v2, and its readers read with the
  v2 schema, which drops the v3 fields: a data file's ``first_row_id`` and a deletion vector's
  ``referenced_data_file``, ``content_offset`` and ``content_size_in_bytes``; a manifest's
  ``first_row_id``. The writers and readers here use the v3 schema throughout.
- **Row lineage.** Every row of a v3 table has an id: a data manifest's rows take ids from its
  ``first_row_id``, which the manifest list assigns to each new data manifest from the snapshot's
  ``first-row-id`` (the table's ``next-row-id``), counting its added and existing rows; the
  snapshot's ``added-rows`` advances the table's ``next-row-id``. A data file keeps its ids when
  its entry is carried into a rewritten manifest: entries read here carry the id they inherited.
"""

from __future__ import annotations

from typing import Any

from pyiceberg.avro.codecs import AvroCompressionCodec
from pyiceberg.avro.file import AvroFile, AvroOutputFile
from pyiceberg.io import FileIO, OutputFile
from pyiceberg.manifest import (
    DATA_FILE_TYPE,
    MANIFEST_LIST_FILE_SCHEMAS,
    DataFile,
    DataFileContent,
    FileFormat,
    ManifestContent,
    ManifestEntry,
    ManifestEntryStatus,
    ManifestFile,
    ManifestListWriterV2,
    ManifestWriterV2,
    PartitionFieldSummary,
    _inherit_from_manifest,
    manifest_entry_schema_with_data_file,
)
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.metadata import TableMetadataV3
from pyiceberg.table.snapshots import Snapshot
from pyiceberg.typedef import IcebergBaseModel, TableVersion

V3 = 3
_DATA_FILE_FIELDS = [field.name for field in DATA_FILE_TYPE[V3].fields]
_MANIFEST_FILE_FIELDS = [field.name for field in MANIFEST_LIST_FILE_SCHEMAS[V3].fields]


def _dump_v3(
    self: TableMetadataV3,
    exclude_none: bool = True,
    exclude: Any | None = None,
    by_alias: bool = True,
    **kwargs: Any,
) -> str:
    return IcebergBaseModel.model_dump_json(
        self, exclude_none=exclude_none, exclude=exclude, by_alias=by_alias, **kwargs
    )


TableMetadataV3.model_dump_json = _dump_v3  # type: ignore[method-assign]
# A new v3 table's rows start at id 0 (pyiceberg leaves next-row-id unset, and then never
# advances it: every later snapshot would lack its first-row-id).
TableMetadataV3.model_fields["next_row_id"].default = 0
TableMetadataV3.model_rebuild(force=True)


def data_file_field(data_file: DataFile, name: str) -> Any:
    """A field of *data_file* that pyiceberg's ``DataFile`` has no property for (the v3 ones);
    None where the record was read or built with an older schema."""
    position = _DATA_FILE_FIELDS.index(name)
    return data_file[position] if len(data_file) > position else None


def _set_data_file_field(data_file: DataFile, name: str, value: Any) -> None:
    data_file[_DATA_FILE_FIELDS.index(name)] = value


def manifest_first_row_id(manifest: ManifestFile) -> int | None:
    position = _MANIFEST_FILE_FIELDS.index("first_row_id")
    return manifest[position] if len(manifest) > position else None


def _as_v3_manifest(manifest: ManifestFile, first_row_id: int | None = None) -> ManifestFile:
    """*manifest* with the v3 list fields; *first_row_id* set if given."""
    fields = {name: manifest[i] for i, name in enumerate(_MANIFEST_FILE_FIELDS) if i < len(manifest)}
    if first_row_id is not None:
        fields["first_row_id"] = first_row_id
    return ManifestFile.from_args(_table_format_version=V3, **fields)


def as_v3_data_file(data_file: DataFile) -> DataFile:
    """*data_file* as a v3 record (the v3 fields empty where it had none), its spec id kept."""
    fields = {name: data_file[i] for i, name in enumerate(_DATA_FILE_FIELDS) if i < len(data_file)}
    converted = DataFile.from_args(_table_format_version=V3, **fields)
    converted.spec_id = data_file.spec_id
    return converted


class ManifestWriterV3(ManifestWriterV2):
    """pyiceberg's v2 manifest writer, writing the v3 schema from v3 records."""

    def __init__(
        self,
        spec: PartitionSpec,
        schema: Schema,
        output_file: OutputFile,
        snapshot_id: int,
        avro_compression: AvroCompressionCodec,
        content: ManifestContent = ManifestContent.DATA,
    ) -> None:
        super().__init__(spec, schema, output_file, snapshot_id, avro_compression)
        self._content = content

    def content(self) -> ManifestContent:
        return self._content

    @property
    def version(self) -> TableVersion:
        return V3

    @property
    def _meta(self) -> dict[str, str]:
        return {**super()._meta, "content": "deletes" if self._content == ManifestContent.DELETES else "data"}

    def new_writer(self) -> AvroOutputFile[ManifestEntry]:
        return AvroOutputFile[ManifestEntry](
            output_file=self._output_file,
            file_schema=self._with_partition(V3),
            record_schema=self._with_partition(V3),
            schema_name="manifest_entry",
            metadata=self._meta,
        )

    def prepare_entry(self, entry: ManifestEntry) -> ManifestEntry:
        entry = super().prepare_entry(entry)
        if len(entry.data_file) == len(_DATA_FILE_FIELDS):
            return entry
        return ManifestEntry.from_args(
            status=entry.status,
            snapshot_id=entry.snapshot_id,
            sequence_number=entry.sequence_number,
            file_sequence_number=entry.file_sequence_number,
            data_file=as_v3_data_file(entry.data_file),
        )

    def to_manifest_file(self) -> ManifestFile:
        return _as_v3_manifest(super().to_manifest_file())


class ManifestListWriterV3(ManifestListWriterV2):
    """pyiceberg's v2 manifest list writer, writing the v3 schema, and assigning row ids: each
    data manifest without a ``first_row_id`` gets the next free one and uses up its added and
    existing rows. ``next_row_id`` is the first id left free."""

    def __init__(
        self,
        output_file: OutputFile,
        snapshot_id: int,
        parent_snapshot_id: int | None,
        sequence_number: int,
        first_row_id: int,
        compression: AvroCompressionCodec,
    ) -> None:
        super().__init__(output_file, snapshot_id, parent_snapshot_id, sequence_number, compression)
        self._format_version = V3
        self._meta = {**self._meta, "format-version": "3", "first-row-id": str(first_row_id)}
        self.next_row_id = first_row_id

    def __enter__(self) -> ManifestListWriterV3:
        self._writer = AvroOutputFile[ManifestFile](
            output_file=self._output_file,
            record_schema=MANIFEST_LIST_FILE_SCHEMAS[V3],
            file_schema=MANIFEST_LIST_FILE_SCHEMAS[V3],
            schema_name="manifest_file",
            metadata=self._meta,
        )
        self._writer.__enter__()
        return self

    def prepare_manifest(self, manifest_file: ManifestFile) -> ManifestFile:
        prepared = super().prepare_manifest(manifest_file)
        if prepared.content != ManifestContent.DATA or manifest_first_row_id(prepared) is not None:
            return _as_v3_manifest(prepared)
        assigned = _as_v3_manifest(prepared, self.next_row_id)
        self.next_row_id += (prepared.added_rows_count or 0) + (prepared.existing_rows_count or 0)
        return assigned


def write_snapshot_list(
    io: FileIO,
    path: str,
    snapshot: Snapshot,
    first_row_id: int,
    manifests: list[ManifestFile],
    compression: AvroCompressionCodec,
) -> int:
    """*manifests* written as *snapshot*'s manifest list at *path*; the rows given ids (the
    snapshot's ``added-rows``)."""
    with ManifestListWriterV3(
        io.new_output(path),
        snapshot.snapshot_id,
        snapshot.parent_snapshot_id,
        snapshot.sequence_number,
        first_row_id,
        compression,
    ) as writer:
        writer.add_manifests(manifests)
    return writer.next_row_id - first_row_id


def read_manifest_list(io: FileIO, snapshot: Snapshot) -> list[ManifestFile]:
    """*snapshot*'s manifests with their v3 fields (``first_row_id``)."""
    with AvroFile[ManifestFile](
        io.new_input(snapshot.manifest_list),
        MANIFEST_LIST_FILE_SCHEMAS[V3],
        read_types={-1: ManifestFile, 508: PartitionFieldSummary},
        read_enums={517: ManifestContent},
    ) as reader:
        return list(reader)


def read_manifest_entries(
    io: FileIO, manifest: ManifestFile, discard_deleted: bool = True
) -> list[ManifestEntry]:
    """*manifest*'s entries with their v3 fields, sequence numbers inherited as pyiceberg does,
    and each data file's ``first_row_id`` as it inherits it (the manifest's, counted along the
    manifest's added and existing data files), so that a rewritten manifest keeps every row's id."""
    with AvroFile[ManifestEntry](
        io.new_input(manifest.manifest_path),
        manifest_entry_schema_with_data_file(V3, DATA_FILE_TYPE[V3]),
        read_types={-1: ManifestEntry, 2: DataFile},
        read_enums={0: ManifestEntryStatus, 101: FileFormat, 134: DataFileContent},
    ) as reader:
        entries = [_inherit_from_manifest(entry, manifest) for entry in reader]
    next_row_id = manifest_first_row_id(manifest)
    if next_row_id is not None and manifest.content == ManifestContent.DATA:
        for entry in entries:
            if entry.status == ManifestEntryStatus.DELETED:
                continue
            if data_file_field(entry.data_file, "first_row_id") is None:
                _set_data_file_field(entry.data_file, "first_row_id", next_row_id)
                next_row_id += entry.data_file.record_count
    return [e for e in entries if not discard_deleted or e.status != ManifestEntryStatus.DELETED]
