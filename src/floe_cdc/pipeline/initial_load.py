"""The direct initial load of a PostgreSQL source: its tables read straight into Iceberg, then
Debezium streams from the point the load read them at.

For each source with ``initial_load: direct`` whose connector does not exist yet:
1. the publication is made, then the replication slot with an exported snapshot
   (``capture.direct_snapshot``); the slot streams exactly what commits after that snapshot;
2. each table is read in that snapshot in chunks by primary key, and each chunk is merged into
   Iceberg as snapshot rows (Debezium's ``r``) in one commit that also records how far the load
   got (``floe.load``), so a crash never leaves part of a chunk and never loads a chunk twice;
3. the connector starts with ``snapshot.mode=no_data`` and streams from the slot.

Loaded rows carry position 0: every change the slot streams came after them, and the existing
position guard lets each one win. A load resumed after a crash reads its remaining chunks in a
newer snapshot; the changes between the two are streamed onto those rows as well, in order, and
the rows end as they are at the source.

Why not Debezium's own snapshot: every row becomes a JSON event with its schema, through Kafka
(measured 17-29k events/s here, the JVM the bottleneck), and the topic keeps a copy of the table.
Read into Arrow with ADBC and merged, the same rows load many times faster.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import psycopg2
import pyarrow as pa
from pyiceberg.catalog import Catalog
from pyiceberg.exceptions import NoSuchTableError
from pyiceberg.table import Table
from pyiceberg.table.refs import MAIN_BRANCH
from pyiceberg.table.snapshots import Operation

from floe_cdc.capture.connect_client import ConnectClient
from floe_cdc.capture.direct_snapshot import ChunkReader, KeyScan, exported_snapshot
from floe_cdc.capture.masking import declared_length, hash_values, masking_problems
from floe_cdc.capture.replication_objects import ensure_publication, existing, remove_new
from floe_cdc.capture.source_catalog import column_ids
from floe_cdc.capture.source_check import check_postgres_source
from floe_cdc.capture.source_columns import DirectLoadUnsupported, SourceColumn, source_columns
from floe_cdc.core.changes import (
    META_FIELDS,
    POSITION_TYPE,
    READ,
    SOURCE_TS_TYPE,
    ChangeBatch,
    with_current_names,
)
from floe_cdc.core.config import PipelineConfig, PostgresSource, TableRef
from floe_cdc.core.errors import ConfigError
from floe_cdc.lake.append import append_rows
from floe_cdc.lake.catalog import load_table, open_catalog
from floe_cdc.lake.checkpoint import Checkpoint, read_checkpoint
from floe_cdc.lake.schema import create_table
from floe_cdc.lake.soft_deletes import soften
from floe_cdc.pipeline.lineage import Lineage

log = logging.getLogger("floe.load")

LOAD_KEY = "floe.load"  # snapshot property: {"after": <last key loaded>} or {"done": true}


@dataclass
class TableLoad:
    """How far one table's load got."""

    table: str
    rows: int = 0
    chunks: int = 0
    resumed: bool = False
    done: bool = False
    estimate: int | None = None  # the source's rows as its statistics estimate them

    @property
    def fraction(self) -> float:
        """How far the load got, for a progress bar (below 1 until it is done)."""
        if self.done:
            return 1.0
        return min(self.rows / self.estimate, 0.99) if self.estimate else 0.0


@dataclass
class SourceLoad:
    source: str
    tables: list[TableLoad] = field(default_factory=list)


Progress = Callable[[TableLoad], None]


def load_state(table: Table | None, branch: str = MAIN_BRANCH) -> dict[str, Any] | None:
    """The load state the head of *branch* records, looking past maintenance's rewrites (they
    change no row, and ``maintain`` may run on a load that was stopped half-way); None when no
    load has written there."""
    snapshot = table.snapshot_by_name(branch) if table is not None else None
    while snapshot is not None and snapshot.summary is not None:
        raw = snapshot.summary.get(LOAD_KEY)
        if raw:
            return orjson.loads(raw)
        if snapshot.summary.operation != Operation.REPLACE or snapshot.parent_snapshot_id is None:
            return None
        snapshot = table.snapshot_by_id(snapshot.parent_snapshot_id)
    return None


def _columns(source: PostgresSource, table: TableRef) -> list[SourceColumn]:
    conn = psycopg2.connect(**source.connection_args("floe-load"))
    try:
        with conn.cursor() as cur:
            try:
                columns = source_columns(cur, table.schema_name, table.table_name)
            except DirectLoadUnsupported as exc:
                raise ConfigError(
                    f"source {source.name}, table {table.name}: {exc} has a type the direct load does not "
                    "read exactly; set initial_load: debezium for this source (Debezium's snapshot reads it)"
                ) from None
    finally:
        conn.close()
    if not any(column.key for column in columns):
        raise ConfigError(
            f"source {source.name}, table {table.name}: no primary key, so it cannot be read in chunks "
            "by key (nor replicated); add a primary key"
        )
    return columns


