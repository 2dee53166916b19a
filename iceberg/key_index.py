"""Where each key of a table lives: data file, row position and source position.

A merge-on-read merge deletes a superseded row by its file and position, so it must know them
for every changed key without reading the table (see docs/merge-on-read.md). The index holds one
entry per live row, built from the key columns and ``_floe_position`` of the table's live data
files (their position deletes applied), stamped with the snapshot it describes, and kept current
from what each commit deletes and adds.

Its cost follows the batch, not the table:
- entries are appended, never copied: a commit adds the rows of its new files and clears the
  *alive* bit of the rows it deleted;
- lookups run ``np.searchsorted`` over sorted runs of 64-bit key codes (the key itself for one
  integer key; otherwise DuckDB's ``hash`` of the key columns, each hit then confirmed on the
  key columns, so a hash collision never matches the wrong row); each commit adds a small run,
  and runs fold into one when there are too many.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, _read_deletes
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table

from iceberg.changeset import keys_only

_MAX_RUNS = 8


@dataclass
class Located:
    """Incoming rows whose key the table holds: ``incoming`` (row of the incoming batch), ``entry``
    (entry of the index), and the stored row's ``file``, ``pos`` and source ``position``."""

    incoming: np.ndarray
    entry: np.ndarray
    file: list[str]
    pos: np.ndarray
    position: pa.Array


@dataclass
class _Run:
    codes: np.ndarray  # sorted
    entries: np.ndarray  # entry of each code


