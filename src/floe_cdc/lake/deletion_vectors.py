"""Iceberg v3 deletion vectors, written as the spec lays them out (pyiceberg 0.12 reads them, and
cannot write them).

A merge on a v3 table writes one Puffin file per commit holding one ``deletion-vector-v1`` blob
per data file it deletes rows from. A data file that already has a vector gets a new one holding
the old positions and the new (the commit removes the old one), so that a data file has at most
one vector and a reader reads one blob for it, by its offset and length.

The formats (Iceberg spec, "Deletion Vectors"; Puffin spec):

- a blob: its length (4 bytes, big-endian) counting the magic and the vector; the magic
  ``D1 D3 39 64``; the vector, a 64-bit Roaring bitmap in the portable format (the number of
  32-bit bitmaps, 8 bytes little-endian, then each one's key, 4 bytes little-endian, and its
  bitmap as CRoaring's portable format, which pyroaring writes); a CRC-32 of magic and vector
  (4 bytes, big-endian);
- a Puffin file: ``PFA1``, the blobs, then the footer: ``PFA1``, a JSON payload describing each
  blob (type, the row position field, snapshot id and sequence number -1 for "inherited", offset,
  length, and the properties ``referenced-data-file`` and ``cardinality``), the payload's length
  (4 bytes, little-endian), four flag bytes (0: the footer is not compressed), ``PFA1``.
"""

from __future__ import annotations

import array
import json
import re
import threading
import uuid
import zlib
from collections import OrderedDict

import numpy as np
from pyiceberg.io import FileIO
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.table.locations import load_location_provider
from pyiceberg.table.metadata import TableMetadata
from pyroaring import BitMap

from floe_cdc.lake.pyiceberg_v3 import data_file_field

PUFFIN_MAGIC = b"PFA1"
VECTOR_MAGIC = bytes([0xD1, 0xD3, 0x39, 0x64])
BLOB_TYPE = "deletion-vector-v1"
ROW_POSITION_FIELD_ID = 2147483645  # the spec's reserved id of _pos
_VECTOR_ID = re.compile(r"#\d+\+\d+$")


# A deletion vector in memory: the 32-bit Roaring bitmap of the low halves of its positions, by
# their high half (in practice one: a data file of fewer than 2**32 rows). A value: nothing
# changes a vector's bitmaps once it is made (``union`` makes new ones).
Vector = dict[int, BitMap]


