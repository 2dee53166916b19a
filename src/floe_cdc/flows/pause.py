"""The ad-hoc ``pause`` and ``resume`` flows: stop a source's replication and start it again."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from floe_cdc.capture.deploy import ConnectorState, pause_source, resume_source
from floe_cdc.core.config import load_config


def _report(action: str, source: str, state: ConnectorState) -> dict[str, Any]:
    summary = f"Source {source} {action}: connector {state.name} is {state.state}"
    get_run_logger().info(summary)
    create_markdown_artifact(key=f"floe-{action}", markdown=f"**{summary}**", description=summary)
    return {"source": source, "connector": state.name, "state": state.state}


@flow(name="pause")
def pause(source: str, config_path: str = "floe.yaml") -> dict[str, Any]:
    """Pause *source*: its Debezium connector stops reading the database (its replication slot
    keeps the changes), and replicate leaves its tables alone until ``resume``."""
    return _report("paused", source, pause_source(load_config(config_path), source))


@flow(name="resume")
def resume(source: str, config_path: str = "floe.yaml") -> dict[str, Any]:
    """Resume *source*: its connector reads on from where it paused, and replicate merges its
    tables again."""
    return _report("resumed", source, resume_source(load_config(config_path), source))
