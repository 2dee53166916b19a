"""Consume change events from Kafka with manual offset control.

Partitions are assigned explicitly at the offsets the Iceberg tables recorded, so no consumer
group rebalance is involved and the group's committed offsets serve monitoring only. A cycle
reads what is available up to a size and time bound; "caught up" means no message arrived for
``idle_seconds`` and every partition is read up to the high watermark the broker last reported
(not that alone: some Kafka-protocol brokers under-report it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from floe_cdc.capture.envelope import KafkaRecord
from floe_cdc.capture.kafka_clients import broker_unavailable, check_broker, client_config
from floe_cdc.core.config import KafkaConfig
from floe_cdc.core.errors import FloeError, Transient

log = logging.getLogger("floe.consumer")


class ConsumeError(FloeError, Transient):
    """The broker reported an error while consuming."""


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


class Probes:
    """The partitions of an assignment whose first record is still to be checked (see
    :func:`probe_verdict`): (topic, partition) -> (offset of the last record the table holds, its
    timestamp). A partition that gives nothing back, or that the broker reports out of range, has
    lost that history (the broker lost or re-created the topic): it is read again from the
    beginning, and replays are skipped by source position."""

    def __init__(self, consumer: ChangeConsumer) -> None:
        self._consumer = consumer
        self.waiting: dict[tuple[str, int], tuple[int, int | None]] = {}
        self.topics: list[str] = []
        self.resets: list[tuple[str, int, int]] = []  # (topic, partition, lost-from offset)

    def admit(self, message: Message) -> KafkaRecord | None:
        """The record *message* holds, or None where it is a probe, an end of partition, or a
        partition read again from its beginning."""
        topic, partition, error = message.topic(), message.partition(), message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return None
            if error.code() == KafkaError._AUTO_OFFSET_RESET and (topic, partition) in self.waiting:
                self._rewind(topic, partition, "is out of range")
                return None
            raise ConsumeError(f"Kafka error on {topic}[{partition}]: {error}")
        kind, stamp = message.timestamp()
        stamp = stamp if kind != TIMESTAMP_NOT_AVAILABLE else None
        probe = self.waiting.get((topic, partition))
        if probe is not None:
            verdict = probe_verdict(probe, message.offset(), stamp)
            if verdict == REWIND:
                self._rewind(topic, partition, "holds another record")
                return None
            del self.waiting[(topic, partition)]
            if verdict == SKIP:
                return None  # the table already holds this record
        return KafkaRecord(topic, partition, message.offset(), message.key(), message.value(), stamp)

    def rewind_silent(self) -> None:
        """Every partition still waiting after a quiet spell returned nothing: read it again."""
        for topic, partition in list(self.waiting):
            self._rewind(topic, partition, "returned nothing")

    def _rewind(self, topic: str, partition: int, why: str) -> None:
        expected = self.waiting.pop((topic, partition))[0] + 1
        self.resets.append((topic, partition, expected))
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
        self._consumer.seek_to_beginning(topic, partition)


class ChangeConsumer:
    def __init__(self, config: KafkaConfig) -> None:
        # A cluster that takes no connection is said at once, in one line, before anything reads
        # (the consumer's own metadata requests would wait their whole timeout).
        check_broker(config)
        self._kafka = config
        self._consumer = Consumer(
            {
                **client_config(config),
                "group.id": config.group_id,
                "enable.auto.commit": False,
                "enable.auto.offset.store": False,
                # Out-of-range offsets are reported, not silently reset: see Probes.
                "auto.offset.reset": "error",
                # A fetch that finds nothing new waits at most this long at the broker (500 ms by
                # default): the stream's freshness is counted in its fraction of a second.
                "fetch.wait.max.ms": 100,
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

    def assign(
        self,
        start: dict[str, dict[int, int]],
        topics: list[str],
        stamps: dict[str, dict[int, int]] | None = None,
    ) -> Probes | None:
        """Assign *topics* from *start* offsets (per topic and partition; missing means from the
        beginning); None when none of them exists yet.

        Where a table has read before, the read starts one record early, at the last record the
        table holds: receiving it proves the topic still has the history the table continued
        from, and :meth:`Probes.admit` drops it. *stamps* are the timestamps of those last records.
        """
        probes = Probes(self)
        assignment = []
        for topic, partitions in self.partitions(topics).items():
            for partition in partitions:
                offset = start.get(topic, {}).get(partition)
                if offset:
                    probes.waiting[(topic, partition)] = (
                        offset - 1,
                        (stamps or {}).get(topic, {}).get(partition),
                    )
                    assignment.append(TopicPartition(topic, partition, offset - 1))
                else:
                    assignment.append(TopicPartition(topic, partition, OFFSET_BEGINNING))
        if not assignment:
            return None
        self._consumer.assign(assignment)
        probes.topics = sorted({tp.topic for tp in assignment})
        return probes

    def unassign(self) -> None:
        self._consumer.unassign()

    def poll(self, probes: Probes, limit: int, timeout: float = 0.2) -> list[KafkaRecord] | None:
        """The next records of the assignment (at most *limit*), past the probes; None when nothing
        arrived within *timeout*."""
        messages = self._consumer.consume(num_messages=min(10_000, limit), timeout=timeout)
        if not messages:
            return None
        records = []
        for message in messages:
            record = probes.admit(message)
            if record is not None:
                records.append(record)
        return records

    def behind(self) -> bool:
        """Whether a partition of the assignment holds records not read yet, by the high
        watermark of the broker's last fetch response (cached by the client: no request). A
        partition no fetch has answered for yet counts as behind. One offset short is caught
        up: a transactional producer's commit marker (Kafka Connect's exactly-once source
        support) takes a partition's last offset and is never delivered. A broker that
        under-reports its high watermark (some report the last batch's base offset + 1) makes
        this say "caught up" up to a batch early, never the reverse: then only the quiet time
        decides, as it did alone before."""
        for position in self._consumer.position(self._consumer.assignment()):
            low, high = self._consumer.get_watermark_offsets(position, cached=True)
            if high < 0:
                return True  # no fetch answered yet
            read_to = position.offset if position.offset >= 0 else max(low, 0)
            if read_to + 1 < high:
                return True
        return False

    def seek_to_beginning(self, topic: str, partition: int) -> None:
        self._consumer.seek(TopicPartition(topic, partition, OFFSET_BEGINNING))

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
        """Record progress in the consumer group for lag dashboards; Iceberg stays the truth (an
        error is only worth a warning)."""
        partitions = [TopicPartition(t, p, o) for t, parts in offsets.items() for p, o in parts.items()]
        if not partitions:
            return
        try:
            self._consumer.commit(offsets=partitions, asynchronous=False)
        except KafkaException as exc:
            log.warning("could not commit monitoring offsets to group: %s", exc)
