"""Replicator unit tests on source ``shop``, table ``public.items`` (Iceberg ``items``): one
replication cycle from given records, and the table's rows."""

from __future__ import annotations

from floe_cdc.capture.envelope import KafkaRecord
from floe_cdc.lake.schema import POSITION_FIELD
from floe_cdc.pipeline.replication import Replicator, TableChanges

TOPIC = "floe.shop.public.items"


def cycle(replicator: Replicator, records: list[KafkaRecord]) -> None:
    if records:
        changes = TableChanges(records, replicator.decode_table("items", records))
        replicator.merge(changes, replicator.checkpoints()["items"])


def rows(replicator: Replicator) -> list[dict]:
    found = replicator.load("items").scan().to_arrow().drop_columns([POSITION_FIELD]).to_pylist()
    return sorted(found, key=lambda r: r["id"])
