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
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table

from floe_cdc.lake.changeset import keys_only
from floe_cdc.lake.pyiceberg_adapter import read_position_deletes

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


class _Growing:
    """An append-only numpy array with spare room: an append costs what it appends, not a copy
    of everything before it (numpy arrays do not grow in place)."""

    def __init__(self, dtype: type, values: np.ndarray | None = None) -> None:
        self._data = np.zeros(max(1024, len(values) if values is not None else 0), dtype)
        self._size = 0
        if values is not None:
            self.append(values)

    def __len__(self) -> int:
        return self._size

    @property
    def values(self) -> np.ndarray:
        """The appended values: a view, so that assigning into it changes them."""
        return self._data[: self._size]

    def append(self, values: np.ndarray) -> None:
        end = self._size + len(values)
        if end > len(self._data):
            grown = np.zeros(max(end, 2 * len(self._data)), self._data.dtype)
            grown[: self._size] = self.values
            self._data = grown
        self._data[self._size : end] = values
        self._size = end


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
    _file: _Growing = field(default_factory=lambda: _Growing(np.int32))  # per entry: its file's code
    _pos: _Growing = field(default_factory=lambda: _Growing(np.int64))  # per entry: its row position
    _alive: _Growing = field(default_factory=lambda: _Growing(np.bool_))
    _live_per_file: _Growing = field(default_factory=lambda: _Growing(np.int64))  # by file code
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
            deletes: dict[str, dict[str, pa.ChunkedArray]] = {}  # read once: one applies to many files
            for task in table.scan().plan_files():
                rows, positions = _live_rows(table, projected, task, deletes)
                index.data_files[task.file.file_path] = task.file
                index._add(task.file.file_path, rows, positions)
            index._fold()
        index.snapshot_id = snapshot.snapshot_id if snapshot else None
        return index

    def __len__(self) -> int:
        return int(self._live_per_file.values.sum())

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
        self._live_per_file.append(np.array([rows.num_rows], np.int64))
        first = len(self._alive)
        self._alive.append(np.ones(rows.num_rows, bool))
        codes = self._codes(self._keys[-1])
        order = np.argsort(codes, kind="stable")
        self._runs.append(_Run(codes[order], order.astype(np.int64) + first))

    def _fold(self) -> None:
        """Merge every run into one, leaving out removed entries."""
        codes = np.concatenate([run.codes for run in self._runs]) if self._runs else np.zeros(0, np.int64)
        entries = np.concatenate([run.entries for run in self._runs]) if self._runs else codes
        live = self._alive.values[entries]
        codes, entries = codes[live], entries[live]
        order = np.argsort(codes, kind="stable")
        self._runs = [_Run(codes[order], entries[order])]

    def _column(self, name: str) -> pa.ChunkedArray:
        chunks = [chunk for part in self._keys for chunk in part[name].chunks]
        return pa.chunked_array(chunks, self.schema.field(name).type)

    def locate(self, incoming: pa.Table) -> Located:
        """The stored row of each incoming key the table holds."""
        codes = self._codes(keys_only(incoming, self.key))
        # Searching in sorted order walks each run forwards: several times faster on large runs
        # than probing it at random.
        by_code = np.argsort(codes, kind="stable")
        codes = codes[by_code]
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
        rows = by_code[np.concatenate(found_in)] if found_in else np.zeros(0, np.int64)
        entries = np.concatenate(found_entry) if found_entry else np.zeros(0, np.int64)
        live = self._alive.values[entries]
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
        file_codes = self._file.values[entries]
        return Located(
            rows,
            entries,
            [self.files[code] for code in file_codes],
            self._pos.values[entries],
            self._column(self.position_field).take(pa.array(entries, pa.int64())),
        )

    def worn_files(
        self, removed: np.ndarray, delete_ratio: float, max_rows: int
    ) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """The data files whose deleted share reaches *delete_ratio* once the *removed* entries
        go, most worn first, whose live rows fit in *max_rows* together: each with its live
        entries and their row positions. A file with no live row left costs nothing and is
        always among them."""
        removed = np.unique(removed[self._alive.values[removed]])
        live = self._live_per_file.values - np.bincount(self._file.values[removed], minlength=len(self.files))
        worn = []
        for code, path in enumerate(self.files):
            data_file = self.data_files.get(path)
            if data_file is not None and data_file.record_count:
                share = 1 - live[code] / data_file.record_count
                if share >= delete_ratio:
                    worn.append((share, code))
        chosen = []
        for _, code in sorted(worn, reverse=True):
            if live[code] <= max_rows:
                max_rows -= live[code]
                chosen.append(code)
        if not chosen:
            return []
        alive = self._alive.values.copy()
        alive[removed] = False
        found = []
        for code in chosen:
            entries = np.nonzero(alive & (self._file.values == code))[0]
            found.append((self.files[code], entries, self._pos.values[entries]))
        return found

    def advance(
        self,
        removed: np.ndarray,
        added: list[tuple[DataFile, pa.Table]],
        snapshot_id: int | None,
        dropped_files: list[str] | None = None,
    ) -> None:
        """After a commit: clear the *removed* entries, forget the data files the commit
        removed, add each new data file's rows (in file order: a row's position is its index),
        and stamp the commit's snapshot."""
        removed = np.unique(removed[self._alive.values[removed]])
        self._alive.values[removed] = False
        self._live_per_file.values[:] -= np.bincount(self._file.values[removed], minlength=len(self.files))
        for path in dropped_files or []:
            self.data_files.pop(path, None)
        for data_file, rows in added:
            self.data_files[data_file.file_path] = data_file
            self._add(data_file.file_path, rows, np.arange(rows.num_rows, dtype=np.int64))
        if 2 * len(self) < len(self._alive):
            self._compact()
        elif len(self._runs) > _MAX_RUNS:
            self._fold()
        self.snapshot_id = snapshot_id

    def _compact(self) -> None:
        """Drop removed entries from the store once they outnumber the live ones, so that a
        following replicator's index stays the size of the table (amortised: each compaction
        at least halves the store)."""
        alive = np.nonzero(self._alive.values)[0]
        renumbered = np.full(len(self._alive), -1, np.int64)
        renumbered[alive] = np.arange(len(alive))
        self._keys = [pa.concat_tables(self._keys).take(pa.array(alive, pa.int64())).combine_chunks()]
        file_codes = self._file.values[alive]
        self._pos = _Growing(np.int64, self._pos.values[alive])
        live_files = np.unique(file_codes)
        self.files = [self.files[code] for code in live_files]
        self._file = _Growing(np.int32, np.searchsorted(live_files, file_codes).astype(np.int32))
        self._live_per_file = _Growing(np.int64, np.bincount(self._file.values, minlength=len(self.files)))
        self.data_files = {path: self.data_files[path] for path in self.files if path in self.data_files}
        self._alive = _Growing(np.bool_, np.ones(len(alive), bool))
        for run in self._runs:
            kept = renumbered[run.entries] >= 0
            run.codes, run.entries = run.codes[kept], renumbered[run.entries[kept]]
        self._fold()


