"""Consume change events from Kafka with manual offset control.

Partitions are assigned explicitly at the offsets the Iceberg tables recorded, so no consumer
group rebalance is involved and the group's committed offsets serve monitoring only. A cycle
reads what is available up to a size and time bound; "caught up" means no message arrived for
``idle_seconds`` (high watermarks are not trusted, as some Kafka-protocol brokers misreport them).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    TopicPartition,
)

from floe_cdc.capture.envelope import KafkaRecord
from floe_cdc.capture.kafka_clients import broker_unavailable, client_config
from floe_cdc.core.config import KafkaConfig
from floe_cdc.core.errors import FloeError, Transient

log = logging.getLogger("floe.consumer")


class ConsumeError(FloeError, Transient):
    """The broker reported an error while consuming."""


@dataclass
class ConsumedRecords:
    """Records per topic, in offset order, and why consumption stopped."""

    by_topic: dict[str, list[KafkaRecord]] = field(default_factory=dict)
    stopped_because: str = ""
    resets: list[tuple[str, int, int]] = field(default_factory=list)  # (topic, partition, lost-from offset)

    @property
    def count(self) -> int:
        return sum(len(records) for records in self.by_topic.values())


# What the first record read where a table continues says (see probe_verdict).
SKIP, REWIND, KEEP = "skip", "rewind", "keep"


def probe_verdict(probe: tuple[int, int | None], offset: int, stamp: int | None) -> str:
    """The verdict on the first record read at a partition where a table continues.

    Reading starts at the last record the table holds, the probe (its offset and broker
    timestamp). The same record again: SKIP it, the history is intact. Another record at that
    offset (another timestamp): REWIND, the topic was re-created and has grown past that offset
    again. A later offset: KEEP it, the probe is gone (retention) but the history goes on.
    """
    probe_offset, expected = probe
    if offset != probe_offset:
        return KEEP
    if expected is not None and stamp != expected:
        return REWIND
    return SKIP


class ChangeConsumer:
    def __init__(self, config: KafkaConfig) -> None:
        self._kafka = config
        self._consumer = Consumer(
            {
                **client_config(config),
                "group.id": config.group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # Out-of-range offsets are reported, not silently reset: see consume().
                "auto.offset.reset": "error",
                "fetch.max.bytes": 64 * 1024 * 1024,
                "max.partition.fetch.bytes": 16 * 1024 * 1024,
                "queued.max.messages.kbytes": 256 * 1024,
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
        try:
            metadata = self._consumer.list_topics(timeout=timeout)
        except KafkaException as exc:
            raise broker_unavailable(self._kafka, timeout, exc) from None
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
        stamps: dict[str, dict[int, int]] | None = None,
    ) -> ConsumedRecords:
        """Read from *start* offsets (per topic and partition; missing means from the beginning).

        Where a table has read before, the read starts one record early, at the last record the
        table holds: receiving it proves the topic still has the history the table continued
        from. That record is dropped. A partition that gives nothing back, or that the broker
        reports out of range, has lost that history (the broker lost or re-created the topic):
        it is read again from the beginning, and replays are skipped by source position. *stamps* are
        the timestamps of those last records: a record with another timestamp there is another
        record (the topic was re-created and has grown past that offset again).
        """
        # (topic, partition) -> (offset of the last record the table holds, its timestamp)
        probes: dict[tuple[str, int], tuple[int, int | None]] = {}
        assignment = []
        for topic, partitions in self.partitions(topics).items():
            for partition in partitions:
                offset = start.get(topic, {}).get(partition)
                if offset:
                    probes[(topic, partition)] = (offset - 1, (stamps or {}).get(topic, {}).get(partition))
                    assignment.append(TopicPartition(topic, partition, offset - 1))
                else:
                    assignment.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
        result = ConsumedRecords({tp.topic: [] for tp in assignment})
        if not assignment:
            result.stopped_because = "no topics yet"
            return result
        self._consumer.assign(assignment)
        try:
            self._read(result, probes, max_events, max_seconds, idle_seconds)
        finally:
            self._consumer.unassign()
        return result

    def _rewind(self, result: ConsumedRecords, topic: str, partition: int, probes: dict, why: str) -> None:
        expected = probes.pop((topic, partition))[0] + 1
        result.resets.append((topic, partition, expected))
        log.warning(
            "topic %s partition %d %s at offset %d, where the Iceberg table continues from: the broker "
            "lost or re-created the topic. Reading it again from the beginning; changes already applied are "
            "skipped by source position, and a re-snapshot by the connector restores rows the topic no "
            "longer holds.",
            topic,
            partition,
            why,
            expected - 1,
        )
        self._consumer.seek(TopicPartition(topic, partition, OFFSET_BEGINNING))

    def _read(
        self,
        result: ConsumedRecords,
        probes: dict[tuple[str, int], tuple[int, int | None]],
        max_events: int,
        max_seconds: float,
        idle_seconds: float,
    ) -> None:
        began = last_message = time.monotonic()
        while True:
            now = time.monotonic()
            if result.count >= max_events:
                result.stopped_because = f"max_events ({max_events})"
                return
            if now - began >= max_seconds:
                result.stopped_because = f"max_seconds ({max_seconds:g})"
                return
            if now - last_message >= idle_seconds:
                if not probes:
                    result.stopped_because = f"idle for {idle_seconds:g}s"
                    return
                for topic, partition in list(probes):
                    self._rewind(result, topic, partition, probes, "returned nothing")
                last_message = time.monotonic()
            messages = self._consumer.consume(
                num_messages=min(10_000, max_events - result.count), timeout=0.2
            )
            for message in messages:
                topic, partition, error = message.topic(), message.partition(), message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    if error.code() == KafkaError._AUTO_OFFSET_RESET and (topic, partition) in probes:
                        self._rewind(result, topic, partition, probes, "is out of range")
                        continue
                    raise ConsumeError(f"Kafka error on {topic}[{partition}]: {error}")
                kind, stamp = message.timestamp()
                stamp = stamp if kind != TIMESTAMP_NOT_AVAILABLE else None
                probe = probes.get((topic, partition))
                if probe is not None:
                    verdict = probe_verdict(probe, message.offset(), stamp)
                    if verdict == REWIND:
                        self._rewind(result, topic, partition, probes, "holds another record")
                        continue
                    del probes[(topic, partition)]
                    if verdict == SKIP:
                        continue  # the table already holds this record
                result.by_topic[topic].append(
                    KafkaRecord(topic, partition, message.offset(), message.key(), message.value(), stamp)
                )
            if messages:
                last_message = time.monotonic()

    def end_offsets(self, topic: str, timeout: float = 10.0) -> dict[int, int]:
        """Each partition's high watermark (the offset the next record gets), for lag monitoring."""
        ends = {}
        for partition in self.partitions([topic], timeout).get(topic, []):
            try:
                ends[partition] = self._consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout
                )[1]
            except KafkaException as exc:
                raise ConsumeError(f"cannot read the end offsets of {topic}[{partition}]: {exc}") from None
        return ends

    def scan(
        self, topic: str, start: dict[int, int], idle_seconds: float, closed: set[int]
    ) -> Iterator[KafkaRecord]:
        """The topic's records from *start* (per partition; missing means the beginning) until
        every partition is *closed* (the caller adds one once it has read enough there) or none
        arrives for *idle_seconds*. A read that compares, never one that merges: no probe, no rewind."""
        partitions = self.partitions([topic]).get(topic, [])
        self._consumer.assign(
            [TopicPartition(topic, p, start.get(p) or OFFSET_BEGINNING) for p in partitions]
        )
        try:
            quiet_since = time.monotonic()
            while set(partitions) - closed and time.monotonic() - quiet_since < idle_seconds:
                for message in self._consumer.consume(num_messages=10_000, timeout=0.2):
                    partition, error = message.partition(), message.error()
                    if error is not None:
                        if error.code() == KafkaError._PARTITION_EOF:
                            continue
                        raise ConsumeError(f"Kafka error on {topic}[{partition}]: {error}")
                    quiet_since = time.monotonic()
                    if partition not in closed:
                        yield KafkaRecord(topic, partition, message.offset(), message.key(), message.value())
        finally:
            self._consumer.unassign()

    def commit_for_monitoring(self, offsets: dict[str, dict[int, int]]) -> None:
        """Record progress in the consumer group for lag dashboards; Iceberg stays the truth."""
        partitions = [TopicPartition(t, p, o) for t, parts in offsets.items() for p, o in parts.items()]
        if not partitions:
            return
        try:
            self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            log.warning("could not commit monitoring offsets to group: %s", exc)
