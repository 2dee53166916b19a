"""What Prefect must hold for a pipeline, as plain data for Terraform: the work pool, the
deployments (``prefect.yaml``'s and one replicate deployment per source), the per-table
concurrency limits, and the alert automations. ``floe deploy`` registers the same objects."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from floe_cdc.core.config import PipelineConfig
from floe_cdc.flows.alerts import alert_rules, trigger_document
from floe_cdc.flows.deployments import WORK_POOL, deployment_specs
from floe_cdc.flows.replicate import table_lock_names


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
        "deployments": {
            spec.name: spec.rendered() for spec in deployment_specs(config, config_path, project_dir)
        },
        "concurrency_limits": dict.fromkeys(table_lock_names(config.iceberg.namespace, tables), 1),
        "automations": _automations(config),
    }