@dataclass(frozen=True)
class TableReading:
    """What reading one source table into Iceberg needs: its columns as the streaming path types
    them, its key, and the source identities of its columns."""

    source: PostgresSource
    ref: TableRef
    columns: list[SourceColumn]
    history: dict[int, list[str]]
    hashed: dict[str, int | None]  # the hashed columns, by their declared length

    @classmethod
    def of(cls, source: PostgresSource, ref: TableRef) -> TableReading:
        """The table as capture sees it: its excluded columns left out (``masking``)."""
        read = _columns(source, ref)
        declared = {c.column.name: (c.column.source_type.split("(")[0], c.key) for c in read}
        problems = masking_problems(ref, f"source {source.name}, table {ref.name}", declared)
        if problems:
            raise ConfigError("; ".join(problems))
        lengths = {
            c.column.name: declared_length(c.column.source_type) for c in read if c.column.name in ref.hash
        }
        # A hashed column's events carry no source type (``capture.connectors``): plain text here too.
        columns = [
            dataclasses.replace(c, column=dataclasses.replace(c.column, source_type=""))
            if c.column.name in lengths
            else c
            for c in read
            if c.column.name not in ref.exclude
        ]
        names = [c.column.name for c in columns]
        return cls(source, ref, columns, with_current_names({}, column_ids(source, ref), names), lengths)

    def scan(self, chunk_rows: int) -> KeyScan:
        """The table read in chunks of *chunk_rows* rows by its key."""
        columns = [c.select for c in self.columns]
        return KeyScan(self.ref.schema_name, self.ref.table_name, columns, self.key, chunk_rows)

    def _convert(self, column: SourceColumn, data: pa.Table) -> pa.ChunkedArray | pa.Array:
        """A column's values as Debezium sends them: hashed when the table hashes it."""
        name = column.column.name
        try:
            values = column.convert(data.column(name))
        except pa.ArrowInvalid as exc:
            raise ConfigError(
                f"source {self.source.name}, table {self.ref.name}, column {name}: {exc} (an "
                f"Iceberg {column.column.type} cannot hold it); set initial_load: debezium for this source, "
                "whose snapshot sets such rows aside in the quarantine table"
            ) from None
        if name in self.hashed and self.source.hash_salt is not None:
            return hash_values(values, self.source.hash_salt.get_secret_value(), self.hashed[name])
        return values

    @property
    def key(self) -> list[str]:
        return [c.column.name for c in self.columns if c.key]

    def batch(
        self, data: pa.Table, state: dict[str, Any], summary: dict[str, str] | None = None
    ) -> ChangeBatch:
        """*data*'s rows as snapshot reads (Debezium's ``r``) at position 0; the commit records the
        load's *state* and *summary*."""
        rows = data.num_rows
        meta = [
            pa.repeat(pa.scalar(READ, pa.string()), rows),
            pa.array(np.arange(rows, dtype=np.int64)),
            pa.repeat(pa.scalar(0, POSITION_TYPE), rows),
            pa.repeat(pa.scalar(0, pa.int32()), rows),
            pa.nulls(rows, pa.list_(pa.string())),
            pa.nulls(rows, pa.int64()),  # read directly: no Kafka record, no source commit time
            pa.nulls(rows, SOURCE_TS_TYPE),
        ]
        values = [self._convert(c, data) for c in self.columns]
        fields = [pa.field(c.column.name, c.column.type, c.column.nullable) for c in self.columns]
        arrays = pa.Table.from_arrays(values + meta, schema=pa.schema(fields + list(META_FIELDS)))
        batch = ChangeBatch(
            self.ref.target_name,
            self.source.name,
            self.source.source_table(self.ref),
            self.key,
            [c.column for c in self.columns],
            arrays,
            column_history=self.history,
            summary={**(summary or {}), LOAD_KEY: orjson.dumps(state).decode()},
        )
        return soften(batch) if self.ref.deletes == "soft" else batch  # its rows live: flag false

    def empty(self) -> ChangeBatch:
        """No rows, the table's columns: what creating its Iceberg table needs."""
        empty = ChangeBatch.empty(
            self.ref.target_name, self.source.name, self.source.source_table(self.ref), self.key
        )
        return dataclasses.replace(
            empty, columns=[c.column for c in self.columns], column_history=self.history
        )


def copy_chunks(
    table: Table,
    reading: TableReading,
    reader: ChunkReader,
    after: list[Any] | None,
    chunk_rows: int,
    checkpoint: Checkpoint,
    result: TableLoad,
    progress: Progress,
    branch: str = MAIN_BRANCH,
    summary: dict[str, str] | None = None,
    lineage: Lineage | None = None,
) -> None:
    """Read the table's chunks from the key after *after* on and append each to *branch* of
    *table* in a commit of its own, which carries *checkpoint*, how far the copy got and
    *summary* (and of which *lineage*, when configured, sends an event)."""
    first = True
    scan = reading.scan(chunk_rows)
    result.estimate = reader.estimate(scan)
    chunks = reader.chunks(scan, after)
    with contextlib.closing(chunks):  # the reading thread ends before the reader's connection closes
        for chunk in chunks:
            state = {"done": True} if chunk.last else {"after": chunk.after}
            batch = reading.batch(chunk.data, state, summary)
            append_rows(table, batch, checkpoint, branch, evolve_schema=first)
            first = False
            if lineage is not None:
                lineage.loaded(table, branch, batch)
            result.rows += chunk.data.num_rows
            result.chunks += 1
            result.done = chunk.last
            progress(result)


