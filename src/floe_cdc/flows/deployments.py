"""Floe's Prefect deployments, from one specification.

The specification is ``prefect.yaml``'s deployments and one ``replicate`` deployment per source
of the pipeline configuration (:func:`deployment_specs`). Everything that registers deployments
reads it: ``floe deploy`` registers it through Prefect's client (:func:`deploy`), ``floe render``
writes it for Terraform, and Floe's Terraform provider registers what the rendering holds through
the same :func:`put_deployment`. The work pool is made in one place too (:func:`ensure_work_pool`),
for ``floe deploy``, the local stack and the provider alike.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml
from prefect import Flow, get_client
from prefect.client.orchestration import SyncPrefectClient
from prefect.client.schemas.actions import DeploymentScheduleCreate, WorkPoolCreate
from prefect.client.schemas.objects import ConcurrencyOptions
from prefect.client.schemas.schedules import IntervalSchedule
from prefect.exceptions import ObjectNotFound
from prefect.utilities.callables import parameter_schema

from floe_cdc.core.config import PipelineConfig, Source, load_config
from floe_cdc.core.errors import ConfigError, FloeError, Transient
from floe_cdc.flows.alerts import automations, ensure_automations
from floe_cdc.flows.connectors import connectors
from floe_cdc.flows.maintain import maintain
from floe_cdc.flows.pause import pause, resume
from floe_cdc.flows.reconcile import reconcile
from floe_cdc.flows.replicate import replicate
from floe_cdc.flows.resnapshot import resnapshot

WORK_POOL = "floe"
# Each flow by its name: a deployment's parameters are typed by its flow's signature.
FLOWS: dict[str, Flow] = {
    f.name: f for f in (connectors, maintain, pause, resume, reconcile, replicate, resnapshot)
}
REPLICATE_ENTRYPOINT = "flows/replicate.py:replicate"


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment, as Prefect registers it and as ``floe render`` writes it."""

    name: str
    flow: str
    entrypoint: str
    description: str
    parameters: dict[str, Any]
    interval_seconds: float | None = None
    concurrency_limit: int | None = None
    job_variables: dict[str, Any] | None = None

    def rendered(self) -> dict[str, Any]:
        """The deployment in ``prefect.json``, keyed by its name there."""
        return {key: value for key, value in asdict(self).items() if key != "name"}


def replicate_deployment_name(source: str) -> str:
    return f"replicate-{source}"


def config_reference(config_path: Path, project_dir: Path) -> str:
    """How deployments name the pipeline configuration: relative to the project, where workers run."""
    return (
        str(config_path.relative_to(project_dir))
        if config_path.is_relative_to(project_dir)
        else str(config_path)
    )


def replicate_description(source: Source, config: PipelineConfig) -> str:
    settings = config.replicate
    return (
        f"Replication of source {source.name} ({source.connector_name}): one long-lived run that "
        "commits each table as its changes come, reports every "
        f"{settings.report_seconds:g}s and checks counts every {settings.reconcile_seconds:g}s. Cancel "
        f"stops it at a commit; the schedule starts it again within {settings.schedule_seconds:g}s "
        "(pause the schedule to keep it stopped). Run with follow: false for one catch-up."
    )


