"""Decode Debezium change events (JSON converter with schemas) into a columnar ChangeBatch.

Each message repeats its schema. Parsing it every time would cost more than the data, so the
schema part of the raw bytes is used as a cache key and only the payload is parsed per message.
An event that cannot be decoded, or whose value does not fit its column, is quarantined with the
reason; the other events of the batch go on.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson
import pyarrow as pa

from floe_cdc.capture.position import SNAPSHOT_LAST, is_snapshot, postgres_position
from floe_cdc.capture.types import Converter, map_field
from floe_cdc.core.changes import (
    DELETE,
    META_FIELDS,
    TRUNCATE,
    UPSERT_OPS,
    ChangeBatch,
    Column,
    Quarantined,
    current_names,
)

_PAYLOAD_MARK = b',"payload":'
SKIPPED_OPS = ("m",)  # logical decoding messages carry no row
# Debezium's stand-in for an unchanged TOASTed value that the WAL did not carry.
UNAVAILABLE = "__debezium_unavailable_value"
_UNAVAILABLE_FORMS = (UNAVAILABLE, base64.b64encode(UNAVAILABLE.encode()).decode(), [UNAVAILABLE])


@dataclass(frozen=True)
class KafkaRecord:
    """One Kafka message as the consumer hands it over."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: int | None = None  # the broker's record timestamp (ms)


@dataclass
class StreamProgress:
    """Where reading stands once a batch is committed: the next offset per topic and partition,
    and the broker timestamp of the last record read there (to recognise it when reading on)."""

    offsets: dict[str, dict[int, int]] = field(default_factory=dict)
    stamps: dict[str, dict[int, int]] = field(default_factory=dict)
    tombstones: int = 0

    def events(self, records: Iterable[KafkaRecord]) -> Iterator[KafkaRecord]:
        """The records that carry an event; every record, tombstones too, moves the offsets."""
        for record in records:
            self.offsets.setdefault(record.topic, {})[record.partition] = record.offset + 1
            if record.timestamp is not None:
                self.stamps.setdefault(record.topic, {})[record.partition] = record.timestamp
            if record.value is None:  # the tombstone after a delete
                self.tombstones += 1
            else:
                yield record


@dataclass(frozen=True)
class _Compiled:
    columns: list[tuple[Column, Converter]]
    toastable: tuple[str, ...]
    converters: dict[str, Converter]
    defaults: dict[str, Any]  # raw source defaults, for earlier events of the batch when a column is added
    renamed: dict[str, str] | None = None  # written name -> current name, if a column was renamed since


# What converting a value to Arrow raises when the value does not fit the type.
CONVERSION_ERRORS = (pa.ArrowInvalid, pa.ArrowTypeError, ValueError, TypeError, OverflowError)


class PoisonEvent(ValueError):
    """An event that cannot be applied; the message is the quarantine reason."""


def undecodable(exc: Exception) -> PoisonEvent:
    """The quarantine reason of a message that is not a JSON-converter envelope."""
    return PoisonEvent(
        f"cannot decode the change event ({exc}); Floe expects Debezium events written by the JSON "
        "converter with schemas.enable=true"
    )


def quarantine_record(table: str, record: KafkaRecord, error: str) -> Quarantined:
    """*record* of *table*, kept whole with the reason it could not be applied."""
    return Quarantined(table, record.topic, record.partition, record.offset, record.key, record.value, error)


def split_envelope(raw: bytes) -> tuple[bytes, bytes]:
    """(schema bytes, payload bytes) of a JSON-converter envelope ``{"schema":..,"payload":..}``.

    Inside JSON strings quotes are escaped, so the first unescaped ``,"payload":`` is the
    top-level key.
    """
    index = raw.find(_PAYLOAD_MARK)
    if not raw.startswith(b'{"schema":') or index < 0:
        raise ValueError("not a schema-carrying JSON envelope")
    return raw[10:index], raw[index + len(_PAYLOAD_MARK) : raw.rindex(b"}")]


def _toastable(column: Column) -> bool:
    kind = column.type
    return pa.types.is_string(kind) or pa.types.is_binary(kind) or pa.types.is_list(kind)