def _load_table(
    config: PipelineConfig,
    catalog: Catalog,
    source: PostgresSource,
    ref: TableRef,
    reader: ChunkReader,
    progress: Progress,
    lineage: Lineage | None,
) -> TableLoad:
    namespace = config.iceberg.namespace
    table = load_table(catalog, namespace, ref.target_name)
    state = load_state(table)
    result = TableLoad(ref.target_name, resumed=state is not None)
    checkpoint = read_checkpoint(table)
    if checkpoint.offsets or (state is not None and state.get("done")):
        result.done = True
        return result
    if state is None and table is not None and table.current_snapshot() is not None:
        raise ConfigError(
            f"source {source.name}, table {ref.name}: Iceberg table {namespace}.{ref.target_name} holds rows "
            "that no load of Floe wrote; drop it to load it again, or set initial_load: debezium"
        )
    reading = TableReading.of(source, ref)
    if table is None:
        table = create_table(catalog, namespace, reading.empty(), **config.table_options(ref.target_name))
    after = state.get("after") if state else None
    chunk_rows = config.load.chunk_rows
    copy_chunks(table, reading, reader, after, chunk_rows, checkpoint, result, progress, lineage=lineage)
    return result


def _connector_exists(config: PipelineConfig, source: PostgresSource) -> bool:
    with ConnectClient(config.connect.url, config.connect.timeout_seconds) as client:
        return client.get_config(source.connector_name) is not None


def load_slot(source: PostgresSource) -> str:
    """The temporary slot whose exported snapshot a reading uses when the source's slot exists."""
    return f"{source.slot}_load"


def load_source(
    config: PipelineConfig, source: PostgresSource, index: int, progress: Progress = lambda _: None
) -> SourceLoad:
    """Load every table of *source* that is not loaded yet, from one snapshot its slot starts at
    (a newer one when the slot exists from a load that did not finish)."""
    # Everything that can refuse the load is asked before the publication and the slot exist: a
    # refused load leaves the source as it found it (a slot nobody reads keeps WAL forever).
    check_postgres_source(source, index)
    catalog = open_catalog(config.iceberg)
    for ref in source.tables:
        TableReading.of(source, ref)
    before = existing(source)
    namespaces = set(catalog.list_namespaces())
    ensure_publication(source)
    lineage = Lineage.of(config)
    result = SourceLoad(source.name)
    resuming = before.slot
    slot = load_slot(source) if resuming else source.slot
    try:
        with (
            exported_snapshot(source, slot, temporary=resuming) as snapshot,
            ChunkReader(source, snapshot) as reader,
        ):
            log.info(
                "loading source %s directly from snapshot at %X%s",
                source.name,
                snapshot.consistent_point,
                " (resumed)" if resuming else "",
            )
            for ref in source.tables:
                result.tables.append(_load_table(config, catalog, source, ref, reader, progress, lineage))
    except Exception:
        # A load that committed nothing (the object store did not answer its first chunk, say)
        # is undone; one that committed chunks keeps its slot, and the next apply resumes it.
        try:
            if not _committed_any(config, catalog, source):
                _remove_empty_tables(config, catalog, source, namespaces)
                remove_new(source, before)
        except Exception as undo:  # the load's own error is the one to report
            log.warning("could not undo the failed load of source %s: %s", source.name, undo)
        raise
    return result


def _committed_any(config: PipelineConfig, catalog: Catalog, source: PostgresSource) -> bool:
    namespace = config.iceberg.namespace
    tables = [load_table(catalog, namespace, ref.target_name) for ref in source.tables]
    return any(table is not None and table.current_snapshot() is not None for table in tables)


def _remove_empty_tables(
    config: PipelineConfig, catalog: Catalog, source: PostgresSource, namespaces: set[tuple[str, ...]]
) -> None:
    """Drop the tables the failed load created (empty, as ``_committed_any`` found), and their
    namespace when the load created it."""
    namespace = config.iceberg.namespace
    for ref in source.tables:
        with contextlib.suppress(NoSuchTableError):
            catalog.drop_table((namespace, ref.target_name))
    if (namespace,) not in namespaces and not catalog.list_tables(namespace):
        catalog.drop_namespace(namespace)


def load_direct_sources(config: PipelineConfig, progress: Progress = lambda _: None) -> list[SourceLoad]:
    """Load the sources with ``initial_load: direct`` whose connector does not exist yet; ``floe
    connectors apply`` then starts their connectors, which stream from where the loads read."""
    loads = []
    for index, source in enumerate(config.sources):
        if (
            isinstance(source, PostgresSource)
            and source.initial_load == "direct"
            and not _connector_exists(config, source)
        ):
            loads.append(load_source(config, source, index, progress))
    return loads
