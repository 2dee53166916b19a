"""What Prefect must hold for a pipeline, as plain data for Terraform: the work pool, the
deployments (``prefect.yaml``'s and one replicate deployment per source), the per-table
concurrency limits, and the alert automations. ``floe deploy`` registers the same objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from floe_cdc.core.config import PipelineConfig
from floe_cdc.core.errors import ConfigError
from floe_cdc.flows.alerts import alert_rules, trigger_document
from floe_cdc.flows.deployments import WORK_POOL, replicate_deployment_name, replicate_description
from floe_cdc.flows.replicate import table_lock_names


def _deployments(config: PipelineConfig, config_path: str, project_dir: Path) -> dict[str, dict[str, Any]]:
    declared_in = project_dir / "prefect.yaml"
    if not declared_in.is_file():
        raise ConfigError(f"no prefect.yaml in {project_dir}; run this from the Floe project's folder")
    declared = yaml.safe_load(declared_in.read_text())["deployments"]
    rendered: dict[str, dict[str, Any]] = {}
    for source in config.sources:
        rendered[replicate_deployment_name(source.name)] = {
            "flow": "replicate",
            "entrypoint": "flows/replicate.py:replicate",
            "description": replicate_description(source),
            "parameters": {"config_path": config_path, "tables": [t.target_name for t in source.tables]},
            "interval_seconds": config.replicate.schedule_seconds,
            "concurrency_limit": 1,
        }
    for deployment in declared:
        schedules = deployment.get("schedules") or [{}]
        rendered[deployment["name"]] = {
            "flow": deployment["entrypoint"].rsplit(":", 1)[1],
            "entrypoint": deployment["entrypoint"],
            "description": " ".join(deployment.get("description", "").split()),
            "parameters": {**deployment.get("parameters", {}), "config_path": config_path},
            "interval_seconds": schedules[0].get("interval"),
            "concurrency_limit": (deployment.get("concurrency_limit") or {}).get("limit"),
        }
    return rendered


def _automations(config: PipelineConfig) -> dict[str, dict[str, Any]]:
    rendered = {}
    for rule in alert_rules(config):
        rendered[rule.name] = {
            "description": rule.description,
            "trigger": trigger_document(rule.trigger),
            "actions": [{"subject": rule.subject, "body": rule.body}],
        }
    return rendered


def prefect_objects(config: PipelineConfig, config_path: str, project_dir: Path) -> dict[str, Any]:
    tables = [table.target_name for _, table in config.tables()]
    return {
        "work_pool": {"name": WORK_POOL, "type": "process"},
        "deployments": _deployments(config, config_path, project_dir),
        "concurrency_limits": dict.fromkeys(table_lock_names(config.iceberg.namespace, tables), 1),
        "automations": _automations(config),
    }