# Prefect's own flow-run heartbeat, for the long-lived replicate runs: the UI and automations see
# that a run is alive (a run whose process died without a word stops sending them).
HEARTBEAT = {"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}}


def _replicate_specs(config: PipelineConfig, config_path: str) -> list[DeploymentSpec]:
    """One ``replicate`` deployment per source: a long-lived run (``follow``), one at a time; the
    schedule (``replicate.schedule_seconds``) starts it again after it ended, and its runs are
    cancelled while one lives. Several workers on the pool then share the sources, and the
    per-table concurrency limits keep every table to one writer even where deployments overlap (a
    table named by two of them, an ad-hoc run)."""
    return [
        DeploymentSpec(
            name=replicate_deployment_name(source.name),
            flow=replicate.name,
            entrypoint=REPLICATE_ENTRYPOINT,
            description=replicate_description(source, config),
            parameters={
                "config_path": config_path,
                "tables": [t.target_name for t in source.tables],
                "follow": True,
            },
            interval_seconds=config.replicate.schedule_seconds,
            concurrency_limit=1,
            job_variables=HEARTBEAT,
        )
        for source in config.sources
    ]


# What a deployment of prefect.yaml may say; anything else would be dropped without a word.
_DECLARABLE = {
    "name",
    "description",
    "entrypoint",
    "parameters",
    "work_pool",
    "schedules",
    "concurrency_limit",
}


def _refuse_undeclarable(deployment: dict[str, Any], where: Path) -> None:
    """Refuse what this specification cannot carry, naming the deployment and the key."""
    name = deployment.get("name", "?")
    problems = [f"key {key!r}" for key in sorted(set(deployment) - _DECLARABLE)]
    if (deployment.get("work_pool") or {}) not in ({}, {"name": WORK_POOL}):
        problems.append(f"work_pool other than {{name: {WORK_POOL}}}")
    schedules = deployment.get("schedules") or []
    if len(schedules) > 1 or any(set(schedule) != {"interval"} for schedule in schedules):
        problems.append("schedules other than one '- interval: <seconds>'")
    limit = deployment.get("concurrency_limit") or {}
    if (
        set(limit) - {"limit", "collision_strategy"}
        or limit.get("collision_strategy", "CANCEL_NEW") != "CANCEL_NEW"
    ):
        problems.append("concurrency_limit other than {limit: N, collision_strategy: CANCEL_NEW}")
    if problems:
        raise ConfigError(
            f"deployment {name} in {where}: Floe cannot register {', '.join(problems)}; declare name, "
            "description, entrypoint, parameters, work_pool, schedules and concurrency_limit only"
        )


def _declared_specs(project_dir: Path, config_path: str) -> list[DeploymentSpec]:
    """The deployments ``prefect.yaml`` declares, their ``config_path`` the one being deployed."""
    declared_in = project_dir / "prefect.yaml"
    if not declared_in.is_file():
        raise ConfigError(f"no prefect.yaml in {project_dir}; run this from the Floe project's folder")
    specs = []
    for deployment in yaml.safe_load(declared_in.read_text())["deployments"]:
        _refuse_undeclarable(deployment, declared_in)
        schedules = deployment.get("schedules") or [{}]
        specs.append(
            DeploymentSpec(
                name=deployment["name"],
                flow=deployment["entrypoint"].rsplit(":", 1)[1],
                entrypoint=deployment["entrypoint"],
                description=" ".join(deployment.get("description", "").split()),
                parameters={**deployment.get("parameters", {}), "config_path": config_path},
                interval_seconds=schedules[0].get("interval"),
                concurrency_limit=(deployment.get("concurrency_limit") or {}).get("limit"),
            )
        )
    return specs


def deployment_specs(config: PipelineConfig, config_path: str, project_dir: Path) -> list[DeploymentSpec]:
    """Every deployment of the pipeline: one replicate per source, then prefect.yaml's."""
    return _replicate_specs(config, config_path) + _declared_specs(project_dir, config_path)


def ensure_work_pool(client: SyncPrefectClient, name: str = WORK_POOL) -> UUID:
    """The process work pool Floe's deployments run on, made unless it exists; its id."""
    try:
        return client.read_work_pool(name).id
    except ObjectNotFound:
        return client.create_work_pool(WorkPoolCreate(name=name, type="process")).id


def put_deployment(client: SyncPrefectClient, spec: DeploymentSpec, path: str, work_pool: str) -> UUID:
    """Create or replace *spec*, run by *work_pool*'s workers from the project folder *path*.

    Prefect's deployment create is an upsert by flow and name; its schedules are replaced with
    the spec's. Parameters are typed by the flow's signature, as ``prefect deploy`` types them.
    """
    flow = FLOWS.get(spec.flow)
    if flow is None:
        raise ConfigError(
            f"deployment {spec.name}: no flow named {spec.flow!r}; Floe's flows: {sorted(FLOWS)}"
        )
    interval = spec.interval_seconds
    schedules = (
        [DeploymentScheduleCreate(schedule=IntervalSchedule(interval=timedelta(seconds=interval)))]
        if interval
        else []
    )
    limit = spec.concurrency_limit
    deployment_id = client.create_deployment(
        flow_id=client.create_flow_from_name(spec.flow),
        name=spec.name,
        version=flow.version,
        description=spec.description or None,
        entrypoint=spec.entrypoint,
        path=path,
        pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": path}}],
        parameters=spec.parameters,
        parameter_openapi_schema=parameter_schema(flow).model_dump_for_openapi(),
        enforce_parameter_schema=True,
        work_pool_name=work_pool,
        schedules=schedules,
        job_variables=spec.job_variables or {},
        concurrency_limit=int(limit) if limit else None,
        concurrency_options=ConcurrencyOptions(collision_strategy="CANCEL_NEW") if limit else None,
    )
    for schedule in client.read_deployment_schedules(deployment_id):
        client.delete_deployment_schedule(deployment_id, schedule.id)
    if schedules:
        client.create_deployment_schedules(deployment_id, schedules)
    return deployment_id


class PrefectUnavailable(FloeError, Transient):
    """The Prefect API did not answer."""


def deploy(config_path: Path, project_dir: Path) -> list[str]:
    """Everything ``floe deploy`` registers; a line per kind, for the person deploying."""
    config = load_config(config_path)
    specs = deployment_specs(config, config_reference(config_path, project_dir), project_dir)
    with get_client(sync_client=True) as client:
        # Asked before anything is registered, so that a wrong address leaves nothing half-made.
        unreachable = client.api_healthcheck()
        if unreachable is not None:
            raise PrefectUnavailable(
                f"the Prefect API at {str(client.api_url).rstrip('/')} did not answer ({unreachable}); set "
                "PREFECT_API_URL (or the active Prefect profile) to the server's API, and check that it runs"
            )
        wanted = automations(config)  # a wrong alerts.notify_block refuses here, before anything is made
        ensure_work_pool(client)
        for spec in specs:
            put_deployment(client, spec, str(project_dir), WORK_POOL)
    alerts = ensure_automations(wanted)
    target = config.alerts.notify_block or "the Prefect UI only (set alerts.notify_block to be notified)"
    replicating = [spec.name for spec in specs if spec.flow == replicate.name]
    others = [spec for spec in specs if spec.flow != replicate.name]
    cadence = {s.name: f"every {s.interval_seconds:g}s" if s.interval_seconds else "ad hoc" for s in others}
    return [
        f"deployments: {', '.join(replicating)} (a long-lived run each, started again within "
        f"{config.replicate.schedule_seconds:g}s if it ends); "
        + ", ".join(f"{name} ({when})" for name, when in cadence.items()),
        f"automations: {', '.join(alerts)}; notifications go to {target}",
    ]
