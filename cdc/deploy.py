"""``floe connectors apply | status``: put each source's rendered connector on Kafka Connect."""

from __future__ import annotations

from dataclasses import dataclass

from cdc.connect_client import ConnectClient, failure_of, is_running
from cdc.connectors import render_all
from cdc.source_check import check_postgres_source
from floe.config import PipelineConfig, PostgresSource
from floe.errors import ConnectError

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
    for index, source in enumerate(config.sources):
        if isinstance(source, PostgresSource):
            check_postgres_source(source, index)
    states: dict[str, str] = {}
    with ConnectClient(config.connect.url, config.connect.timeout_seconds) as client:
        for name, properties in render_all(config).items():
            errors = client.validate(properties["connector.class"], {**properties, "name": name})
            if errors:
                detail = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
                raise ConnectError(f"connector {name} configuration rejected by Kafka Connect: {detail}")
            existing = client.get_config(name)
            changed = existing != {**properties, "name": name}
            if changed:
                client.put_config(name, properties)
            else:
                status = client.status(name)
                if status and failure_of(name, status):
                    client.restart(name, only_failed=True)
            try:
                status = client.wait_running(name, timeout=wait_seconds, settle=settle_seconds)
            except ConnectError as exc:
                if existing is None:
                    client.delete(name)
                    raise ConnectError(f"{exc}. The connector was removed again") from None
                raise
            action = "created" if existing is None else ("updated" if changed else "unchanged")
            states[name] = f"{action}, {status['connector']['state']}"
    return states


@dataclass(frozen=True)
class ConnectorState:
    """A source connector's state as one line, and the failure with its way out, if any."""

    name: str
    state: str
    failure: str | None = None
    running: bool = False  # the connector and every task RUNNING


def connector_states(config: PipelineConfig) -> list[ConnectorState]:
    """The state of every source's connector and its tasks, as Kafka Connect reports it."""
    states: list[ConnectorState] = []
    with ConnectClient(config.connect.url, config.connect.timeout_seconds) as client:
        for name in (source.connector_name for source in config.sources):
            status = client.status(name)
            if status is None:
                states.append(ConnectorState(name, "missing (run 'floe connectors apply')"))
                continue
            tasks = status.get("tasks", [])
            listed = ", ".join(f"task {t['id']} {t['state']}" for t in tasks)
            line = f"{status['connector']['state']}" + (f" ({listed})" if listed else " (no tasks)")
            states.append(ConnectorState(name, line, failure_of(name, status), is_running(status)))
    return states
