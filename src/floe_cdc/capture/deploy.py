"""``floe connectors apply | status``: put each source's rendered connector on Kafka Connect."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg2

from floe_cdc.capture.connect_client import ConnectClient, failure_of, is_running
from floe_cdc.capture.connect_secrets import externalize, write_secrets
from floe_cdc.capture.connectors import render_all
from floe_cdc.capture.kafka_clients import check_broker
from floe_cdc.capture.replication_objects import ReplicationObjects, ensure_publication, existing, remove_new
from floe_cdc.capture.signals import delete_topics, ensure_control_topics, place_signal_readers
from floe_cdc.capture.source_catalog import largest_value
from floe_cdc.capture.source_check import check_postgres_source
from floe_cdc.core.config import PipelineConfig, PostgresSource, Source
from floe_cdc.core.errors import ConfigError, ConnectError, ConnectRejected, FloeError

# A task that fails on its first records (a missing table, a record too large) fails within this
# time of reporting RUNNING; apply watches that long before it calls a connector healthy.
SETTLE_SECONDS = 8.0


def apply_connectors(
    config: PipelineConfig, wait_seconds: float = 90.0, settle_seconds: float = SETTLE_SECONDS
) -> dict[str, str]:
    """Check each PostgreSQL source's tables, then validate, create or update every connector and
    wait for it and its tasks to run.

    Kafka Connect and the broker are asked first, so that one that does not answer fails the
    command before anything exists. Failed tasks of an unchanged connector are restarted. When a
    later step fails, the connectors, slots, publications and topics this call created are
    removed again: a failed apply leaves the sources and the broker as it found them.
    """
    check_services(config)
    before: dict[str, ReplicationObjects] = {}
    for index, source in enumerate(config.sources):
        if isinstance(source, PostgresSource):
            check_postgres_source(source, index)
            before[source.connector_name] = existing(source)
            if source.initial_load == "direct" and not before[source.connector_name].slot:
                raise ConfigError(
                    f"source {source.name} has initial_load: direct, and its tables are not loaded yet (no "
                    f"replication slot {source.slot}); 'floe connectors apply' loads them, then starts "
                    "the connector"
                )
    undo = _Undo(config, before)
    try:
        return _apply(config, wait_seconds, settle_seconds, undo)
    except Exception as exc:
        try:
            removed = undo.run()
        except FloeError as failed:
            removed = [f"nothing, it could not ({failed}): remove what is listed above by hand"]
        if removed and isinstance(exc, FloeError):
            raise type(exc)(f"{exc}. Removed again: {', '.join(removed)}") from None
        raise


def check_services(config: PipelineConfig) -> None:
    """Kafka Connect and the broker answer, or the error names the setting that points at them."""
    with ConnectClient(config.connect.url, config.connect.timeout_seconds) as client:
        client.version()
    check_broker(config.kafka)


class _Undo:
    """What one apply created, to remove when it fails: connectors, then each source's new slot
    and publication, then the control topics."""

    def __init__(self, config: PipelineConfig, before: dict[str, ReplicationObjects]) -> None:
        self.config = config
        self.before = before
        self.connectors: list[str] = []
        self.topics: list[str] = []

    def run(self) -> list[str]:
        removed: list[str] = []
        if self.connectors:  # Connect may be what failed: the slots and topics are removed without it
            with ConnectClient(self.config.connect.url, self.config.connect.timeout_seconds) as client:
                for name in self.connectors:
                    client.delete(name)
                    removed.append(f"connector {name}")
        for source in self.config.sources:
            if isinstance(source, PostgresSource):
                removed += remove_new(source, self.before[source.connector_name])
        if self.topics:
            delete_topics(self.config.kafka, self.topics)
            removed.append(f"topics {', '.join(self.topics)}")
        return removed


def _apply(config: PipelineConfig, wait_seconds: float, settle_seconds: float, undo: _Undo) -> dict[str, str]:
    for source in config.sources:
        if isinstance(source, PostgresSource):
            ensure_publication(source)
    sources = {source.connector_name: source for source in config.sources}
    states: dict[str, str] = {}
    rendered, secrets = {}, {}
    for name, properties in render_all(config).items():
        rendered[name], values = externalize(name, properties, config.connect)
        secrets.update(values)
    new_secrets = write_secrets(Path(config.connect.secrets_file), secrets) if secrets else set()
    undo.topics = ensure_control_topics(config.kafka, config.sources)
    place_signal_readers(config.kafka, config.sources)
    with ConnectClient(config.connect.url, config.connect.timeout_seconds) as client:
        for name, properties in rendered.items():
            errors = client.validate(properties["connector.class"], {**properties, "name": name})
            if errors:
                detail = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
                if {"database.password", "database.hostname", "mongodb.connection.string"} & set(errors):
                    detail += _secrets_hint(config)
                raise ConnectRejected(f"connector {name} configuration rejected by Kafka Connect: {detail}")
            current = client.get_config(name)
            changed = current != {**properties, "name": name}
            if current is None:
                undo.connectors.append(name)
            previous = client.status(name) if current is not None else None
            failed = failure_of(name, previous) if previous else None
            if changed:
                client.put_config(name, properties)
                client.wait_configured(name, properties, timeout=wait_seconds)
            elif name in new_secrets:  # config providers resolve secrets when a connector starts
                client.restart(name)
            if failed:
                # A task failed before (a change event too large, say): restarted, it runs with
                # what this apply changed. Its state is judged once the old failure has cleared.
                client.restart(name, only_failed=True)
                client.wait_cleared(name, failed)
            try:
                status = client.wait_running(name, timeout=wait_seconds, settle=settle_seconds)
            except ConnectError as exc:
                hint = _largest_value_hint(sources[name], str(exc))
                raise type(exc)(f"{exc}{hint}") from None
            action = "created" if current is None else ("updated" if changed else "unchanged")
            states[name] = f"{action}, {status['connector']['state']}"
    return states


def _largest_value_hint(source: Source, failure: str) -> str:
    """For a change event too large for Kafka: the table and column that hold the largest value.

    The task's trace gives the event's size but not its table (only the worker's log has the
    topic), so the source is asked.
    """
    if "RecordTooLargeException" not in failure or not isinstance(source, PostgresSource):
        return ""
    try:
        found = largest_value(source)
    except psycopg2.Error:
        return ""  # the failure itself is what matters; the source may be down too
    if found is None:
        return ""
    table, column, size = found
    return (
        f" The largest value of source {source.name} is in table {table}, column {column}: {size:,} "
        "bytes (a change event carries it as JSON, in after and, for updates, in before too)"
    )


def _secrets_hint(config: PipelineConfig) -> str:
    """Where Kafka Connect looked for the secrets, for a rejected configuration."""
    if config.connect.secrets == "file":
        return (
            f". Kafka Connect reads passwords from {config.connect.secrets_file} (connect.secrets: file): "
            "every worker must read that path and have FileConfigProvider configured as 'file' (see "
            "docs/secrets.md)"
        )
    if config.connect.secrets == "env":
        return (
            ". Kafka Connect reads passwords from its workers' environment (connect.secrets: env): "
            "check the variables named in docs/secrets.md"
        )
    return ""


@dataclass(frozen=True)
class ConnectorState:
    """A source connector's state as one line, and the failure with its way out, if any."""

    name: str
    state: str
    failure: str | None = None
    running: bool = False  # the connector and every task RUNNING
    paused: bool = False  # paused on purpose ('floe pause'): replicate leaves its tables alone


