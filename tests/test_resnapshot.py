"""Re-snapshot marks and the connector's notifications about incremental snapshots."""

from __future__ import annotations

import orjson

from floe_cdc.capture.envelope import KafkaRecord
from floe_cdc.capture.notifications import finished_scans
from floe_cdc.lake.resnapshot_mark import RESNAPSHOT_PROPERTY, ResnapshotMark, read_mark


def notification(offset: int, kind: str, aggregate: str = "Incremental Snapshot", **data: str) -> KafkaRecord:
    value = {
        "schema": {"type": "struct"},
        "payload": {"id": "sig-1", "type": kind, "aggregate_type": aggregate, "additional_data": data},
    }
    return KafkaRecord("floe.shop.notifications", 0, offset, b"{}", orjson.dumps(value))


def test_a_mark_keeps_what_completing_needs():
    mark = ResnapshotMark(signal="sig-1", floor=(81 << 64) | 7, notifications={0: 12})
    assert read_mark({RESNAPSHOT_PROPERTY: mark.text()}) == mark
    assert read_mark({}) is None


def test_a_bare_time_is_a_blocking_mark():
    mark = read_mark({RESNAPSHOT_PROPERTY: "2026-11-30T10:00:00+00:00"})
    assert mark is not None and not mark.incremental and mark.requested_at == "2026-11-30T10:00:00+00:00"


def test_finished_scans_are_the_incremental_table_scans():
    records = [
        notification(0, "TABLE_SCAN_COMPLETED", "Initial Snapshot", scanned_collection="public.items"),
        notification(1, "STARTED", data_collections="public.items,public.odd"),
        notification(
            2, "IN_PROGRESS", current_collection_in_progress="public.items", last_processed_key="1024"
        ),
        notification(
            3,
            "TABLE_SCAN_COMPLETED",
            scanned_collection="public.items",
            total_rows_scanned="4676",
            status="SUCCEEDED",
        ),
        notification(
            4,
            "TABLE_SCAN_COMPLETED",
            scanned_collection="public.odd",
            total_rows_scanned="0",
            status="NO_PRIMARY_KEY",
        ),
        KafkaRecord("floe.shop.notifications", 0, 5, b"{}", None),
    ]
    scans = finished_scans(records)
    assert [(s.collection, s.status, s.rows, s.offset, s.read_in_full) for s in scans] == [
        ("public.items", "SUCCEEDED", 4676, 3, True),
        ("public.odd", "NO_PRIMARY_KEY", 0, 4, False),
    ]
