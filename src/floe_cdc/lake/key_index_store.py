"""Key indexes kept on local disk between runs, so that a new run does not rebuild them.

Building a table's key index reads the key columns of every live row and the delete files
(7-10 s for a 10M-row table with 200 data files and 80 delete files on the local stack's S3). A
replicator saves each big table's index to a file of its own (Arrow IPC, uncompressed, so that
loading is a memory map and a copy of a few arrays), every so often on a thread of its own and
when it stops. A new run loads the file and catches the index up from the snapshot it was saved
at to the table's current one (:meth:`KeyIndex.catch_up`: only the data and delete files
committed since are read; the file records which delete files applied to each data file, so the
saved snapshot need not still exist). The file is a cache, never trusted blindly: one that is
missing, unreadable, or for other key columns or key types is ignored, and the index built from
the table as before.

Local disk, not the object store: the file is as big as the index (16 bytes a row for one integer key), and
reading it back from S3 would cost what building it costs. A worker on another machine builds.
Files are readable by their owner only: they hold key values.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
from pyiceberg.io import FileIO
from pyiceberg.table import Table
from pyiceberg.table.metadata import TableMetadata

from floe_cdc.lake.key_index import IndexState, KeyIndex, applied_deletes, stored_key_columns
from floe_cdc.lake.pyiceberg_adapter import live_files

log = logging.getLogger("floe.key_index")

_FORMAT = "2"
_CODE, _FILE, _POS = "__floe_code", "__floe_file", "__floe_pos"


def _default_directory() -> Path:
    """``$XDG_CACHE_HOME/floe/key-indexes``, else ``~/.cache/floe/key-indexes``."""
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "floe" / "key-indexes"


def index_path(directory: Path, table: Table) -> Path:
    return directory / f"{table.metadata.table_uuid}.arrow"


def write_index(state: IndexState, applied: Mapping[str, frozenset[str]], path: Path) -> None:
    """Write the live entries of *state* to *path*, atomically (a new file renamed over it)."""
    codes, file, pos = state.live()
    columns = pa.table({_CODE: codes, _FILE: file, _POS: pos})
    if len(codes) and any(keys is not None for keys in state.file_keys):  # hashed codes
        keys = stored_key_columns(state.file_keys, file, pos)
        for name in keys.column_names:
            columns = columns.append_column(name, keys[name])
    about = {
        "format": _FORMAT,
        "key": state.key,
        "position_field": state.position_field,
        "snapshot_id": state.snapshot_id,
        "files": state.files,
        "newest": [None if newest is None else str(newest) for newest in state.newest],
        "applied": {path: sorted(deletes) for path, deletes in applied.items()},
    }
    columns = columns.replace_schema_metadata({"floe.key-index": json.dumps(about)})
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_name(f"{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    try:
        with pa.OSFile(str(partial), "wb") as sink, pa.ipc.new_file(sink, columns.schema) as writer:
            writer.write_table(columns)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)


def read_index(table: Table, key: list[str], position_field: str, path: Path) -> KeyIndex | None:
    """The index saved at *path*, caught up to *table*'s current snapshot; None when there is no
    usable file (the caller builds the index)."""
    if not path.exists():
        return None
    began = time.monotonic()
    try:
        with pa.memory_map(str(path)) as source:
            columns = pa.ipc.open_file(source).read_all()
        about = json.loads(columns.schema.metadata[b"floe.key-index"])
        if about["format"] != _FORMAT or about["key"] != key or about["position_field"] != position_field:
            return None
        newest = [None if value is None else Decimal(value) for value in about["newest"]]
        hashed = all(name in columns.column_names for name in key)
        state = IndexState.from_live(
            key,
            position_field,
            about["snapshot_id"],
            about["files"],
            newest,
            (columns[_CODE].to_numpy(), columns[_FILE].to_numpy(), columns[_POS].to_numpy()),
        )
        keys = columns.select(key).replace_schema_metadata(None) if hashed else None
        index = KeyIndex.restored(table, key, position_field, state, keys)
        if index is None:
            return None
        loaded = time.monotonic()
        whole, deletes = index.catch_up(table, {path: frozenset(d) for path, d in about["applied"].items()})
        log.info(
            "key index %s loaded in %.2fs, then caught up in %.2fs (%d data files read, %d delete files)",
            path.name,
            loaded - began,
            time.monotonic() - loaded,
            whole,
            deletes,
        )
        return index
    except (OSError, pa.ArrowException, KeyError, ValueError, TypeError, ArithmeticError) as exc:
        log.warning("the saved key index %s is not usable (%s); building it from the table", path, exc)
        return None


class IndexStore:
    """A replicator's saved key indexes: restored on first use, saved on a thread of its own."""

    def __init__(self, directory: str | None, min_rows: int) -> None:
        """*directory*: where the files are (``~`` expanded; None: the user's cache folder)."""
        self.directory = Path(directory).expanduser() if directory else _default_directory()
        self.min_rows = min_rows
        self._saved: dict[str, int | None] = {}  # snapshot of each table's last save
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="floe-index-save")
        self._saving: Future[None] | None = None
        self._restoring: dict[str, Future[KeyIndex | None]] = {}

    def prefetch(self, name: str, table: Table, key: list[str], position_field: str) -> None:
        """Start restoring the index of *table* on the store's thread: a run that starts loads it
        while it reads its first changes."""
        if name not in self._restoring:
            self._restoring[name] = self._executor.submit(self._restore, name, table, key, position_field)

    def restore(self, name: str, table: Table, key: list[str], position_field: str) -> KeyIndex | None:
        """The saved index of *table* (the one prefetched, if it was), caught up; None if there
        is none (the caller builds it)."""
        prefetched = self._restoring.pop(name, None)
        if prefetched is not None:
            return prefetched.result()
        return self._restore(name, table, key, position_field)

    def _restore(self, name: str, table: Table, key: list[str], position_field: str) -> KeyIndex | None:
        began = time.monotonic()
        index = read_index(table, key, position_field, index_path(self.directory, table))
        if index is not None:
            self._saved[name] = index.snapshot_id
            seconds = time.monotonic() - began
            log.info("key index of %s restored from disk: %d rows in %.2fs", name, len(index), seconds)
        return index

    def save(self, indexes: Mapping[str, KeyIndex], tables: Mapping[str, Table], wait: bool = False) -> None:
        """Save the indexes of *tables* that changed since their last save and hold at least
        ``min_rows`` rows, each for the table's snapshot it describes; on the store's thread,
        unless *wait*. A save still running is let be (or waited for, with *wait*)."""
        if self._saving is not None and not self._saving.done():
            if not wait:
                return
            self._saving.result()
        due = []
        for name, table in tables.items():
            index = indexes.get(name)
            snapshot = table.current_snapshot()
            if (
                index is not None
                and snapshot is not None
                and index.snapshot_id == snapshot.snapshot_id
                and self._saved.get(name) != index.snapshot_id
                and len(index) >= self.min_rows
            ):
                # The metadata as of now: the save runs later, on another thread.
                due.append((name, index.state(), table.metadata, table.io, index_path(self.directory, table)))
        if not due:
            return
        self._saving = self._executor.submit(self._write, due)
        if wait:
            self._saving.result()

    def _write(self, due: list[tuple[str, IndexState, TableMetadata, FileIO, Path]]) -> None:
        for name, state, metadata, io, path in due:
            try:
                write_index(state, applied_deletes(live_files(metadata, io, state.snapshot_id)), path)
            except Exception as exc:  # a cache: a failed save only costs a rebuild later
                log.warning("key index of %s not saved: %s", name, exc)
                continue
            self._saved[name] = state.snapshot_id

    def close(self) -> None:
        self._executor.shutdown(wait=True)
