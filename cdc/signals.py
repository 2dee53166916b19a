"""Ask a source's Debezium connector for a blocking re-snapshot of some tables.

Debezium reads signals from a Kafka topic of the connector's own (``signal.kafka.topic``): a
record keyed by the connector's ``topic.prefix`` whose value is an ``execute-snapshot`` signal.
A blocking snapshot pauses streaming, reads the tables again as snapshot events (``op`` ``r``)
into their usual topics, marks the last one, and resumes streaming. Floe then applies those rows
like any others: each row's source position makes them win over older changes, and the
completed snapshot removes rows it did not contain. Only the Kafka protocol is used, so this
works the same on Apache Kafka.
"""

from __future__ import annotations

from collections.abc import Callable

import orjson
from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from floe.config import KafkaConfig, Source, TargetRef
from floe.errors import FloeError, Transient


class SignalError(FloeError, Transient):
    """The signal could not be written to Kafka."""


def signal_topic(source: Source) -> str:
    return f"{source.topic_prefix}.signals"


def _client_config(kafka: KafkaConfig) -> dict[str, str]:
    return {"bootstrap.servers": kafka.bootstrap_servers, "log_level": "3", **kafka.client_config}


def ensure_signal_topics(kafka: KafkaConfig, sources: list[Source]) -> None:
    """Create the sources' signal topics (one partition each: signals keep their order) where
    missing, with one admin client and one listing for all of them."""
    admin = AdminClient(_client_config(kafka))
    topics = [signal_topic(source) for source in sources]
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
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise _topic_error(topic, exc) from None
    except KafkaException as exc:
        raise _topic_error(", ".join(topics), exc) from None


def _topic_error(topic: str, exc: KafkaException) -> SignalError:
    return SignalError(
        f"cannot create the signal topic {topic} ({exc}); check kafka.bootstrap_servers and that Floe "
        "may create topics"
    )


def request_snapshot(
    kafka: KafkaConfig, source: Source, tables: list[TargetRef], pattern: Callable[[str], str]
) -> None:
    """Write a blocking ``execute-snapshot`` signal for *tables*; *pattern* turns a table's data
    collection name into the exact regular expression Debezium matches it with."""
    value = {
        "type": "execute-snapshot",
        "data": {
            "data-collections": [pattern(source.source_table(table)) for table in tables],
            "type": "BLOCKING",
        },
    }
    producer = Producer({**_client_config(kafka), "enable.idempotence": "true"})
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