def _plain(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Extension values (UUIDs) as their storage: compute kernels compare only the latter."""
    if isinstance(values.type, pa.BaseExtensionType):
        return pa.chunked_array([chunk.storage for chunk in values.chunks], values.type.storage_type)
    return values


def _live_rows(
    table: Table, projected: object, task: FileScanTask, deletes: dict[str, dict[str, pa.ChunkedArray]]
) -> tuple[pa.Table, np.ndarray]:
    """The key columns of one data file without its deleted rows, and each row's file position.

    The file is read without its deletes (so that positions are file positions), then the
    task's position deletes are applied here; pyiceberg maps renamed columns by field id. Each
    delete file is read once into *deletes* (positions by data file path), whatever number of
    data files it applies to.
    """
    rows = ArrowScan(table.metadata, table.io, projected, AlwaysTrue()).to_table([FileScanTask(task.file)])
    positions = np.arange(rows.num_rows, dtype=np.int64)
    for delete_file in task.delete_files:
        if delete_file.file_path not in deletes:
            deletes[delete_file.file_path] = read_position_deletes(table.io, delete_file)
    deleted = [
        by_path[task.file.file_path].to_numpy()
        for by_path in (deletes[d.file_path] for d in task.delete_files)
        if task.file.file_path in by_path
    ]
    if not deleted:
        return rows, positions
    keep = ~np.isin(positions, np.concatenate(deleted))
    return rows.filter(pa.array(keep)), positions[keep]