class _RecentVectors:
    """The vectors a process read or wrote last, by ``vector_id``, up to *budget* bytes of blobs
    (oldest out first).

    A vector never changes (a Puffin file is written once, and a vector is named by its file,
    offset and length), so remembering it is always right. Without this, a merge into a v3 table
    read, from the object store, the vector of every data file it deleted rows from: the ones
    the merge before had written. A partitioned table's batch touches hundreds of files, and the
    merges got slower with every batch (a GET per file)."""

    def __init__(self, budget: int) -> None:
        self.budget, self.size = budget, 0
        self._vectors: OrderedDict[str, tuple[Vector, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, identity: str) -> Vector | None:
        with self._lock:
            found = self._vectors.get(identity)
            if found is None:
                return None
            self._vectors.move_to_end(identity)
            return found[0]

    def put(self, identity: str, vector: Vector, size: int) -> None:
        with self._lock:
            if identity in self._vectors:
                return
            self._vectors[identity] = (vector, size)
            self.size += size
            while self.size > self.budget:
                _, (_, dropped) = self._vectors.popitem(last=False)
                self.size -= dropped


# About 2,000 vectors of 30k deleted rows each (Roaring arrays of 2 bytes a row).
_recent = _RecentVectors(budget=128 * 1024 * 1024)


def as_vector(positions: np.ndarray) -> Vector:
    """The vector deleting *positions* (row positions in one data file)."""
    positions = np.asarray(positions, np.int64)
    keys = positions >> 32
    return {int(key): _bitmap(positions[keys == key] & 0xFFFFFFFF) for key in np.unique(keys).tolist()}


def _bitmap(lows: np.ndarray) -> BitMap:
    # From an array.array, pyroaring copies the values in C; from numpy it iterates in Python.
    return BitMap(array.array("I", lows.astype(np.uint32).tobytes()))


def union(*vectors: Vector) -> Vector:
    """The rows any of *vectors* deletes."""
    merged: Vector = {}
    for vector in vectors:
        for key, bitmap in vector.items():
            merged[key] = merged[key] | bitmap if key in merged else bitmap
    return merged


def covers(vector: Vector, other: Vector) -> bool:
    """Whether *vector* deletes every row *other* deletes."""
    return all(key in vector and bitmap <= vector[key] for key, bitmap in other.items())


def vector_positions(vector: Vector) -> np.ndarray:
    """The row positions *vector* deletes, in order."""
    parts = [
        np.frombuffer(vector[key].to_array(), np.uint32).astype(np.int64) | (key << 32)
        for key in sorted(vector)
    ]
    return np.concatenate(parts) if parts else np.empty(0, np.int64)


def vector_blob(vector: Vector) -> bytes:
    """*vector* as a ``deletion-vector-v1`` blob."""
    keys = sorted(key for key, bitmap in vector.items() if bitmap)
    parts = [len(keys).to_bytes(8, "little")]
    for key in keys:
        parts += [key.to_bytes(4, "little"), vector[key].serialize()]
    body = VECTOR_MAGIC + b"".join(parts)
    return len(body).to_bytes(4, "big") + body + zlib.crc32(body).to_bytes(4, "big")


def blob_vector(blob: bytes) -> Vector:
    """The vector a ``deletion-vector-v1`` *blob* holds (checked against its CRC)."""
    length = int.from_bytes(blob[:4], "big")
    body = blob[4 : 4 + length]
    if body[:4] != VECTOR_MAGIC or zlib.crc32(body) != int.from_bytes(blob[4 + length : 8 + length], "big"):
        raise ValueError("not a deletion-vector-v1 blob, or a damaged one")
    vector, count, offset = {}, int.from_bytes(body[4:12], "little"), 12
    for _ in range(count):
        key = int.from_bytes(body[offset : offset + 4], "little")
        bitmap = BitMap.deserialize(body[offset + 4 :])
        offset += 4 + len(bitmap.serialize())  # the portable format is canonical
        vector[key] = bitmap
    return vector


def vector_id(vector: DataFile) -> str:
    """A deletion vector's identity as text: its Puffin file, and where in it (a commit's vectors
    share one file)."""
    offset, length = (
        data_file_field(vector, "content_offset"),
        data_file_field(vector, "content_size_in_bytes"),
    )
    return f"{vector.file_path}#{offset}+{length}"


def is_vector_id(text: str) -> bool:
    """Whether *text* is a ``vector_id`` (a delete file's path is not)."""
    return _VECTOR_ID.search(text) is not None


def read_vector(io: FileIO, vector: DataFile | str) -> Vector:
    """The rows a deletion vector (a manifest entry of a Puffin file, or its ``vector_id``)
    deletes, read by range: only its blob, unless this process read or wrote it lately."""
    identity = vector if isinstance(vector, str) else vector_id(vector)
    remembered = _recent.get(identity)
    if remembered is not None:
        return remembered
    path, _, place = identity.rpartition("#")
    offset, _, length = place.partition("+")
    with io.new_input(path).open() as stream:
        stream.seek(int(offset))
        read = blob_vector(stream.read(int(length)))
    _recent.put(identity, read, int(length))
    return read


def is_vector(delete_file: DataFile) -> bool:
    """Whether *delete_file* (a manifest entry) is a deletion vector."""
    return delete_file.file_format == FileFormat.PUFFIN


def write_vectors(
    metadata: TableMetadata, io: FileIO, vectors: dict[DataFile, Vector]
) -> list[tuple[DataFile, DataFile]]:
    """One Puffin file holding the deletion vector of each data file of *vectors*; each data
    file with the manifest entry of its vector (in its partition)."""
    provider = load_location_provider(metadata.location, metadata.properties)
    path = provider.new_data_location(f"{uuid.uuid4()}-deletes.puffin")
    content, described, entries = bytearray(PUFFIN_MAGIC), [], []
    for data_file in sorted(vectors, key=lambda f: f.file_path):
        cardinality = sum(len(bitmap) for bitmap in vectors[data_file].values())
        blob = vector_blob(vectors[data_file])
        properties = {"referenced-data-file": data_file.file_path, "cardinality": str(cardinality)}
        described.append(
            {
                "type": BLOB_TYPE,
                "fields": [ROW_POSITION_FIELD_ID],
                "snapshot-id": -1,
                "sequence-number": -1,
                "offset": len(content),
                "length": len(blob),
                "properties": properties,
            }
        )
        entries.append((data_file, len(content), len(blob), cardinality))
        content += blob
    payload = json.dumps({"blobs": described, "properties": {"created-by": "Floe"}}).encode()
    content += PUFFIN_MAGIC + payload + len(payload).to_bytes(4, "little") + bytes(4) + PUFFIN_MAGIC
    with io.new_output(path).create(overwrite=False) as stream:
        stream.write(bytes(content))
    written = []
    for data_file, offset, length, cardinality in entries:
        vector = DataFile.from_args(
            _table_format_version=3,
            content=DataFileContent.POSITION_DELETES,
            file_path=path,
            file_format=FileFormat.PUFFIN,
            partition=data_file.partition,
            record_count=cardinality,
            file_size_in_bytes=len(content),
            referenced_data_file=data_file.file_path,
            content_offset=offset,
            content_size_in_bytes=length,
        )
        vector.spec_id = data_file.spec_id
        written.append((data_file, vector))
        _recent.put(vector_id(vector), vectors[data_file], length)
    return written
