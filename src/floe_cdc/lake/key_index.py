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

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import DataFile
from pyiceberg.table import FileScanTask, Table

from floe_cdc.lake.changeset import keys_only
from floe_cdc.lake.deletion_vectors import covers, is_vector, is_vector_id, read_vector, vector_id
from floe_cdc.lake.pyiceberg_adapter import live_files, read_position_deletes

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
class IndexState:
    """A key index's entries as of one snapshot (see :meth:`KeyIndex.state`)."""

    key: list[str]
    position_field: str
    snapshot_id: int | None
    files: list[str]
    keys: list[pa.Table]
    file: np.ndarray
    pos: np.ndarray
    alive: np.ndarray
    runs: list[tuple[np.ndarray, np.ndarray]]  # sorted codes, their entries

    def live(self) -> IndexState:
        """Only the live entries, in key code order, in one run, and only the files they are in."""
        codes = np.concatenate([c for c, _ in self.runs]) if self.runs else np.zeros(0, np.int64)
        entries = np.concatenate([e for _, e in self.runs]) if self.runs else codes
        kept = self.alive[entries]
        codes, entries = codes[kept], entries[kept]
        if len(self.runs) > 1:  # one run is sorted already
            order = np.argsort(codes, kind="stable")
            codes, entries = codes[order], entries[order]
        keys = pa.concat_tables(self.keys).take(pa.array(entries, pa.int64())).combine_chunks()
        file = self.file[entries]
        present = np.bincount(file, minlength=len(self.files)) > 0
        renumbered = (np.cumsum(present) - 1).astype(np.int32)
        return IndexState(
            self.key,
            self.position_field,
            self.snapshot_id,
            [path for path, here in zip(self.files, present, strict=True) if here],
            [keys],
            renumbered[file],
            self.pos[entries],
            np.ones(len(entries), bool),
            [(codes, np.arange(len(entries), dtype=np.int64))],
        )


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
        index.catch_up(table, {})
        return index

    def catch_up(self, table: Table, applied: Mapping[str, frozenset[str]]) -> tuple[int, int]:
        """Bring the index from the snapshot it describes to *table*'s current one, reading only
        what changed: the data files it does not know (whole, their deletes applied), and the
        delete files that are new to a data file it knows. *applied*: the delete files that
        applied to each live data file of the snapshot the index describes (``applied_deletes``).
        A data file that lost a delete file (a rollback: rows came back) is read whole again, so
        the result is the index of the current snapshot whatever happened in between. Returns the
        number of data files read whole and of delete files read."""
        snapshot = table.current_snapshot()
        tasks = {task.file.file_path: task for task in live_files(table.metadata, table.io)}
        codes = {path: code for code, path in enumerate(self.files)}
        stale = np.zeros(len(self.files), bool)
        for path, code in codes.items():
            task = tasks.get(path)
            lost = applied[path] - _delete_ids(task) if task is not None and path in applied else None
            stale[code] = lost is None or (bool(lost) and not _vector_grew(table.io, lost, task))
        whole = [task for path, task in tasks.items() if path not in codes or stale[codes[path]]]
        newly = {
            codes[path]: [d for d in task.delete_files if _delete_id(d) not in applied[path]]
            for path, task in tasks.items()
            if path in codes and not stale[codes[path]]
        }
        deletes: dict[str, dict[str, pa.ChunkedArray]] = {}  # read once: one applies to many files
        self._forget(stale, self._deleted_entries(table.io, newly, deletes))
        projected = table.schema().select(*self.key, self.position_field)
        for task in whole:
            rows, positions = _live_rows(table, projected, task, deletes)
            self._add(task.file.file_path, rows, positions)
        self.data_files = {path: task.file for path, task in tasks.items()}
        self.snapshot_id = snapshot.snapshot_id if snapshot else None
        self._tidy()
        return len(whole), len(deletes)

    def _deleted_entries(
        self, io: FileIO, newly: dict[int, list[DataFile]], deletes: dict[str, dict[str, pa.ChunkedArray]]
    ) -> np.ndarray:
        """The live entries that the *newly* applying delete files (by file code) remove."""
        wanted = []
        for code, delete_files in newly.items():
            for delete_file in delete_files:
                positions = _deleted_positions(io, delete_file, deletes).get(self.files[code])
                if positions is not None:
                    wanted.append(_entry_codes(np.int64(code), positions.to_numpy()))
        if not wanted:
            return np.zeros(0, np.int64)
        wanted_codes = np.sort(np.concatenate(wanted))
        stored = _entry_codes(self._file.values, self._pos.values)
        # A binary search of the few wanted codes for each entry: np.isin would sort them all.
        found = np.minimum(np.searchsorted(wanted_codes, stored), len(wanted_codes) - 1)
        return np.nonzero((wanted_codes[found] == stored) & self._alive.values)[0]

    def _forget(self, stale: np.ndarray, entries: np.ndarray) -> None:
        """Clear the entries of the *stale* files (a mask by file code) and the given *entries*."""
        alive = self._alive.values
        if stale.any():
            entries = np.concatenate([entries, np.nonzero(stale[self._file.values])[0]])
        entries = np.unique(entries[alive[entries]])
        alive[entries] = False
        self._live_per_file.values[:] -= np.bincount(self._file.values[entries], minlength=len(self.files))

    def __len__(self) -> int:
        return int(self._live_per_file.values.sum())

    @property
    def nbytes(self) -> int:
        """The memory the index holds: key columns, per-entry arrays (with their spare room) and
        the sorted runs."""
        arrays = (self._file, self._pos, self._alive, self._live_per_file)
        return (
            sum(keys.nbytes for keys in self._keys)
            + sum(array._data.nbytes for array in arrays)
            + sum(run.codes.nbytes + run.entries.nbytes for run in self._runs)
        )

    def state(self) -> IndexState:
        """The index as it is now, unchanged by later commits: what saving it needs, taken between
        two commits in no time (appended arrays are never written in place, so views do), while
        the costly part (:meth:`IndexState.live`) can run on another thread."""
        return IndexState(
            self.key,
            self.position_field,
            self.snapshot_id,
            list(self.files),
            list(self._keys),
            self._file.values,
            self._pos.values,
            self._alive.values.copy(),
            [(run.codes, run.entries) for run in self._runs],
        )

    @classmethod
    def restored(
        cls, table: Table, key: list[str], position_field: str, state: IndexState
    ) -> KeyIndex | None:
        """The index of *state* (live entries only, in key code order, as :meth:`IndexState.live`
        gives them) for *table*, or None when its key columns' types are not the table's now.
        It describes ``state.snapshot_id``: catch it up before use."""
        index = cls.empty(table, key, position_field)
        keys = pa.concat_tables(state.keys) if state.keys else index.schema.empty_table()
        if not keys.schema.equals(index.schema):
            return None
        ((codes, entries),) = state.runs
        index.files, index._keys, index.snapshot_id = state.files, [keys], state.snapshot_id
        index._file = _Growing(np.int32, state.file)
        index._pos = _Growing(np.int64, state.pos)
        index._alive = _Growing(np.bool_, state.alive)
        index._live_per_file = _Growing(np.int64, np.bincount(state.file, minlength=len(state.files)))
        index._runs = [_Run(codes, entries)]
        return index

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
        self._tidy()
        self.snapshot_id = snapshot_id

    def _tidy(self) -> None:
        if 2 * len(self) < len(self._alive):
            self._compact()
        elif len(self._runs) > _MAX_RUNS:
            self._fold()

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


