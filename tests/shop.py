"""Replicator unit tests on source ``shop``, table ``public.items`` (Iceberg ``items``): one
replication cycle from given records, and the table's rows."""

from __future__ import annotations

from cdc.envelope import KafkaRecord
from floe.replication import Replicator
from iceberg.schema import POSITION_FIELD

TOPIC = "floe.shop.public.items"


def cycle(replicator: Replicator, records: list[KafkaRecord]) -> None:
    for batch in replicator.decode({TOPIC: records}).values():
        replicator.merge(batch, replicator.checkpoints()[batch.table])


def rows(replicator: Replicator) -> list[dict]:
    found = replicator.load("items").scan().to_arrow().drop_columns([POSITION_FIELD]).to_pylist()
    return sorted(found, key=lambda r: r["id"])
