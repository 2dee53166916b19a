"""Parse Debezium MongoDB change events (JSON converter with schemas) into document changes.

Unlike the PostgreSQL connector's typed rows, a MongoDB event carries its documents as extended
JSON strings (``after``, ``updateDescription.updatedFields``, the key's ``id``), so the Connect
schema says nothing about the fields: only the payload is read, and the strings are parsed with
pymongo's ``bson.json_util`` (every extended JSON mode: ObjectId, dates, Decimal128, int64,
binary, UUID). Turning documents into typed rows is ``capture.mongodb.shape``'s job.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from floe_cdc.capture.envelope import KafkaRecord, PoisonEvent, split_envelope, undecodable
from floe_cdc.capture.mongodb.extended_json import from_json, to_json
from floe_cdc.capture.mongodb.patch import Patch
from floe_cdc.capture.position import mongo_position
from floe_cdc.core.changes import DELETE, UPSERT_OPS


@dataclass(frozen=True)
class DocumentChange:
    """One change of one document.

    ``document`` is the whole new document (creates, snapshot reads, updates with a full
    document); an update without one carries ``patch`` instead. Deletes carry neither.
    """

    record: KafkaRecord
    op: str
    key: str
    position: int
    source: dict[str, Any]
    document: dict[str, Any] | None = None
    patch: Patch | None = None


def _payload(raw: bytes) -> dict[str, Any]:
    try:
        _, payload = split_envelope(raw)
        parsed = orjson.loads(payload)
    except (ValueError, TypeError) as exc:
        raise undecodable(exc) from exc
    if not isinstance(parsed, dict):
        raise PoisonEvent("the change event's payload is not a JSON object")
    return parsed


def _extended(text: Any, what: str) -> Any:
    if not isinstance(text, str):
        raise PoisonEvent(f"{what} is not an extended JSON string (got {type(text).__name__})")
    try:
        return from_json(text)
    except (ValueError, TypeError) as exc:
        raise PoisonEvent(f"{what} is not valid extended JSON: {exc}") from exc


def _patch(description: dict[str, Any]) -> Patch:
    updated = description.get("updatedFields")
    fields = _extended(updated, "updateDescription.updatedFields") if updated is not None else {}
    if not isinstance(fields, dict):
        raise PoisonEvent("updateDescription.updatedFields is not a document")
    truncated = [(item["field"], int(item["size"])) for item in description.get("truncatedArrays") or []]
    return Patch(fields, list(description.get("removedFields") or []), truncated)


def document_key(doc_id: Any) -> str:
    """The Iceberg key of a document: its ``_id`` as compact relaxed extended JSON."""
    return to_json(doc_id)


class MongoEventParser:
    """Parses the events of one collection's topic."""

    def __init__(self, database: str, collection: str) -> None:
        self.database = database
        self.collection = collection

    def _check_collection(self, source: dict[str, Any]) -> None:
        db, collection = source.get("db"), source.get("collection")
        if db and collection and (db, collection) != (self.database, self.collection):
            raise PoisonEvent(
                f"event of collection {db}.{collection} arrived for {self.database}.{self.collection}; "
                "check the topic routing"
            )

    def parse(self, record: KafkaRecord) -> DocumentChange:
        """One event; raises PoisonEvent with the reason when it cannot be applied."""
        assert record.value is not None  # tombstones are skipped by the caller
        payload = _payload(record.value)
        op = payload.get("op")
        if op not in (*UPSERT_OPS, DELETE):
            raise PoisonEvent(f"unknown operation {op!r}")
        source = payload.get("source") or {}
        self._check_collection(source)
        after = payload.get("after")
        document = _extended(after, "after") if after is not None else None
        if document is not None and not isinstance(document, dict):
            raise PoisonEvent("after is not a document")
        key = self._key(record, document)
        patch = None
        if op != DELETE and document is None:
            description = payload.get("updateDescription")
            if op != "u" or not description:
                raise PoisonEvent(f"a {op!r} event without a document (after is null)")
            try:
                patch = _patch(description)
            except (KeyError, TypeError, ValueError) as exc:
                raise PoisonEvent(f"cannot read updateDescription: {exc}") from exc
        try:
            position = mongo_position(source)
        except (KeyError, TypeError, ValueError) as exc:
            raise PoisonEvent(f"cannot read the source position (source.ts_ms, source.ord): {exc!r}") from exc
        return DocumentChange(record, op, key, position, source, document, patch)

    @staticmethod
    def _key(record: KafkaRecord, document: dict[str, Any] | None) -> str:
        if record.key is not None:
            payload = _payload(record.key)
            if "id" in payload:
                return document_key(_extended(payload["id"], "the key's id"))
        if document is not None and "_id" in document:
            return document_key(document["_id"])
        raise PoisonEvent("the event has neither a key with the document's id nor a document with _id")