def _entry_codes(file_codes: np.ndarray | np.int64, positions: np.ndarray) -> np.ndarray:
    """One 64-bit code per (file code, row position): a data file holds fewer than 2**40 rows."""
    return (np.asarray(file_codes, np.int64) << 40) | positions.astype(np.int64)


def _delete_id(delete_file: DataFile) -> str:
    """How an index remembers a delete file: its path, or a deletion vector's ``vector_id``."""
    return vector_id(delete_file) if is_vector(delete_file) else delete_file.file_path


def _delete_ids(task: FileScanTask) -> frozenset[str]:
    return frozenset(_delete_id(d) for d in task.delete_files)


def _vector_grew(io: FileIO, lost: frozenset[str], task: FileScanTask) -> bool:
    """Whether a data file lost only deletion vectors, to one that deletes all their rows and
    more (a v3 merge replaces a file's vector so): its entries stay, and the new vector's rows
    are taken out. Anything else (a rollback brought rows back) has the file read again."""
    vectors = [d for d in task.delete_files if is_vector(d)]
    if len(vectors) != 1 or not all(is_vector_id(lost_id) for lost_id in lost):
        return False
    now = read_vector(io, vectors[0])
    return all(covers(now, read_vector(io, lost_id)) for lost_id in lost)


def applied_deletes(tasks: Iterable[FileScanTask]) -> dict[str, frozenset[str]]:
    """The delete files that apply to each live data file of a snapshot, from its *tasks*
    (``live_files``): what a :meth:`KeyIndex.catch_up` from that snapshot needs."""
    return {task.file.file_path: _delete_ids(task) for task in tasks}


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
    deleted = [
        by_path[task.file.file_path].to_numpy()
        for by_path in (_deleted_positions(table.io, d, deletes) for d in task.delete_files)
        if task.file.file_path in by_path
    ]
    if not deleted:
        return rows, positions
    keep = ~np.isin(positions, np.concatenate(deleted))
    return rows.filter(pa.array(keep)), positions[keep]


def _deleted_positions(
    io: FileIO, delete_file: DataFile, deletes: dict[str, dict[str, pa.ChunkedArray]]
) -> dict[str, pa.ChunkedArray]:
    """The positions *delete_file* removes, by data file path, read once into *deletes*: one
    delete file applies to many data files."""
    if delete_file.file_path not in deletes:
        deletes[delete_file.file_path] = read_position_deletes(io, delete_file)
    return deletes[delete_file.file_path]
