"""The deployments of prefect.yaml, registered and run by the stack's process worker."""

from __future__ import annotations

import asyncio

import pytest
from prefect.client.orchestration import get_client
from prefect.deployments import run_deployment

from cdc.deploy import resume_source
from floe.config import load_config
from floe_stack.stack import LocalStack
from flows.deployments import deploy_all
from tests.conftest import PROJECT_DIR

pytestmark = pytest.mark.stack


async def _pause_schedules() -> list[str]:
    """Keep the interval schedule of the demo pipeline from firing inside the test stack."""
    async with get_client() as client:
        deployments = await client.read_deployments()
        for deployment in deployments:
            await client.pause_deployment(deployment.id)
        return sorted(f"{d.name}:{d.work_pool_name}" for d in deployments)


def test_deployments_register_and_the_worker_runs_them(stack: LocalStack, config_path):
    deploy_all(PROJECT_DIR)
    assert asyncio.run(_pause_schedules()) == [
        "maintain:floe",
        "pause:floe",
        "reconcile:floe",
        "replicate:floe",
        "resume:floe",
    ]
    tables = {"config_path": str(config_path), "tables": ["orders"]}
    source = {"config_path": str(config_path), "source": "e2e"}
    try:
        for deployment, parameters in (
            ("reconcile/reconcile", tables),
            ("maintain/maintain", tables),
            ("pause/pause", source),
            ("resume/resume", source),
        ):
            flow_run = run_deployment(deployment, parameters=parameters, timeout=180)
            assert flow_run.state is not None and flow_run.state.is_completed(), (deployment, flow_run.state)
    finally:
        resume_source(load_config(config_path), "e2e")  # never leave the session's source paused
