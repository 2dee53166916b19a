"""Decode a MongoDB collection's change events into a ChangeBatch for the common merge.

1. Parse each event (a poison event is quarantined with the reason, the others go on).
2. Put the changes in source order and resolve updates that carry only a patch
   (``updateDescription``) against the document's previous version: an earlier change of the
   batch, else the stored row. Without either (the document was never seen, or is deleted) the
   event is quarantined, to be replayed after a re-snapshot.
3. Shape the documents into rows by the collection's schema policy, growing the stored schema.
From there on a MongoDB batch is merged exactly like a PostgreSQL one: by ``_id``, with source
positions guarding against replays and the checkpoint in the same commit. One difference: the
connector marks only the last read of a whole snapshot, not of each collection, and its reads
carry no common position, so a re-snapshot overwrites documents but does not remove those
deleted while replication was stopped (reconciliation shows them).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Protocol

import pyarrow as pa

from floe_cdc.capture.envelope import (
    CONVERSION_ERRORS,
    KafkaRecord,
    PoisonEvent,
    StreamProgress,
    quarantine_record,
)
from floe_cdc.capture.mongodb.events import DocumentChange, MongoEventParser
from floe_cdc.capture.mongodb.patch import PatchError, apply_patch
from floe_cdc.capture.mongodb.shape import KEY_COLUMN, DocumentShape
from floe_cdc.core.changes import META_FIELDS, UPDATE, ChangeBatch, Quarantined
from floe_cdc.core.config import CollectionRef

_POSITION_FIELDS = ("rs", "ts_ms", "ord", "snapshot", "lsid", "txnNumber")
_BROKEN = object()  # a key whose earlier patch in this batch was quarantined


class StoredDocuments(Protocol):
    """What the decoder needs of the collection's replicated table (given by the pipeline)."""

    def arrow_schema(self) -> pa.Schema: ...

    def rows(self, keys: list[str]) -> list[dict[str, Any]]: ...


class DocumentDecoder:
    """Decodes the messages of one collection's topic; *load* gives its stored table (or None)."""

    def __init__(
        self,
        table: str,
        source: str,
        database: str,
        collection: CollectionRef,
        load: Callable[[], StoredDocuments | None],
    ) -> None:
        self.table = table
        self.source = source
        self.source_table = f"{database}.{collection.name}"
        self.parser = MongoEventParser(database, collection.name)
        self.shape = DocumentShape(collection.schema_policy, tuple(collection.extract))
        self.load = load

    def decode(self, records: list[KafkaRecord]) -> ChangeBatch:
        progress = StreamProgress()
        quarantined: list[Quarantined] = []
        changes: list[DocumentChange] = []
        for record in progress.events(records):
            try:
                changes.append(self.parser.parse(record))
            except PoisonEvent as exc:
                quarantined.append(quarantine_record(self.table, record, str(exc)))
        changes.sort(key=lambda change: change.position)  # stable: arrival order within a position
        table = self.load()
        batch = self._batch(self._resolve(changes, table, quarantined), table, quarantined)
        batch.offsets, batch.stamps, batch.skipped = progress.offsets, progress.stamps, progress.tombstones
        return batch

    def _resolve(
        self,
        changes: list[DocumentChange],
        table: StoredDocuments | None,
        quarantined: list[Quarantined],
    ) -> list[DocumentChange]:
        """Changes with every patch turned into the whole new document.

        A patch redelivered after a crash is applied to the stored row, which already holds it or a
        newer version; the merge then keeps the stored row by its newer position.
        """
        first_seen: dict[str, DocumentChange] = {}
        for change in changes:
            first_seen.setdefault(change.key, change)
        need_stored = [key for key, change in first_seen.items() if change.patch is not None]
        stored: dict[str, Any] = {}
        if need_stored and table is not None:
            stored = {row[KEY_COLUMN]: self.shape.document(row) for row in table.rows(need_stored)}
        current: dict[str, Any] = {}
        resolved: list[DocumentChange] = []
        for change in changes:
            if change.patch is None:
                current[change.key] = change.document
                resolved.append(change)
                continue
            base = current[change.key] if change.key in current else stored.get(change.key)
            error = None
            if base is _BROKEN:
                error = "an earlier update of this document in the same batch was quarantined"
            elif base is None:
                error = (
                    f"update of document _id={change.key} carries only the changed fields, and Floe holds "
                    "no earlier version of the document (never snapshotted, or deleted); re-snapshot the "
                    "collection, then run 'floe quarantine replay'"
                )
            else:
                try:
                    document = apply_patch(base, change.patch)
                except PatchError as exc:
                    error = f"cannot apply the update of document _id={change.key}: {exc}"
            if error is not None:
                quarantined.append(quarantine_record(self.table, change.record, error))
                current[change.key] = _BROKEN
                continue
            current[change.key] = document
            resolved.append(dataclasses.replace(change, op=UPDATE, document=document, patch=None))
        return resolved

    def _set_aside_unconvertible(
        self,
        changes: list[DocumentChange],
        rows: list[dict[str, Any]],
        schema: pa.Schema,
        quarantined: list[Quarantined],
    ) -> tuple[list[DocumentChange], list[dict[str, Any]]]:
        """Quarantine the documents Arrow cannot hold after all (the fitting rules should prevent it)."""
        kept_changes, kept_rows = [], []
        for change, row in zip(changes, rows, strict=True):
            try:
                pa.Table.from_pylist([row], schema=schema)
            except CONVERSION_ERRORS as exc:
                reason = f"document _id={change.key} does not convert: {exc}"
                quarantined.append(quarantine_record(self.table, change.record, reason))
                continue
            kept_changes.append(change)
            kept_rows.append(row)
        return kept_changes, kept_rows

    def _batch(
        self, changes: list[DocumentChange], table: StoredDocuments | None, quarantined: list[Quarantined]
    ) -> ChangeBatch:
        existing = table.arrow_schema() if table is not None else None
        types = self.shape.types((c.document for c in changes if c.document is not None), existing)
        columns = self.shape.columns(types)
        rows = [self.shape.row(c.key, c.document, types) for c in changes]
        schema = pa.schema([pa.field(c.name, c.type, c.nullable) for c in columns])
        try:
            data = pa.Table.from_pylist(rows, schema=schema)
        except CONVERSION_ERRORS:
            changes, rows = self._set_aside_unconvertible(changes, rows, schema, quarantined)
            data = pa.Table.from_pylist(rows, schema=schema)
        meta = (
            [c.op for c in changes],
            list(range(len(changes))),
            [c.position for c in changes],
            [c.record.partition for c in changes],
            [None] * len(changes),
            [c.record.offset for c in changes],
            [c.source.get("ts_ms") for c in changes],
        )
        for meta_field, values in zip(META_FIELDS, meta, strict=True):
            data = data.append_column(meta_field, pa.array(values, meta_field.type))
        last = changes[-1].source if changes else {}
        return ChangeBatch(
            table=self.table,
            source=self.source,
            source_table=self.source_table,
            key=[KEY_COLUMN],
            columns=columns,
            data=data,
            position={k: last[k] for k in _POSITION_FIELDS if last.get(k) is not None},
            quarantined=quarantined,
        )