class _Rows:
    """Column-wise accumulation of decoded events, aligned with the records they came from.

    Each event is converted with the schema it was written with, then cast to the column's
    latest type: a float written before ``ALTER ... TYPE double precision`` keeps its float value.
    """

    def __init__(self) -> None:
        self.columns: dict[str, tuple[Column, Converter]] = {}
        self.values: dict[str, list[Any]] = {}
        self.meta: dict[str, list[Any]] = {f.name: [] for f in META_FIELDS}
        self.records: list[KafkaRecord] = []
        self.schemas: list[dict[str, Converter]] = []

    def add_columns(self, compiled: _Compiled) -> None:
        for column, converter in compiled.columns:
            if column.name not in self.columns:
                # Rows changed before the column was added hold its default at the source.
                self.values[column.name] = [compiled.defaults.get(column.name)] * len(self.records)
            self.columns[column.name] = (column, converter)

    def append(
        self,
        record: KafkaRecord,
        compiled: _Compiled,
        op: str,
        row: dict,
        position: int,
        unavailable: list[str] | None,
        source_ts: int | None = None,
    ) -> None:
        self.schemas.append(compiled.converters)
        for name, column_values in self.values.items():
            column_values.append(row.get(name))
        meta = (op, len(self.records), position, record.partition, unavailable, record.offset, source_ts)
        for name, value in zip(self.meta, meta, strict=True):
            self.meta[name].append(value)
        self.records.append(record)

    def drop(self, indices: set[int]) -> None:
        def keep(values: list[Any]) -> list[Any]:
            return [v for i, v in enumerate(values) if i not in indices]

        self.values = {name: keep(values) for name, values in self.values.items()}
        self.meta = {name: keep(values) for name, values in self.meta.items()}
        self.records = keep(self.records)
        self.schemas = keep(self.schemas)

    def _convert_run(self, name: str, converter: Converter, values: list[Any]) -> pa.Array:
        return converter(values).cast(self.columns[name][0].type)

    def convert(self, name: str) -> pa.Array:
        """The column as one array, each run of events converted with its own schema."""
        latest = self.columns[name][1]
        chunks: list[pa.Array] = []
        run: list[Any] = []
        run_converter = latest
        for converters, value in zip(self.schemas, self.values[name], strict=True):
            converter = converters.get(name, latest)
            if converter is not run_converter and run:
                chunks.append(self._convert_run(name, run_converter, run))
                run = []
            run_converter = converter
            run.append(value)
        chunks.append(self._convert_run(name, run_converter, run))
        return pa.concat_arrays(chunks)

    def convert_one(self, name: str, index: int) -> None:
        converter = self.schemas[index].get(name, self.columns[name][1])
        self._convert_run(name, converter, [self.values[name][index]])


def canonical_key(raw: bytes | None) -> str | None:
    """The key's payload as sorted JSON, to recognise later changes of the same row."""
    if raw is None:
        return None
    try:
        _, payload = split_envelope(raw)
        return orjson.dumps(orjson.loads(payload), option=orjson.OPT_SORT_KEYS).decode()
    except (ValueError, TypeError):
        return None


