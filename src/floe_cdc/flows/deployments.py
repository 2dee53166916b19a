"""Register the flows' deployments with the Prefect server: those ``prefect.yaml`` declares, and
one ``replicate`` deployment per source of the pipeline configuration."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from floe_cdc.core.config import PipelineConfig, Source, load_config
from floe_cdc.core.errors import ConfigError, FloeError, Terminal

# Prefect itself is imported inside the functions that deploy: the local stack imports this
# module (for prefect_cli) before it points Prefect, which reads its settings at import, at a
# server.

WORK_POOL = "floe"


class DeployError(FloeError, Terminal):
    """``prefect deploy`` failed; the message carries its output."""


def prefect_cli() -> str:
    """The ``prefect`` command of this Python environment."""
    path = Path(sys.executable).parent / "prefect"
    if not path.exists():
        raise ConfigError(f"prefect CLI not found next to {sys.executable}; run 'make install'")
    return str(path)


def deploy_all(project_dir: Path) -> None:
    """``prefect deploy --all`` for the project's prefect.yaml (the work pool must exist)."""
    result = subprocess.run(
        [prefect_cli(), "--no-prompt", "deploy", "--all"],
        cwd=project_dir,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise DeployError(f"prefect deploy failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")


def replicate_deployment_name(source: str) -> str:
    return f"replicate-{source}"


def config_reference(config_path: Path, project_dir: Path) -> str:
    """How deployments name the pipeline configuration: relative to the project, where workers run."""
    return (
        str(config_path.relative_to(project_dir))
        if config_path.is_relative_to(project_dir)
        else str(config_path)
    )


def replicate_description(source: Source) -> str:
    return (
        f"Replication cycles for source {source.name} ({source.connector_name}): consume its tables' "
        "changes, merge them into Iceberg, reconcile, report."
    )


def deploy_replicate(config: PipelineConfig, config_path: str, project_dir: Path) -> list[str]:
    """One ``replicate`` deployment per source, on the ``floe`` work pool, one run at a time.

    Each runs every ``replicate.schedule_seconds`` over its source's tables. Several workers on
    the pool then share the sources, and the per-table concurrency limits keep every table to
    one writer even where deployments overlap (a table named by two of them, an ad-hoc run).
    """
    from prefect.client.schemas.objects import ConcurrencyLimitConfig

    from floe_cdc.flows.replicate import replicate

    flow = replicate.from_source(source=str(project_dir), entrypoint="flows/replicate.py:replicate")
    names = []
    for source in config.sources:
        name = replicate_deployment_name(source.name)
        flow.deploy(
            name=name,
            work_pool_name=WORK_POOL,
            interval=config.replicate.schedule_seconds,
            concurrency_limit=ConcurrencyLimitConfig(limit=1, collision_strategy="CANCEL_NEW"),
            parameters={"config_path": config_path, "tables": [t.target_name for t in source.tables]},
            description=replicate_description(source),
            build=False,
            push=False,
            print_next_steps=False,
            ignore_warnings=True,
        )
        names.append(name)
    return names


def deploy(config_path: Path, project_dir: Path) -> list[str]:
    """Everything ``floe deploy`` registers; a line per kind, for the person deploying."""
    from floe_cdc.flows.alerts import ensure_automations

    config = load_config(config_path)
    deploy_all(project_dir)
    replicating = deploy_replicate(config, config_reference(config_path, project_dir), project_dir)
    alerts = ensure_automations(config)
    target = config.alerts.notify_block or "the Prefect UI only (set alerts.notify_block to be notified)"
    return [
        f"deployments: {', '.join(replicating)} (every {config.replicate.schedule_seconds:g}s, one run at a "
        "time); reconcile, resnapshot, pause, resume (ad hoc); maintain (hourly)",
        f"automations: {', '.join(alerts)}; notifications go to {target}",
    ]
