"""What a connector reports about the snapshots Floe asked for, from its notification topic.

Debezium writes a notification when an incremental snapshot starts, after each chunk
(``IN_PROGRESS``), when it has read a table to the end (``TABLE_SCAN_COMPLETED``, with a status)
and when it is done. Each carries the id of the signal that asked for the snapshot. The
notifications travel through the connector's own producer, after the change events they follow.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import orjson

from floe_cdc.capture.consumer import ChangeConsumer
from floe_cdc.capture.envelope import KafkaRecord
from floe_cdc.capture.signals import notification_topic
from floe_cdc.core.config import Source

# Statuses of a table scan that read the whole table; the others (no primary key, an SQL error,
# an unknown schema, skipped) mean it was not read.
READ_IN_FULL = ("SUCCEEDED", "EMPTY")
INCREMENTAL = "Incremental Snapshot"


@dataclass(frozen=True)
class TableScan:
    """An incremental snapshot's scan of one table, finished, and where the connector said so."""

    signal: str
    collection: str  # schema.table, as Debezium names it
    status: str
    rows: int
    partition: int
    offset: int

    @property
    def read_in_full(self) -> bool:
        return self.status in READ_IN_FULL


def finished_scans(records: Iterable[KafkaRecord]) -> list[TableScan]:
    """The finished table scans of incremental snapshots among notification *records*.

    Scans are told apart by table and place, not by signal id: a connector gives every
    notification of a running snapshot the id of the latest signal that added tables to it.
    """
    scans = []
    for record in records:
        if record.value is None:
            continue
        notification = orjson.loads(record.value).get("payload") or {}
        if (
            notification.get("type") != "TABLE_SCAN_COMPLETED"
            or notification.get("aggregate_type") != INCREMENTAL
        ):
            continue
        data = notification.get("additional_data") or {}
        scans.append(
            TableScan(
                notification.get("id", ""),
                data.get("scanned_collection", ""),
                data.get("status", ""),
                int(data.get("total_rows_scanned") or 0),
                record.partition,
                record.offset,
            )
        )
    return scans


def read_finished_scans(consumer: ChangeConsumer, source: Source, start: dict[int, int]) -> list[TableScan]:
    """The finished scans in *source*'s notification topic from *start* on, read until the topic
    is quiet for a second (not up to its high watermark, which some brokers under-report: the
    last notification could then stay unread)."""
    return finished_scans(consumer.scan(notification_topic(source), start, 1.0, set()))
