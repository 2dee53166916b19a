"""Decode Debezium change events (JSON converter with schemas) into a columnar ChangeBatch.

Each message repeats its schema. Parsing it every time would cost more than the data, so the
schema part of the raw bytes is used as a cache key and only the payload is parsed per message.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
import pyarrow as pa

from cdc.types import Converter, map_field
from floe.changes import DELETE, OP_COLUMN, SEQ_COLUMN, TRUNCATE, UPSERT_OPS, ChangeBatch, Column
from floe.errors import DecodeError

_PAYLOAD_MARK = b',"payload":'
SKIPPED_OPS = ("m",)  # logical decoding messages carry no row


@dataclass(frozen=True)
class KafkaRecord:
    """One Kafka message as the consumer hands it over."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


@dataclass(frozen=True)
class _Compiled:
    columns: list[tuple[Column, Converter]]


def _split(raw: bytes) -> tuple[bytes, bytes]:
    """(schema bytes, payload bytes) of a JSON-converter envelope ``{"schema":..,"payload":..}``.

    Inside JSON strings quotes are escaped, so the first unescaped ``,"payload":`` is the
    top-level key; anything unexpected falls back to a full parse by the caller.
    """
    index = raw.find(_PAYLOAD_MARK)
    if not raw.startswith(b'{"schema":') or index < 0:
        raise ValueError("not a schema-carrying JSON envelope")
    return raw[10:index], raw[index + len(_PAYLOAD_MARK) : raw.rindex(b"}")]


class TopicDecoder:
    """Decodes the messages of one table's topic. Keeps its schema cache across batches."""

    def __init__(self, table: str, source: str, source_table: str) -> None:
        self.table = table
        self.source = source
        self.source_table = source_table
        self._value_schemas: dict[bytes, _Compiled] = {}
        self._key_names: dict[bytes, list[str]] = {}

    def _where(self, record: KafkaRecord) -> str:
        return (
            f"table {self.table} (topic {record.topic}, partition {record.partition}, offset {record.offset})"
        )

    def _parse(self, record: KafkaRecord, raw: bytes, cache: dict[bytes, Any], compile_schema: Any) -> tuple:
        try:
            schema_bytes, payload_bytes = _split(raw)
            compiled = cache.get(schema_bytes)
            if compiled is None:
                compiled = cache[schema_bytes] = compile_schema(orjson.loads(schema_bytes))
            return compiled, orjson.loads(payload_bytes)
        except (ValueError, KeyError, TypeError) as exc:
            raise DecodeError(
                f"cannot decode the change event of {self._where(record)}: {exc}. Floe expects Debezium "
                "events written by the JSON converter with schemas.enable=true"
            ) from exc

    @staticmethod
    def _compile_value(schema: dict[str, Any]) -> _Compiled:
        fields = {f["field"]: f for f in schema["fields"]}
        row_schema = fields.get("after") or fields["before"]
        return _Compiled([map_field(f) for f in row_schema["fields"]])

    @staticmethod
    def _compile_key(schema: dict[str, Any]) -> list[str]:
        return [f["field"] for f in schema["fields"]]

    def decode(self, records: list[KafkaRecord]) -> ChangeBatch:
        columns: dict[str, tuple[Column, Converter]] = {}
        values: dict[str, list[Any]] = {}
        ops: list[str] = []
        offsets: dict[str, dict[int, int]] = {}
        key: list[str] = []
        position: dict[str, Any] = {}
        skipped = 0
        for record in records:
            offsets.setdefault(record.topic, {})[record.partition] = record.offset + 1
            if record.value is None:  # tombstone after a delete
                skipped += 1
                continue
            compiled, payload = self._parse(record, record.value, self._value_schemas, self._compile_value)
            op = payload.get("op")
            if op in SKIPPED_OPS:
                skipped += 1
                continue
            if op not in (*UPSERT_OPS, DELETE, TRUNCATE):
                raise DecodeError(f"unknown operation {op!r} in {self._where(record)}")
            if record.key is not None:
                key, key_payload = self._parse(record, record.key, self._key_names, self._compile_key)
            else:
                key_payload = {}
            for column, converter in compiled.columns:
                if column.name not in columns:
                    values[column.name] = [None] * len(ops)
                columns[column.name] = (column, converter)
            if op in UPSERT_OPS:
                row = payload.get("after") or {}
            elif op == DELETE:
                row = key_payload or payload.get("before") or {}
            else:
                row = {}
            for name, column_values in values.items():
                column_values.append(row.get(name))
            ops.append(op)
            source = payload.get("source") or {}
            position = {k: source.get(k) for k in ("lsn", "txId", "ts_ms", "snapshot") if k in source}
        arrays, fields = [], []
        for name, (column, converter) in columns.items():
            try:
                arrays.append(converter(values[name]))
            except (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError) as exc:
                raise DecodeError(
                    f"column {name} ({column.source_type}) of table {self.table} holds a value that does not "
                    f"fit {column.type}: {exc}"
                ) from exc
            fields.append(pa.field(name, column.type, nullable=True))
        arrays.append(pa.array(ops, pa.string()))
        arrays.append(pa.array(range(len(ops)), pa.int64()))
        fields += [pa.field(OP_COLUMN, pa.string(), False), pa.field(SEQ_COLUMN, pa.int64(), False)]
        return ChangeBatch(
            table=self.table,
            source=self.source,
            source_table=self.source_table,
            key=key,
            columns=[column for column, _ in columns.values()],
            data=pa.Table.from_arrays(arrays, schema=pa.schema(fields)),
            offsets=offsets,
            position=position,
            skipped=skipped,
        )
