"""Where each key of a table lives: its data file and row position.

A merge-on-read merge deletes a superseded row by its file and position, so it must know them
for every changed key without reading the table (see docs/merge-on-read.md). The index holds one
entry per live row, built from the key columns of the table's live data files (their position
deletes applied), stamped with the snapshot it describes, and kept current from what each
commit deletes and adds.

Its memory is 16 bytes per live row for one integer key (packed entries in sharded sorted runs,
``index_runs``), plus the key columns for other keys:
- an entry's code is the key itself for one integer key; otherwise DuckDB's ``hash`` of the key
  columns, each hit then confirmed on the key columns (kept per data file), so a hash collision
  never matches the wrong row;
- no source position per row: a merge needs the stored row's only to refuse a change older than
  it, and each file's highest one (kept per file) says which rows cannot be newer than their
  change; the rare others are read from their file (``Located.newest``).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io import FileIO
from pyiceberg.io.pyarrow import ArrowScan
from pyiceberg.manifest import DataFile
from pyiceberg.schema import Schema
from pyiceberg.table import FileScanTask, Table

from floe_cdc.lake.changeset import keys_only
from floe_cdc.lake.deletion_vectors import covers, is_vector, is_vector_id, read_vector, vector_id
from floe_cdc.lake.index_runs import (
    GONE,
    SHARDS,
    SPILL_ENTRIES,
    Run,
    by_run,
    by_shard,
    entry_handles,
    is_mapped,
    mapped,
    merged,
    pair_codes,
    shards_of,
    sorted_run,
    tidy,
)
from floe_cdc.lake.pyiceberg_adapter import live_files, read_position_deletes

_BUILD_ENTRIES = 4_000_000  # entries gathered from whole files before they join the shards


@dataclass
class Located:
    """Incoming rows whose key the table holds: ``incoming`` (row of the incoming batch), ``entry``
    (the entry's handle), the stored row's ``file`` and ``pos``, and ``newest``: the highest
    source position in that file, which the stored row's does not exceed."""

    incoming: np.ndarray
    entry: np.ndarray
    file: list[str]
    pos: np.ndarray
    newest: pa.Array


@dataclass
class _FileKeys:
    """The key columns of a data file's indexed rows, by row position: what a hashed code is
    confirmed on."""

    pos: np.ndarray  # sorted
    keys: pa.Table

    def at(self, pos: np.ndarray) -> pa.Table:
        return self.keys.take(pa.array(np.searchsorted(self.pos, pos), pa.int64()))


@dataclass
class IndexState:
    """A key index's entries as of one snapshot (see :meth:`KeyIndex.state`)."""

    key: list[str]
    position_field: str
    snapshot_id: int | None
    files: list[str]
    newest: list[Decimal | None]  # by file ordinal
    shards: list[list[Run]]
    file_keys: list[_FileKeys | None]  # by file ordinal; None for one integer key

    @classmethod
    def from_live(
        cls,
        key: list[str],
        position_field: str,
        snapshot_id: int | None,
        files: list[str],
        newest: list[Decimal | None],
        entries: tuple[np.ndarray, np.ndarray, np.ndarray],
    ) -> IndexState:
        """The state of the live *entries* (codes, file ordinals, row positions) as
        :meth:`live` gives them: one run per shard."""
        codes, file, pos = entries
        bounds = np.searchsorted(shards_of(codes), np.arange(SHARDS + 1))
        shards = [
            [Run(codes[start:end], file[start:end].astype(np.int32), pos[start:end].astype(np.uint32))]
            if end > start
            else []
            for start, end in itertools.pairwise(bounds)
        ]
        return cls(key, position_field, snapshot_id, files, newest, shards, [None] * len(files))

    def live(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Codes, file ordinals and row positions of the live entries, by shard and in code
        order within each: a restore splits them by shard without sorting."""
        runs = []
        for shard in self.shards:
            whole = shard[0].live() if shard else None
            for run in shard[1:]:
                whole = merged(whole, run)
            if whole is not None:
                runs.append(whole)
        if not runs:
            return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.uint32)
        return tuple(
            np.concatenate([getattr(run, name) for run in runs]) for name in ("codes", "file", "pos")
        )


@dataclass
class KeyIndex:
    key: list[str]
    position_field: str
    exact_codes: bool  # one integer key column: its value is its code, no confirmation needed
    schema: pa.Schema  # of the key columns and the position field
    snapshot_id: int | None = None
    files: list[str] = field(default_factory=list)  # by file ordinal, including gone ones
    data_files: dict[str, DataFile] = field(default_factory=dict)  # the live ones, by path
    _newest: list[Decimal | None] = field(default_factory=list)  # highest source position, by file
    _file_keys: list[_FileKeys | None] = field(default_factory=list)  # by file, for hashed codes
    _live: list[int] = field(default_factory=list)  # live entries, by file ordinal
    _shards: list[list[Run]] = field(default_factory=lambda: [[] for _ in range(SHARDS)])
    _pending: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = field(default_factory=list)

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
        codes = {path: code for code, path in enumerate(self.files)}  # a file read again: its last
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
        self._remove(self._deleted_entries(table.io, newly, deletes), stale)
        projected = table.schema().select(*self.key, self.position_field)
        for task in whole:
            self._add(task.file.file_path, *_live_rows(table, projected, task, deletes))
            if sum(len(codes) for codes, _, _ in self._pending) >= _BUILD_ENTRIES:
                self._settle()
        self._settle()
        self.data_files = {path: task.file for path, task in tasks.items()}
        self.snapshot_id = snapshot.snapshot_id if snapshot else None
        self._renumber_files()
        return len(whole), len(deletes)

    def _runs(self) -> Iterable[tuple[int, int, Run]]:
        for shard, runs in enumerate(self._shards):
            for number, run in enumerate(runs):
                yield shard, number, run

    def _find(self, wanted: np.ndarray, pairs: bool) -> np.ndarray:
        """The handles of the live entries whose (file ordinal, row position) code is among the
        sorted *wanted* codes (*pairs*), or whose file ordinal is (otherwise). Scans every entry:
        for the rare changes that come from another writer or a worn file, not per change."""
        found = []
        if not len(wanted):
            return np.zeros(0, np.int64)
        for shard, number, run in self._runs():
            stored = pair_codes(run.file, run.pos) if pairs else run.file.astype(np.int64)
            at = np.minimum(np.searchsorted(wanted, stored), len(wanted) - 1)
            hit = np.nonzero((wanted[at] == stored) & (run.file != GONE))[0]
            found.append(entry_handles(shard, number, hit))
        return np.concatenate(found) if found else np.zeros(0, np.int64)

    def _deleted_entries(
        self, io: FileIO, newly: dict[int, list[DataFile]], deletes: dict[str, dict[str, pa.ChunkedArray]]
    ) -> np.ndarray:
        """The handles of the live entries that the *newly* applying delete files (by file
        ordinal) remove."""
        wanted = []
        for code, delete_files in newly.items():
            for delete_file in delete_files:
                positions = _deleted_positions(io, delete_file, deletes).get(self.files[code])
                if positions is not None:
                    wanted.append(pair_codes(np.int64(code), positions.to_numpy()))
        if not wanted:
            return np.zeros(0, np.int64)
        return self._find(np.unique(np.concatenate(wanted)), pairs=True)

    def _remove(self, handles: np.ndarray, stale: np.ndarray | None = None) -> None:
        """Mark the entries of *handles* removed, and every entry of the *stale* files (a mask by
        file ordinal)."""
        if stale is not None and stale.any():
            gone = np.nonzero(stale)[0]
            handles = np.concatenate([handles, self._find(gone.astype(np.int64), pairs=False)])
        counts = np.zeros(len(self.files), np.int64)
        for shard, number, _, offsets in by_run(np.unique(handles)):
            run = self._shards[shard][number]
            files = run.file[offsets]
            live = files != GONE
            counts += np.bincount(files[live], minlength=len(self.files))
            run.file[offsets[live]] = GONE
            run.removed += int(live.sum())
        for code in np.nonzero(counts)[0]:
            self._live[code] -= int(counts[code])

    def __len__(self) -> int:
        return sum(self._live)

    @property
    def nbytes(self) -> int:
        """The bytes the index holds: its runs and, for hashed codes, the key columns."""
        runs = sum(run.nbytes for _, _, run in self._runs())
        return runs + sum(keys.keys.nbytes + keys.pos.nbytes for keys in self._file_keys if keys is not None)

    @property
    def memory_bytes(self) -> int:
        """The bytes the index holds in memory: those of its runs memory-mapped from disk are
        the page cache's, which the kernel reclaims when memory runs short."""
        on_disk = sum(a.nbytes for _, _, run in self._runs() for a in (run.codes, run.pos) if is_mapped(a))
        return self.nbytes - on_disk

    def spill(self, directory: Path) -> int:
        """Move the codes and row positions of the long runs to files in *directory* and
        memory-map them: for an index bigger than the memory it may take. Lookups then read
        those pages from the page cache (from disk once evicted). The files have no name (they
        go when the index lets go of them, or with the process); the file ordinals, written in
        place, stay in memory. Runs merged later are in memory again until the next spill.
        Returns the bytes moved."""
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        moved = 0
        for _, _, run in self._runs():
            if len(run) >= SPILL_ENTRIES and not is_mapped(run.codes):
                run.codes, run.pos = mapped(directory, run.codes), mapped(directory, run.pos)
                moved += run.codes.nbytes + run.pos.nbytes
        return moved

    def state(self) -> IndexState:
        """The index as it is now, unchanged by later commits: what saving it needs, taken between
        two commits in a copy of the file ordinals (the one array written in place), while the
        costly part (:meth:`IndexState.live`) can run on another thread."""
        shards = [
            [Run(run.codes, run.file.copy(), run.pos, run.removed) for run in runs] for runs in self._shards
        ]
        return IndexState(
            self.key,
            self.position_field,
            self.snapshot_id,
            list(self.files),
            list(self._newest),
            shards,
            list(self._file_keys),
        )

    @classmethod
    def restored(
        cls,
        table: Table,
        key: list[str],
        position_field: str,
        state: IndexState,
        keys: pa.Table | None = None,
    ) -> KeyIndex | None:
        """The index of *state*, whose shards each hold one run, for *table*; None when its key
        columns' types are not the table's now. *keys*: the key columns of a hashed index's
        entries, in the order of its runs. It describes ``state.snapshot_id``: catch it up
        before use."""
        index = cls.empty(table, key, position_field)
        if keys is not None and not keys.schema.equals(keys_only(index.schema.empty_table(), key).schema):
            return None
        if index.exact_codes != (keys is None):
            return None
        index.files, index._newest, index.snapshot_id = state.files, state.newest, state.snapshot_id
        index._shards = state.shards
        files = np.concatenate([run.file for _, _, run in index._runs()] or [np.zeros(0, np.int32)])
        index._live = np.bincount(files, minlength=len(state.files)).tolist()
        index._file_keys = [None] * len(state.files)
        if keys is not None:
            pos = np.concatenate([run.pos for _, _, run in index._runs()] or [np.zeros(0, np.uint32)])
            order = np.lexsort((pos, files))
            bounds = np.searchsorted(files[order], np.arange(len(state.files) + 1))
            for code in range(len(state.files)):
                mine = order[bounds[code] : bounds[code + 1]]
                index._file_keys[code] = _FileKeys(pos[mine], keys.take(pa.array(mine, pa.int64())))
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

    def _add(self, path: str, rows: pa.Table, positions: np.ndarray, newest: Decimal | None) -> None:
        """Index the *rows* of a data file (their key columns) at *positions*; *newest*: the
        highest source position of the file, deleted rows included (so that it depends on the
        file alone). They join the shards at the next :meth:`_settle`."""
        if len(positions) and positions[-1] >= 2**32:
            raise ValueError(
                f"data file {path} holds more than 2**32 rows, more than a key index can address"
            )
        code = len(self.files)
        self.files.append(path)
        self._newest.append(newest)
        self._live.append(rows.num_rows)
        keys = keys_only(rows, self.key)
        self._file_keys.append(None if self.exact_codes else _FileKeys(positions, keys.combine_chunks()))
        codes = self._codes(keys)
        self._pending.append((codes, np.full(len(codes), code, np.int32), positions.astype(np.uint32)))

    def _settle(self) -> None:
        """Sort the added entries into one new run per shard, and merge runs that are due."""
        if not self._pending:
            return
        codes, files, pos = (np.concatenate(part) for part in zip(*self._pending, strict=True))
        self._pending = []
        order, bounds = by_shard(codes)
        codes, files, pos = codes[order], files[order], pos[order]
        for shard, runs in enumerate(self._shards):
            mine = slice(bounds[shard], bounds[shard + 1])
            if bounds[shard + 1] > bounds[shard]:
                runs.append(sorted_run(codes[mine], files[mine], pos[mine]))
            tidy(runs)

    def locate(self, incoming: pa.Table) -> Located:
        """The stored row of each incoming key the table holds."""
        self._settle()
        codes = self._codes(keys_only(incoming, self.key))
        order, bounds = by_shard(codes)
        found_rows, found_handles, found_file, found_pos = [], [], [], []
        for shard, runs in enumerate(self._shards):
            rows = order[bounds[shard] : bounds[shard + 1]]
            if not len(rows) or not runs:
                continue
            # Searching in sorted order walks each run forwards: several times faster on large
            # runs than probing it at random.
            rows = rows[np.argsort(codes[rows], kind="stable")]
            wanted = codes[rows]
            for number, run in enumerate(runs):
                left = np.searchsorted(run.codes, wanted, "left")
                width = np.searchsorted(run.codes, wanted, "right") - left
                hit = np.nonzero(width)[0]
                # A code may repeat (a hash collision, or a removed and re-added key): expand ranges.
                repeat = width[hit]
                within = np.arange(repeat.sum()) - np.repeat(np.cumsum(repeat) - repeat, repeat)
                offsets = np.repeat(left[hit], repeat) + within
                live = run.file[offsets] != GONE
                offsets = offsets[live]
                found_rows.append(np.repeat(rows[hit], repeat)[live])
                found_handles.append(entry_handles(shard, number, offsets))
                found_file.append(run.file[offsets])
                found_pos.append(run.pos[offsets])
        rows, handles, files, pos = (
            np.concatenate(parts) if parts else np.zeros(0, dtype)
            for parts, dtype in (
                (found_rows, np.int64),
                (found_handles, np.int64),
                (found_file, np.int32),
                (found_pos, np.uint32),
            )
        )
        if not self.exact_codes and len(rows):
            same = np.ones(len(rows), bool)
            stored_keys = stored_key_columns(self._file_keys, files, pos)
            for name in self.key:
                stored = _plain(stored_keys[name])
                wanted_keys = _plain(incoming[name].take(pa.array(rows)))
                same &= pc.fill_null(pc.equal(stored, wanted_keys.cast(stored.type)), False).to_numpy(
                    zero_copy_only=False
                )
            rows, handles, files, pos = rows[same], handles[same], files[same], pos[same]
        newest = pa.array(self._newest, self.schema.field(self.position_field).type)
        return Located(
            rows,
            handles,
            [self.files[code] for code in files],
            pos.astype(np.int64),
            newest.take(pa.array(files, pa.int32())),
        )

    def worn_files(
        self, removed: np.ndarray, delete_ratio: float, max_rows: int
    ) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """The data files whose deleted share reaches *delete_ratio* once the *removed* entries
        go, most worn first, whose live rows fit in *max_rows* together: each with its live
        entries and their row positions. A file with no live row left costs nothing and is
        always among them."""
        removed = np.unique(removed)
        removed_files = self._at(removed, "file")
        live = np.array(self._live, np.int64) - np.bincount(removed_files, minlength=len(self.files))
        worn = []
        latest = {path: code for code, path in enumerate(self.files)}  # a file read again: its last
        for path, data_file in self.data_files.items():
            code = latest[path]
            if data_file.record_count:
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
        handles = self._find(np.array(sorted(chosen), np.int64), pairs=False)
        handles = handles[~np.isin(handles, removed)]
        files, pos = self._at(handles, "file"), self._at(handles, "pos")
        return [
            (self.files[code], handles[files == code], pos[files == code].astype(np.int64)) for code in chosen
        ]

    def _at(self, handles: np.ndarray, name: str) -> np.ndarray:
        """The ``file`` or ``pos`` of each entry of *handles*."""
        out = np.zeros(len(handles), np.int64)
        for shard, number, mine, offsets in by_run(handles):
            out[mine] = getattr(self._shards[shard][number], name)[offsets]
        return out

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
        self._remove(removed)
        for path in dropped_files or []:
            self.data_files.pop(path, None)
        for data_file, rows in added:
            self.data_files[data_file.file_path] = data_file
            positions = np.arange(rows.num_rows, dtype=np.int64)
            self._add(data_file.file_path, rows, positions, pc.max(rows[self.position_field]).as_py())
        self._settle()
        self._renumber_files()
        self.snapshot_id = snapshot_id

    def _renumber_files(self) -> None:
        """Forget the files without a live entry once they are most of the list, renumbering the
        others, so that a replicator that commits every second keeps a list the size of its
        table's files (amortised: each renumbering at least halves the list)."""
        kept = [code for code, live in enumerate(self._live) if live]
        if 2 * len(kept) > len(self.files) or len(self.files) < 64:
            return
        mapping = np.full(len(self.files) + 1, GONE, np.int32)  # the last slot maps GONE
        mapping[kept] = np.arange(len(kept), dtype=np.int32)
        for runs in self._shards:
            for number, run in enumerate(runs):
                # A new array, never written in place: a state taken before may still hold it.
                runs[number] = Run(run.codes, mapping[run.file], run.pos, run.removed)
        self.files = [self.files[code] for code in kept]
        self._newest = [self._newest[code] for code in kept]
        self._file_keys = [self._file_keys[code] for code in kept]
        self._live = [self._live[code] for code in kept]
        self.data_files = {path: self.data_files[path] for path in self.files if path in self.data_files}


def stored_key_columns(file_keys: list[_FileKeys | None], files: np.ndarray, pos: np.ndarray) -> pa.Table:
    """The key columns stored at each (file ordinal, row position), in their order."""
    order = np.argsort(files, kind="stable")
    codes, starts = np.unique(files[order], return_index=True)
    bounds = np.append(starts, len(order))
    parts = [
        file_keys[code].at(pos[order[start:end]])
        for code, start, end in zip(codes, bounds[:-1], bounds[1:], strict=True)
    ]
    return pa.concat_tables(parts).take(pa.array(np.argsort(order, kind="stable"), pa.int64()))


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
    table: Table, projected: Schema, task: FileScanTask, deletes: dict[str, dict[str, pa.ChunkedArray]]
) -> tuple[pa.Table, np.ndarray, Decimal | None]:
    """The key columns of one data file without its deleted rows, each row's file position, and
    the file's highest source position (deleted rows included).

    The file is read without its deletes (so that positions are file positions), then the
    task's position deletes are applied here; pyiceberg maps renamed columns by field id. Each
    delete file is read once into *deletes* (positions by data file path), whatever number of
    data files it applies to.
    """
    rows = ArrowScan(table.metadata, table.io, projected, AlwaysTrue()).to_table([FileScanTask(task.file)])
    positions = np.arange(rows.num_rows, dtype=np.int64)
    newest = pc.max(rows[projected.fields[-1].name]).as_py()
    deleted = [
        by_path[task.file.file_path].to_numpy()
        for by_path in (_deleted_positions(table.io, d, deletes) for d in task.delete_files)
        if task.file.file_path in by_path
    ]
    if not deleted:
        return rows, positions, newest
    keep = ~np.isin(positions, np.concatenate(deleted))
    return rows.filter(pa.array(keep)), positions[keep], newest


def _deleted_positions(
    io: FileIO, delete_file: DataFile, deletes: dict[str, dict[str, pa.ChunkedArray]]
) -> dict[str, pa.ChunkedArray]:
    """The positions *delete_file* removes, by data file path, read once into *deletes*: one
    delete file applies to many data files."""
    if delete_file.file_path not in deletes:
        deletes[delete_file.file_path] = read_position_deletes(io, delete_file)
    return deletes[delete_file.file_path]
