"""Consume change events from Kafka with manual offset control.

Partitions are assigned explicitly at the offsets the Iceberg tables recorded, so no consumer
group rebalance is involved and the group's committed offsets serve monitoring only. A cycle
reads what is available up to a size and time bound; "caught up" means no message arrived for
``idle_seconds`` (high watermarks are not trusted, as some Kafka-protocol brokers misreport them).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from cdc.envelope import KafkaRecord
from floe.config import KafkaConfig
from floe.errors import FloeError, Transient

log = logging.getLogger("floe.consumer")


class ConsumeError(FloeError, Transient):
    """The broker reported an error while consuming."""


@dataclass
class ConsumedRecords:
    """Records per topic, in offset order, and why consumption stopped."""

    by_topic: dict[str, list[KafkaRecord]] = field(default_factory=dict)
    stopped_because: str = ""

    @property
    def count(self) -> int:
        return sum(len(records) for records in self.by_topic.values())


class ChangeConsumer:
    def __init__(self, config: KafkaConfig) -> None:
        self._consumer = Consumer(
            {
                "bootstrap.servers": config.bootstrap_servers,
                "group.id": config.group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                "auto.offset.reset": "earliest",
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 16 * 1024 * 1024,
                "queued.max.messages.kbytes": 256 * 1024,
                "log_level": 3,
                **config.client_config,
            }
        )

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> ChangeConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def partitions(self, topics: list[str], timeout: float = 10.0) -> dict[str, list[int]]:
        """Existing partitions per topic. A table with no change yet has no topic: it is left out."""
        metadata = self._consumer.list_topics(timeout=timeout)
        found: dict[str, list[int]] = {}
        for topic in topics:
            info = metadata.topics.get(topic)
            if info is not None and info.error is None and info.partitions:
                found[topic] = sorted(info.partitions)
        return found

    def consume(
        self,
        start: dict[str, dict[int, int]],
        topics: list[str],
        max_events: int,
        max_seconds: float,
        idle_seconds: float,
    ) -> ConsumedRecords:
        """Read from *start* offsets (per topic and partition; missing means from the beginning)."""
        assignment = [
            TopicPartition(topic, partition, start.get(topic, {}).get(partition, OFFSET_BEGINNING))
            for topic, partitions in self.partitions(topics).items()
            for partition in partitions
        ]
        result = ConsumedRecords({tp.topic: [] for tp in assignment})
        if not assignment:
            result.stopped_because = "no topics yet"
            return result
        self._consumer.assign(assignment)
        began = last_message = time.monotonic()
        try:
            while True:
                now = time.monotonic()
                if result.count >= max_events:
                    result.stopped_because = f"max_events ({max_events})"
                    break
                if now - began >= max_seconds:
                    result.stopped_because = f"max_seconds ({max_seconds:g})"
                    break
                if now - last_message >= idle_seconds:
                    result.stopped_because = f"idle for {idle_seconds:g}s"
                    break
                messages = self._consumer.consume(
                    num_messages=min(10_000, max_events - result.count), timeout=0.2
                )
                for message in messages:
                    error = message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise ConsumeError(
                            f"Kafka error on {message.topic()}[{message.partition()}]: {error}"
                        )
                    result.by_topic[message.topic()].append(
                        KafkaRecord(
                            message.topic(),
                            message.partition(),
                            message.offset(),
                            message.key(),
                            message.value(),
                        )
                    )
                if messages:
                    last_message = time.monotonic()
        finally:
            self._consumer.unassign()
        return result

    def commit_for_monitoring(self, offsets: dict[str, dict[int, int]]) -> None:
        """Record progress in the consumer group for lag dashboards; Iceberg stays the truth."""
        partitions = [TopicPartition(t, p, o) for t, parts in offsets.items() for p, o in parts.items()]
        if not partitions:
            return
        try:
            self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            log.warning("could not commit monitoring offsets to group: %s", exc)