class TopicDecoder:
    """Decodes the messages of one table's topic. Keeps its schema cache across batches.

    ``column_history`` holds the names each source column has had, so that events written
    before a column was renamed land in the renamed column.
    """

    def __init__(self, table: str, source: str, source_table: str) -> None:
        self.table = table
        self.source = source
        self.source_table = source_table
        self._history: dict[int, list[str]] = {}
        self._value_schemas: dict[bytes, _Compiled] = {}
        self._key_names: dict[bytes, list[str]] = {}

    @property
    def column_history(self) -> dict[int, list[str]]:
        return self._history

    @column_history.setter
    def column_history(self, history: dict[int, list[str]]) -> None:
        if history != self._history:
            self._history = {column_id: list(names) for column_id, names in history.items()}
            self._value_schemas.clear()
            self._key_names.clear()

    def _parse(self, raw: bytes, cache: dict[bytes, Any], compile_schema: Any) -> tuple:
        try:
            schema_bytes, payload_bytes = split_envelope(raw)
            compiled = cache.get(schema_bytes)
            if compiled is None:
                compiled = cache[schema_bytes] = compile_schema(orjson.loads(schema_bytes))
            return compiled, orjson.loads(payload_bytes)
        except (ValueError, KeyError, TypeError) as exc:
            raise undecodable(exc) from exc

    def _compile_value(self, schema: dict[str, Any]) -> _Compiled:
        fields = {f["field"]: f for f in schema["fields"]}
        row_fields = (fields.get("after") or fields["before"])["fields"]
        written = [f["field"] for f in row_fields]
        names = current_names(written, self._history)
        columns = [map_field(f, name) for f, name in zip(row_fields, names, strict=True)]
        return _Compiled(
            columns,
            tuple(c.name for c, _ in columns if _toastable(c)),
            {c.name: conv for c, conv in columns},
            {name: f.get("default") for f, name in zip(row_fields, names, strict=True)},
            dict(zip(written, names, strict=True)) if names != written else None,
        )

    def _compile_key(self, schema: dict[str, Any]) -> list[str]:
        return current_names([f["field"] for f in schema["fields"]], self._history)

    def _check_table(self, source: dict[str, Any]) -> None:
        schema, table = source.get("schema"), source.get("table")
        if schema and table and f"{schema}.{table}" != self.source_table:
            raise PoisonEvent(
                f"event of table {schema}.{table} arrived for {self.source_table}; check the topic routing"
            )

    def decode(self, records: list[KafkaRecord]) -> ChangeBatch:
        rows = _Rows()
        progress = StreamProgress()
        quarantined: list[Quarantined] = []
        key: list[str] = []
        position: dict[str, Any] = {}
        skipped = 0
        snapshot_completed: int | None = None
        for record in progress.events(records):
            try:
                compiled, payload = self._parse(record.value, self._value_schemas, self._compile_value)
                op = payload.get("op")
                if op in SKIPPED_OPS:
                    skipped += 1
                    continue
                if op not in (*UPSERT_OPS, DELETE, TRUNCATE):
                    raise PoisonEvent(f"unknown operation {op!r}")
                source = payload.get("source") or {}
                self._check_table(source)
                key_payload: dict[str, Any] = {}
                if record.key is not None:
                    key, key_payload = self._parse(record.key, self._key_names, self._compile_key)
                event_position = postgres_position(source)
            except PoisonEvent as exc:
                quarantined.append(quarantine_record(self.table, record, str(exc)))
                continue
            rows.add_columns(compiled)
            if op in UPSERT_OPS:
                row = payload.get("after") or {}
            elif op == DELETE:
                row = key_payload or payload.get("before") or {}
            else:
                row = {}
            if compiled.renamed:
                row = {compiled.renamed.get(name, name): value for name, value in row.items()}
            unavailable = [name for name in compiled.toastable if row.get(name) in _UNAVAILABLE_FORMS]
            if unavailable:
                row = {**row, **dict.fromkeys(unavailable)}
            rows.append(record, compiled, op, row, event_position, unavailable or None, source.get("ts_ms"))
            position = {k: source.get(k) for k in ("lsn", "txId", "ts_ms", "snapshot") if k in source}
            if is_snapshot(source) and source.get("snapshot") in SNAPSHOT_LAST:
                snapshot_completed = event_position
        data = self._to_arrow(rows, quarantined)
        return ChangeBatch(
            table=self.table,
            source=self.source,
            source_table=self.source_table,
            key=key,
            columns=[column for column, _ in rows.columns.values()],
            data=data,
            offsets=progress.offsets,
            stamps=progress.stamps,
            position=position,
            skipped=skipped + progress.tombstones,
            quarantined=quarantined,
            snapshot_completed=snapshot_completed,
        )

    def _to_arrow(self, rows: _Rows, quarantined: list[Quarantined]) -> pa.Table:
        """Convert column-wise; events with a value that does not fit are quarantined."""
        bad: dict[int, str] = {}
        for name, (column, _) in rows.columns.items():
            try:
                rows.convert(name)
            except CONVERSION_ERRORS:
                for index, value in enumerate(rows.values[name]):
                    try:
                        rows.convert_one(name, index)
                    except CONVERSION_ERRORS as exc:
                        where = f"column {name} ({column.source_type})"
                        bad.setdefault(index, f"{where} cannot hold {value!r} as {column.type}: {exc}")
        if bad:
            quarantined.extend(
                quarantine_record(self.table, rows.records[i], reason) for i, reason in bad.items()
            )
            rows.drop(set(bad))
        arrays = [rows.convert(name) for name in rows.columns]
        fields = [pa.field(name, column.type) for name, (column, _) in rows.columns.items()]
        arrays += [pa.array(rows.meta[f.name], type=f.type) for f in META_FIELDS]
        return pa.Table.from_arrays(arrays, schema=pa.schema([*fields, *META_FIELDS]))