def connector_states(config: PipelineConfig) -> list[ConnectorState]:
    """The state of every source's connector and its tasks, as Kafka Connect reports it."""
    states: list[ConnectorState] = []
    with ConnectClient(config.connect.url, config.connect.timeout_seconds) as client:
        for source in config.sources:
            name = source.connector_name
            status = client.status(name)
            if status is None:
                missing = (
                    f"connector {name} of source {source.name} does not exist: run 'floe connectors apply'"
                )
                states.append(ConnectorState(name, "missing (run 'floe connectors apply')", missing))
                continue
            tasks = status.get("tasks", [])
            listed = ", ".join(f"task {t['id']} {t['state']}" for t in tasks)
            line = f"{status['connector']['state']}" + (f" ({listed})" if listed else " (no tasks)")
            failure = failure_of(name, status)
            if failure:
                failure += _largest_value_hint(source, failure)
            paused = status["connector"]["state"] == "PAUSED"
            states.append(ConnectorState(name, line, failure, is_running(status), paused))
    return states


def pause_source(config: PipelineConfig, name: str, timeout: float = 60.0) -> ConnectorState:
    """Pause the source's connector and wait until Kafka Connect reports it PAUSED. Replicate
    then skips the source's tables, so that nothing of it moves until ``resume_source``. The
    connector's state is the only record of the pause: nothing else can disagree with it."""
    return _switch(config, name, True, timeout)


def resume_source(config: PipelineConfig, name: str, timeout: float = 60.0) -> ConnectorState:
    """Resume the source's connector and wait until it and its tasks run again."""
    return _switch(config, name, False, timeout)


def _switch(config: PipelineConfig, name: str, pause: bool, timeout: float) -> ConnectorState:
    connector = config.find_source(name).connector_name
    with ConnectClient(config.connect.url, config.connect.timeout_seconds) as client:
        if client.status(connector) is None:
            raise ConnectRejected(
                f"connector {connector} of source {name} does not exist; run 'floe connectors apply'"
            )
        if pause:
            client.pause(connector)
            client.wait_state(connector, "PAUSED", timeout)
        else:
            client.resume(connector)
            client.wait_running(connector, timeout)
    return next(state for state in connector_states(config) if state.name == connector)
