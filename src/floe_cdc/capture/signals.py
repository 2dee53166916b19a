"""Ask a source's Debezium connector for a re-snapshot of some tables.

Debezium reads signals from a Kafka topic of the connector's own (``signal.kafka.topic``): a
record keyed by the connector's ``topic.prefix`` whose value is an ``execute-snapshot`` signal.

- An incremental snapshot (PostgreSQL) reads the tables in chunks by primary key while streaming
  goes on. Each chunk is read between two watermarks, and a key changed meanwhile is dropped from
  the chunk, so the streamed change wins. Reads are events with ``op`` ``r`` in the tables' usual
  topics; the connector's notifications say when a table has been read to the end.
- A blocking snapshot (MongoDB) pauses streaming, reads the tables again, marks the last event,
  and resumes streaming.

Floe applies the reads like any other change: each row's source position makes them win over
older changes. Only the Kafka protocol is used, so this works the same on Apache Kafka.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import orjson
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from floe_cdc.capture.kafka_clients import client_config
from floe_cdc.core.config import KafkaConfig, Source, TargetRef
from floe_cdc.core.errors import FloeError, Transient


class SignalError(FloeError, Transient):
    """The signal could not be written to Kafka."""


def signal_topic(source: Source) -> str:
    return f"{source.topic_prefix}.signals"


def signal_group(source: Source) -> str:
    """The consumer group in which the connector keeps its place in the signal topic."""
    return f"{source.connector_name}-signals"


def notification_topic(source: Source) -> str:
    """Where the connector reports the progress of snapshots it was asked for."""
    return f"{source.topic_prefix}.notifications"


def ensure_control_topics(kafka: KafkaConfig, sources: list[Source]) -> list[str]:
    """Create the sources' signal and notification topics (one partition each: they keep their
    order) where missing, with one admin client and one listing for all of them; the topics it
    created."""
    admin = AdminClient(client_config(kafka))
    topics = [topic for source in sources for topic in (signal_topic(source), notification_topic(source))]
    created: list[str] = []
    try:
        present = admin.list_topics(timeout=10).topics
        missing = [
            NewTopic(topic, num_partitions=1, replication_factor=-1)
            for topic in topics
            if topic not in present
        ]
        for topic, future in admin.create_topics(missing).items() if missing else []:
            try:
                future.result(timeout=30)
                created.append(topic)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise _topic_error(topic, exc) from None
    except KafkaException as exc:
        raise _topic_error(", ".join(topics), exc) from None
    return created


def delete_topics(kafka: KafkaConfig, topics: list[str]) -> None:
    """Delete *topics*, and wait until the broker has."""
    admin = AdminClient(client_config(kafka))
    for topic, future in admin.delete_topics(topics).items():
        try:
            future.result(timeout=30)
        except KafkaException as exc:
            raise SignalError(f"cannot delete the topic {topic} ({exc}); delete it by hand") from None


def place_signal_readers(kafka: KafkaConfig, sources: list[Source]) -> None:
    """Give each source's signal group a place at the end of its signal topic where it has none.

    A connector's signal consumer finds its starting place only on its first polls, seconds
    after the connector runs; left to ``auto.offset.reset=latest`` it would skip a signal written
    in between. With a committed place it reads every signal written after ``connectors apply``,
    and a connector created again under the same name does not replay old ones.
    """
    for source in sources:
        topic = TopicPartition(signal_topic(source), 0)
        consumer = Consumer(
            {**client_config(kafka), "group.id": signal_group(source), "enable.auto.commit": False}
        )
        try:
            if consumer.committed([topic], timeout=10)[0].offset >= 0:
                continue
            end = consumer.get_watermark_offsets(topic, timeout=10)[1]
            consumer.commit(offsets=[TopicPartition(topic.topic, 0, end)], asynchronous=False)
        except KafkaException as exc:
            raise SignalError(
                f"cannot place the signal reader of source {source.name} in {topic.topic} ({exc}); check "
                "kafka.bootstrap_servers and that Floe may commit offsets for the group "
                f"{signal_group(source)}"
            ) from None
        finally:
            consumer.close()


def _topic_error(topic: str, exc: KafkaException) -> SignalError:
    return SignalError(
        f"cannot create the topic {topic} ({exc}); check kafka.bootstrap_servers and that Floe "
        "may create topics"
    )


def new_signal_id() -> str:
    return str(uuid.uuid4())


def request_snapshot(
    kafka: KafkaConfig,
    source: Source,
    tables: list[TargetRef],
    pattern: Callable[[str], str],
    signal_id: str | None = None,
) -> None:
    """Write an ``execute-snapshot`` signal for *tables*: incremental with *signal_id* (which the
    connector's notifications about it carry), blocking without. *pattern* turns a table's data
    collection name into the exact regular expression Debezium matches it with."""
    value = {
        "id": signal_id or new_signal_id(),
        "type": "execute-snapshot",
        "data": {
            "data-collections": [pattern(source.source_table(table)) for table in tables],
            "type": "INCREMENTAL" if signal_id else "BLOCKING",
        },
    }
    producer = Producer({**client_config(kafka), "enable.idempotence": "true"})
    failures: list[str] = []

    def delivered(error: object, _message: object) -> None:
        if error is not None:
            failures.append(str(error))

    producer.produce(
        signal_topic(source),
        key=source.topic_prefix.encode(),
        value=orjson.dumps(value),
        on_delivery=delivered,
    )
    left = producer.flush(30)
    if left or failures:
        raise SignalError(
            f"the re-snapshot signal for source {source.name} was not written to {signal_topic(source)} "
            f"({'; '.join(failures) or 'timed out'}); check kafka.bootstrap_servers and retry"
        )
