"""The settings every Kafka client of Floe starts from.

librdkafka logs each failed connection attempt at error level, hundreds of lines a minute while a
broker is away. Floe says what went wrong in one line of its own (naming
``kafka.bootstrap_servers``), so librdkafka's lines go to the ``floe.kafka`` logger at debug
level, which a normal terminal does not show.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from confluent_kafka import KafkaError, KafkaException
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


def broker_unavailable(
    kafka: KafkaConfig, timeout: float, exc: KafkaException, refused: str | None = None
) -> BrokerUnavailable:
    """The one-line error for a cluster that did not answer in *timeout* seconds, or whose every
    broker *refused* the connection (librdkafka's reason)."""
    reason = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else str(exc)
    what = f"cannot be reached ({refused})" if refused else f"did not answer within {timeout:.0f}s ({reason})"
    return BrokerUnavailable(
        f"the Kafka cluster at {kafka.bootstrap_servers} {what}; "
        "check kafka.bootstrap_servers (and kafka.client_config for TLS or SASL) in the pipeline "
        "configuration, and that the brokers are running"
    )


class _Refusals:
    """librdkafka's error callback: the first connection error, and whether every bootstrap
    broker has failed since (``_ALL_BROKERS_DOWN``, reported as soon as each was tried once)."""

    def __init__(self) -> None:
        self.first: str | None = None
        self.all_down = False

    def __call__(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            self.all_down = True
        elif self.first is None:
            self.first = error.str()


# How long each metadata request waits before the errors seen meanwhile are looked at.
_SLICE_SECONDS = 0.25


def check_broker(kafka: KafkaConfig, timeout: float = 10.0) -> None:
    """Raise ``BrokerUnavailable`` unless the cluster answers within *timeout*: asked before a
    command creates anything, so that it fails whole. A cluster none of whose brokers takes a
    connection (a closed port, a name that does not resolve, a TLS handshake refused) fails at
    once with librdkafka's reason, rather than after *timeout*: librdkafka itself would keep
    trying until then."""
    refusals = _Refusals()
    admin = AdminClient({**client_config(kafka), "error_cb": refusals})
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            admin.list_topics(timeout=max(min(_SLICE_SECONDS, left), 0.001))
            return
        except KafkaException as exc:
            admin.poll(0)  # serves the error callback
            if refusals.all_down:
                refused = refusals.first or "every broker is down"
                raise broker_unavailable(kafka, timeout, exc, refused) from None
            if left <= _SLICE_SECONDS:
                raise broker_unavailable(kafka, timeout, exc) from None
