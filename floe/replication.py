"""One replication cycle as plain functions: read checkpoints, consume, decode, merge.

Prefect flows call these; tests call them directly. Each table's commit carries its own Kafka
offsets, so tables advance independently and a failure in one never rewinds another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pyiceberg.table import Table

from cdc.consumer import ChangeConsumer, ConsumedRecords
from cdc.envelope import TopicDecoder
from floe.changes import ChangeBatch
from floe.config import PipelineConfig, PostgresSource, TableRef
from iceberg.catalog import load_table, open_catalog
from iceberg.checkpoint import Checkpoint, read_checkpoint
from iceberg.merge import MergeResult, merge_batch
from iceberg.schema import create_table

log = logging.getLogger("floe.replication")


@dataclass(frozen=True)
class Target:
    """A replicated table: where its changes come from and where they go."""

    source: PostgresSource
    table: TableRef

    @property
    def name(self) -> str:
        return self.table.target_name

    @property
    def topic(self) -> str:
        return self.source.topic_for(self.table)


class Replicator:
    """Holds the long-lived parts of replication (catalog, consumer, schema caches)."""

    def __init__(self, config: PipelineConfig, tables: list[str] | None = None) -> None:
        self.config = config
        chosen = [config.find_table(name) for name in tables] if tables else config.tables()
        self.targets = {t.target_name: Target(s, t) for s, t in chosen}
        self.catalog = open_catalog(config.iceberg)
        self.consumer = ChangeConsumer(config.kafka)
        self._decoders = {
            target.topic: TopicDecoder(target.name, target.source.name, target.table.name)
            for target in self.targets.values()
        }

    def close(self) -> None:
        self.consumer.close()

    def __enter__(self) -> Replicator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def load(self, name: str) -> Table | None:
        return load_table(self.catalog, self.config.iceberg.namespace, name)

    def checkpoints(self) -> dict[str, Checkpoint]:
        return {name: read_checkpoint(self.load(name)) for name in self.targets}

    def consume(self, checkpoints: dict[str, Checkpoint]) -> tuple[dict[str, ChangeBatch], ConsumedRecords]:
        """Read available changes from each table's checkpoint on and decode them per table."""
        start: dict[str, dict[int, int]] = {}
        for name, target in self.targets.items():
            start.update({target.topic: checkpoints[name].offsets.get(target.topic, {})})
        settings = self.config.replicate
        consumed = self.consumer.consume(
            start,
            [t.topic for t in self.targets.values()],
            max_events=settings.max_events,
            max_seconds=settings.max_seconds,
            idle_seconds=settings.idle_seconds,
        )
        batches = {}
        for target in self.targets.values():
            records = consumed.by_topic.get(target.topic)
            if records:
                batches[target.name] = self._decoders[target.topic].decode(records)
        log.info(
            "consumed %d events for %d tables (%s)", consumed.count, len(batches), consumed.stopped_because
        )
        return batches, consumed

    def merge(self, batch: ChangeBatch, checkpoint: Checkpoint) -> MergeResult:
        table = self.load(batch.table)
        if table is None:
            table = create_table(self.catalog, self.config.iceberg.namespace, batch)
            log.info("created Iceberg table %s.%s", self.config.iceberg.namespace, batch.table)
        result = merge_batch(table, batch, checkpoint)
        log.info(
            "merged %s: %d events -> +%d ~%d -%d rows%s (snapshot %s)",
            batch.table,
            result.events,
            result.inserted,
            result.updated,
            result.deleted,
            ", truncated" if result.truncated else "",
            result.snapshot_id,
        )
        for change in result.schema_changes:
            log.info("schema of %s: %s", batch.table, change)
        return result

    def commit_for_monitoring(self, batches: dict[str, ChangeBatch]) -> None:
        offsets: dict[str, dict[int, int]] = {}
        for batch in batches.values():
            for topic, parts in batch.offsets.items():
                offsets.setdefault(topic, {}).update(parts)
        self.consumer.commit_for_monitoring(offsets)
