"""``floe connectors apply | status``: put each source's rendered connector on Kafka Connect."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psycopg2

from floe_cdc.capture.connect_client import ConnectClient, failure_of, is_running
from floe_cdc.capture.connect_secrets import externalize, write_secrets
from floe_cdc.capture.connectors import render_all
from floe_cdc.capture.replication_objects import ReplicationObjects, ensure_publication, existing, remove_new
from floe_cdc.capture.signals import ensure_control_topics, place_signal_readers
from floe_cdc.capture.source_catalog import largest_value
from floe_cdc.capture.source_check import check_postgres_source
from floe_cdc.core.config import PipelineConfig, PostgresSource, Source
from floe_cdc.core.errors import ConfigError, ConnectError, ConnectRejected

# A task that fails on its first records (a missing table, a record too large) fails within this
# time of reporting RUNNING; apply watches that long before it calls a connector healthy.
SETTLE_SECONDS = 8.0


def apply_connectors(
    config: PipelineConfig, wait_seconds: float = 90.0, settle_seconds: float = SETTLE_SECONDS
) -> dict[str, str]:
    """Check each PostgreSQL source's tables, then validate, create or update every connector and
    wait for it and its tasks to run.

    Failed tasks of an unchanged connector are restarted. A connector this call created that
    then fails is deleted again, so a failed apply leaves no connector behind.
    """
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
            ensure_publication(source)
    sources = {source.connector_name: source for source in config.sources}
    states: dict[str, str] = {}
    rendered, secrets = {}, {}
    for name, properties in render_all(config).items():
        rendered[name], values = externalize(name, properties, config.connect)
        secrets.update(values)
    new_secrets = write_secrets(Path(config.connect.secrets_file), secrets) if secrets else set()
    ensure_control_topics(config.kafka, config.sources)
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
            if changed:
                client.put_config(name, properties)
                client.wait_configured(name, properties, timeout=wait_seconds)
            else:
                status = client.status(name)
                if name in new_secrets:  # config providers resolve secrets when a connector starts
                    client.restart(name)
                elif status and failure_of(name, status):
                    client.restart(name, only_failed=True)
            try:
                status = client.wait_running(name, timeout=wait_seconds, settle=settle_seconds)
            except ConnectError as exc:
                source = sources[name]
                hint = _largest_value_hint(source, str(exc))
                if current is None:
                    client.delete(name)
                    removed = ["the connector"]
                    if isinstance(source, PostgresSource):
                        removed += remove_new(source, before[name])
                    raise type(exc)(f"{exc}{hint}. Removed again: {', '.join(removed)}") from None
                if hint:
                    raise type(exc)(f"{exc}{hint}") from None
                raise
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
                states.append(ConnectorState(name, "missing (run 'floe connectors apply')"))
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
