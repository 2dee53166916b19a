"""Where each key of a table lives: data file, row position and source position.

A merge-on-read merge deletes a superseded row by its file and position, so it must know them
for every changed key without reading the table (see docs/merge-on-read.md). The index is an
Arrow table with one row per live row of the table, built from the key columns and
``_floe_position`` of its live data files (their position deletes applied), stamped with the
snapshot it describes, and kept current from what each commit deletes and adds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyiceberg.expressions import AlwaysTrue
from pyiceberg.io.pyarrow import ArrowScan, _read_deletes
from pyiceberg.table import FileScanTask, Table

from iceberg.changeset import keys_only

FILE, POS, ROW, INCOMING = "__file", "__pos", "__row", "__incoming"
# A data file's path is repeated on each of its rows: dictionary-encoded, it costs 4 bytes a row.
FILE_TYPE = pa.dictionary(pa.int32(), pa.string())


def _file_column(path: str, rows: int) -> pa.DictionaryArray:
    return pa.DictionaryArray.from_arrays(pa.array(np.zeros(rows, np.int32)), pa.array([path]))


def _positions(rows: int) -> pa.Array:
    return pa.array(np.arange(rows, dtype=np.int64))


@dataclass
class Located:
    """Incoming rows whose key the table holds: ``incoming`` (row of the incoming batch),
    ``row`` (row of the index), ``file``, ``pos`` and the stored ``position``."""

    incoming: pa.Array
    row: pa.Array
    file: pa.Array
    pos: pa.Array
    position: pa.Array


@dataclass
class KeyIndex:
    key: list[str]
    position_field: str
    rows: pa.Table  # key columns, position field, __file, __pos
    snapshot_id: int | None

    @classmethod
    def build(cls, table: Table, key: list[str], position_field: str) -> KeyIndex:
        """Read the key columns and positions of every live row of *table*'s current snapshot."""
        snapshot = table.current_snapshot()
        schema = table.schema()
        projected = schema.select(*key, position_field)
        empty = projected.as_arrow().append(pa.field(FILE, FILE_TYPE)).append(pa.field(POS, pa.int64()))
        parts = [empty.empty_table()]
        if snapshot is not None:
            for task in table.scan().plan_files():
                parts.append(_live_rows(table, projected, task))
        rows = pa.concat_tables(parts).cast(empty)
        return cls(key, position_field, rows, snapshot.snapshot_id if snapshot else None)

    def __len__(self) -> int:
        return self.rows.num_rows

    def locate(self, incoming: pa.Table) -> Located:
        """The stored row of each incoming key that the table holds (keys compared exactly)."""
        first = self.key[0]
        incoming = keys_only(incoming, self.key).cast(keys_only(self.rows, self.key).schema)
        candidates = self.rows.append_column(ROW, _positions(self.rows.num_rows))
        # is_in hashes the (small) batch and probes the index; the exact join then runs on the few
        # candidates, over every key column.
        candidates = candidates.filter(pc.is_in(candidates[first], value_set=incoming[first]))
        stored = keys_only(candidates, self.key).append_column(ROW, candidates[ROW])
        wanted = keys_only(incoming, self.key).append_column(INCOMING, _positions(incoming.num_rows))
        pairs = stored.join(wanted, keys=self.key, join_type="inner", use_threads=False)
        found = self.rows.take(pairs[ROW])
        return Located(
            pairs[INCOMING].combine_chunks(),
            pairs[ROW].combine_chunks(),
            found[FILE].combine_chunks(),
            found[POS].combine_chunks(),
            found[self.position_field].combine_chunks(),
        )

    def below(self, floor: pa.Scalar) -> pa.Array:
        """Index rows whose source position is below *floor* (or unknown)."""
        positions = pc.fill_null(self.rows[self.position_field], pa.scalar(0, floor.type))
        return pc.indices_nonzero(pc.less(positions, floor))

    def files_of(self, rows: pa.Array) -> pa.Table:
        """``file_path`` and ``pos`` of the index *rows*: the position deletes that remove them."""
        taken = self.rows.take(rows)
        return pa.table({"file_path": taken[FILE], "pos": taken[POS]})

    def advance(self, removed: pa.Array, added: list[tuple[str, pa.Table]], snapshot_id: int | None) -> None:
        """After a commit: drop the index *removed* rows, add each new data file's rows (its key
        columns and positions, in file order), and stamp the commit's snapshot."""
        keep = np.ones(self.rows.num_rows, dtype=bool)
        keep[removed.to_numpy(zero_copy_only=False)] = False
        parts = [self.rows.filter(pa.array(keep))]
        for path, rows in added:
            columns = keys_only(rows, [*self.key, self.position_field])
            columns = columns.append_column(FILE, _file_column(path, rows.num_rows))
            parts.append(columns.append_column(POS, _positions(rows.num_rows)).cast(self.rows.schema))
        self.rows = pa.concat_tables(parts)
        self.snapshot_id = snapshot_id


def _live_rows(table: Table, projected: object, task: FileScanTask) -> pa.Table:
    """The key columns of one data file, each row with its position, deleted positions left out.

    The file is read without its deletes (so that positions are file positions), then the
    task's position deletes are applied here; pyiceberg maps renamed columns by field id.
    """
    bare = FileScanTask(task.file)
    rows = ArrowScan(table.metadata, table.io, projected, AlwaysTrue()).to_table([bare])
    rows = rows.append_column(FILE, _file_column(task.file.file_path, rows.num_rows))
    rows = rows.append_column(POS, _positions(rows.num_rows))
    deleted = [
        positions
        for delete_file in task.delete_files
        for path, positions in _read_deletes(table.io, delete_file).items()
        if path == task.file.file_path
    ]
    if not deleted:
        return rows
    gone = pa.chunked_array([c for part in deleted for c in part.chunks], pa.int64())
    return rows.filter(pc.invert(pc.is_in(rows[POS], value_set=gone)))
