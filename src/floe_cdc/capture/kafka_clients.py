"""The settings every Kafka client of Floe starts from.

librdkafka logs each failed connection attempt at error level, hundreds of lines a minute while a
broker is away. Floe says what went wrong in one line of its own (naming
``kafka.bootstrap_servers``), so librdkafka's lines go to the ``floe.kafka`` logger at debug
level, which a normal terminal does not show.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from floe_cdc.core.config import KafkaConfig
from floe_cdc.core.errors import FloeError, Transient

_log = logging.getLogger("floe.kafka")


class _DebugOnly:
    """What librdkafka calls with its log lines (``log(level, format, *args)``): all at debug."""

    def log(self, level: int, msg: str, *args: Any) -> None:
        _log.debug(msg, *args)


_LIBRDKAFKA_LOG = _DebugOnly()


def client_config(kafka: KafkaConfig) -> dict[str, Any]:
    """The broker address, librdkafka's logging, then the user's ``kafka.client_config``."""
    return {"bootstrap.servers": kafka.bootstrap_servers, "logger": _LIBRDKAFKA_LOG, **kafka.client_config}


class BrokerUnavailable(FloeError, Transient):
    """The Kafka cluster did not answer."""


def broker_unavailable(kafka: KafkaConfig, timeout: float, exc: KafkaException) -> BrokerUnavailable:
    reason = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else str(exc)
    return BrokerUnavailable(
        f"the Kafka cluster at {kafka.bootstrap_servers} did not answer within {timeout:.0f}s ({reason}); "
        "check kafka.bootstrap_servers (and kafka.client_config for TLS or SASL) in the pipeline "
        "configuration, and that the brokers are running"
    )


def check_broker(kafka: KafkaConfig, timeout: float = 10.0) -> None:
    """Raise ``BrokerUnavailable`` unless the cluster answers within *timeout*: asked before a
    command creates anything, so that it fails whole."""
    try:
        AdminClient(client_config(kafka)).list_topics(timeout=timeout)
    except KafkaException as exc:
        raise broker_unavailable(kafka, timeout, exc) from None