@dataclass
class KeyIndex:
    key: list[str]
    position_field: str
    exact_codes: bool  # one integer key column: its value is its code, no confirmation needed
    schema: pa.Schema  # of the key columns and the position field
    snapshot_id: int | None = None
    files: list[str] = field(default_factory=list)
    data_files: dict[str, DataFile] = field(default_factory=dict)  # the live ones, by path
    _keys: list[pa.Table] = field(default_factory=list)  # key columns + position, per addition
    _file: list[np.ndarray] = field(default_factory=list)
    _pos: list[np.ndarray] = field(default_factory=list)
    _alive: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    _runs: list[_Run] = field(default_factory=list)

    @classmethod
    def empty(cls, table: Table, key: list[str], position_field: str) -> KeyIndex:
        types = [table.schema().find_field(name).field_type for name in key]
        exact = len(key) == 1 and str(types[0]) in ("int", "long")
        return cls(key, position_field, exact, table.schema().select(*key, position_field).as_arrow())

    @classmethod
    def build(cls, table: Table, key: list[str], position_field: str) -> KeyIndex:
        """Read the key columns and positions of every live row of *table*'s current snapshot."""
        index = cls.empty(table, key, position_field)
        snapshot = table.current_snapshot()
        if snapshot is not None:
            projected = table.schema().select(*key, position_field)
            for task in table.scan().plan_files():
                rows, positions = _live_rows(table, projected, task)
                index.data_files[task.file.file_path] = task.file
                index._add(task.file.file_path, rows, positions)
            index._fold()
        index.snapshot_id = snapshot.snapshot_id if snapshot else None
        return index

    def __len__(self) -> int:
        return int(self._alive.sum())

    def _codes(self, keys: pa.Table) -> np.ndarray:
        if self.exact_codes:
            return keys[self.key[0]].to_numpy().astype(np.int64, copy=False)
        # DuckDB hashes the key columns in one vectorised call (pyarrow exposes no hash kernel).
        columns = ", ".join(f'"{i}"' for i in range(len(self.key)))
        connection = duckdb.connect()
        only_keys = keys_only(keys, self.key)
        connection.register("keys", only_keys.rename_columns([str(i) for i in range(len(self.key))]))
        hashed = connection.execute(f"SELECT hash({columns}) FROM keys").arrow().column(0)
        connection.close()
        return hashed.to_numpy().view(np.int64)

    def _add(self, path: str, rows: pa.Table, positions: np.ndarray) -> None:
        self.files.append(path)
        self._keys.append(keys_only(rows, [*self.key, self.position_field]).cast(self.schema))
        self._file.append(np.full(rows.num_rows, len(self.files) - 1, np.int32))
        self._pos.append(positions)
        first = len(self._alive)
        self._alive = np.concatenate([self._alive, np.ones(rows.num_rows, bool)])
        codes = self._codes(self._keys[-1])
        order = np.argsort(codes, kind="stable")
        self._runs.append(_Run(codes[order], order.astype(np.int64) + first))

    def _fold(self) -> None:
        """Merge every run into one, leaving out removed entries."""
        codes = np.concatenate([run.codes for run in self._runs]) if self._runs else np.zeros(0, np.int64)
        entries = np.concatenate([run.entries for run in self._runs]) if self._runs else codes
        live = self._alive[entries]
        codes, entries = codes[live], entries[live]
        order = np.argsort(codes, kind="stable")
        self._runs = [_Run(codes[order], entries[order])]

    def _column(self, name: str) -> pa.ChunkedArray:
        chunks = [chunk for part in self._keys for chunk in part[name].chunks]
        return pa.chunked_array(chunks, self.schema.field(name).type)

    def locate(self, incoming: pa.Table) -> Located:
        """The stored row of each incoming key the table holds."""
        codes = self._codes(keys_only(incoming, self.key))
        found_in, found_entry = [], []
        for run in self._runs:
            left = np.searchsorted(run.codes, codes, "left")
            right = np.searchsorted(run.codes, codes, "right")
            width = right - left
            hit = np.nonzero(width)[0]
            # A code may repeat (a hash collision, or a removed and re-added key): expand ranges.
            repeat = width[hit]
            rows = np.repeat(hit, repeat)
            within = np.arange(len(rows)) - np.repeat(np.cumsum(repeat) - repeat, repeat)
            found_in.append(rows)
            found_entry.append(run.entries[np.repeat(left[hit], repeat) + within])
        rows = np.concatenate(found_in) if found_in else np.zeros(0, np.int64)
        entries = np.concatenate(found_entry) if found_entry else np.zeros(0, np.int64)
        live = self._alive[entries]
        rows, entries = rows[live], entries[live]
        if not self.exact_codes and len(rows):
            same = np.ones(len(rows), bool)
            for name in self.key:
                stored = _plain(self._column(name).take(pa.array(entries)))
                wanted = _plain(incoming[name].take(pa.array(rows)))
                same &= pc.fill_null(pc.equal(stored, wanted.cast(stored.type)), False).to_numpy(
                    zero_copy_only=False
                )
            rows, entries = rows[same], entries[same]
        file_codes = np.concatenate(self._file)[entries] if len(entries) else np.zeros(0, np.int32)
        return Located(
            rows,
            entries,
            [self.files[code] for code in file_codes],
            np.concatenate(self._pos)[entries] if len(entries) else np.zeros(0, np.int64),
            self._column(self.position_field).take(pa.array(entries, pa.int64())),
        )

    def advance(
        self, removed: np.ndarray, added: list[tuple[DataFile, pa.Table]], snapshot_id: int | None
    ) -> None:
        """After a commit: clear the *removed* entries, add each new data file's rows (in file
        order: a row's position is its index), and stamp the commit's snapshot."""
        self._alive[removed] = False
        for data_file, rows in added:
            self.data_files[data_file.file_path] = data_file
            self._add(data_file.file_path, rows, np.arange(rows.num_rows, dtype=np.int64))
        if len(self._runs) > _MAX_RUNS:
            self._fold()
        self.snapshot_id = snapshot_id


def _plain(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Extension values (UUIDs) as their storage: compute kernels compare only the latter."""
    if isinstance(values.type, pa.BaseExtensionType):
        return pa.chunked_array([chunk.storage for chunk in values.chunks], values.type.storage_type)
    return values


def _live_rows(table: Table, projected: object, task: FileScanTask) -> tuple[pa.Table, np.ndarray]:
    """The key columns of one data file without its deleted rows, and each row's file position.

    The file is read without its deletes (so that positions are file positions), then the
    task's position deletes are applied here; pyiceberg maps renamed columns by field id.
    """
    rows = ArrowScan(table.metadata, table.io, projected, AlwaysTrue()).to_table([FileScanTask(task.file)])
    positions = np.arange(rows.num_rows, dtype=np.int64)
    deleted = [
        deleted_at.to_numpy()
        for delete_file in task.delete_files
        for path, deleted_at in _read_deletes(table.io, delete_file).items()
        if path == task.file.file_path
    ]
    if not deleted:
        return rows, positions
    keep = ~np.isin(positions, np.concatenate(deleted))
    return rows.filter(pa.array(keep)), positions[keep]
