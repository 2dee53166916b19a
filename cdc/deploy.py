"""``floe connectors apply | status``: put each source's rendered connector on Kafka Connect."""

from __future__ import annotations

from cdc.connect_client import ConnectClient
from cdc.connectors import render_all
from floe.config import PipelineConfig
from floe.errors import ConnectError


def apply_connectors(config: PipelineConfig, wait_seconds: float = 90.0) -> dict[str, str]:
    """Validate, then create or update every connector and wait for it to run."""
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
            status = client.wait_running(name, timeout=wait_seconds)
            action = "created" if existing is None else ("updated" if changed else "unchanged")
            states[name] = f"{action}, {status['connector']['state']}"
    return states


def connector_states(config: PipelineConfig) -> dict[str, str]:
    states: dict[str, str] = {}
    with ConnectClient(config.connect.url, config.connect.timeout_seconds) as client:
        for name in render_all(config):
            status = client.status(name)
            if status is None:
                states[name] = "missing (run 'floe connectors apply')"
                continue
            tasks = ", ".join(f"task {t['id']} {t['state']}" for t in status.get("tasks", []))
            states[name] = f"{status['connector']['state']}" + (f" ({tasks})" if tasks else "")
    return states
