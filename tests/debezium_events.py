"""Debezium PostgreSQL change events in the exact JSON-converter form the connector writes.

The envelope layout follows the recorded events in ``fixtures/debezium``; tests use this to
make events for situations a live database cannot easily produce (poison values, replays).
"""

from __future__ import annotations

from typing import Any

import orjson

from floe_cdc.capture.envelope import KafkaRecord


def field(name: str, kind: str, source_type: str, optional: bool = True, **extra: Any) -> dict[str, Any]:
    params = {"__debezium.source.column.type": source_type, "__debezium.source.column.name": name}
    params.update({f"__debezium.source.column.{k}": str(v) for k, v in extra.pop("params", {}).items()})
    return {"type": kind, "optional": optional, "parameters": params, "field": name, **extra}


def _struct(name: str, fields: list[dict[str, Any]], optional: bool) -> dict[str, Any]:
    return {"type": "struct", "fields": fields, "optional": optional, "name": name}


def event(
    topic: str,
    offset: int,
    table: str,
    fields: list[dict[str, Any]],
    key: list[str],
    op: str,
    row: dict[str, Any] | None,
    sequence: tuple[int | None, int],
    partition: int = 0,
    snapshot: str = "true",
) -> KafkaRecord:
    """One change event; *row* is ``after`` for c/u/r and ``before`` (the key) for d; *snapshot* is
    the marker of a snapshot read (``last`` on a snapshot's last event)."""
    prefix = topic
    value_schema = _struct(
        f"{prefix}.Envelope",
        [
            {**_struct(f"{prefix}.Value", fields, True), "field": "before"},
            {**_struct(f"{prefix}.Value", fields, True), "field": "after"},
            {**_struct("io.debezium.connector.postgresql.Source", [], False), "field": "source"},
            {"type": "string", "optional": False, "field": "op"},
        ],
        False,
    )
    schema_name, table_name = table.split(".")
    committed, lsn = sequence
    source = {
        "connector": "postgresql",
        "snapshot": "false" if op != "r" else snapshot,
        "schema": schema_name,
        "table": table_name,
        "lsn": lsn,
        "txId": 1,
        "ts_ms": 0,
        "sequence": orjson.dumps([None if committed is None else str(committed), str(lsn)]).decode(),
    }
    payload = {
        "before": row if op == "d" else None,
        "after": row if op in ("c", "u", "r") else None,
        "source": source,
        "op": op,
    }
    key_fields = [f for f in fields if f["field"] in key]
    key_schema = _struct(f"{prefix}.Key", key_fields, False)
    key_payload = {k: (row or {}).get(k) for k in key}
    return KafkaRecord(
        topic,
        partition,
        offset,
        orjson.dumps({"schema": key_schema, "payload": key_payload}),
        orjson.dumps({"schema": value_schema, "payload": payload}),
    )
