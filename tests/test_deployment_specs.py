"""The one deployment specification: prefect.yaml's deployments and one replicate per source."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from floe_cdc.core.config import PipelineConfig
from floe_cdc.core.errors import ConfigError
from floe_cdc.flows.deployments import deployment_specs
from tests.conftest import PROJECT_DIR

CONFIG = PipelineConfig.model_validate(
    {
        "sources": [{"name": "shop", "database": "db", "user": "u", "password": "p", "tables": ["public.a"]}],
        "kafka": {"bootstrap_servers": "127.0.0.1:9092"},
        "connect": {"url": "http://127.0.0.1:8083"},
        "iceberg": {"catalog_uri": "sqlite:///catalog.db", "warehouse": "wh", "namespace": "lake"},
    }
)


def test_the_project_declares_what_floe_can_register():
    specs = {spec.name: spec for spec in deployment_specs(CONFIG, "floe.yaml", PROJECT_DIR)}
    replicate = specs["replicate-shop"]
    assert replicate.parameters == {"config_path": "floe.yaml", "tables": ["a"], "follow": True}
    assert (replicate.interval_seconds, replicate.concurrency_limit) == (60, 1)  # restarts; one at a time
    assert replicate.job_variables == {"env": {"PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30"}}
    assert specs["maintain"].interval_seconds == 3600 and specs["maintain"].concurrency_limit == 1
    assert {spec.parameters["config_path"] for spec in specs.values()} == {"floe.yaml"}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"schedules": [{"cron": "0 * * * *"}]}, "schedules other than one"),
        ({"tags": ["x"]}, "key 'tags'"),
        ({"work_pool": {"name": "other"}}, "work_pool other than"),
        (
            {"concurrency_limit": {"limit": 1, "collision_strategy": "ENQUEUE"}},
            "concurrency_limit other than",
        ),
    ],
)
def test_what_the_specification_cannot_carry_is_refused(tmp_path: Path, change: dict, named: str):
    declared = yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text())
    declared["deployments"][0].update(change)
    (tmp_path / "prefect.yaml").write_text(yaml.safe_dump(declared))
    with pytest.raises(ConfigError, match=rf"deployment reconcile in .*prefect.yaml: .*{named}"):
        deployment_specs(CONFIG, "floe.yaml", tmp_path)


def test_deploy_to_a_prefect_api_that_does_not_answer_is_one_error_line():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing answers there
    env = {**os.environ, "PREFECT_API_URL": f"http://127.0.0.1:{port}/api"}
    floe = Path(sys.executable).parent / "floe"
    command = [str(floe), "deploy", "--config", "floe.yaml"]
    result = subprocess.run(command, cwd=PROJECT_DIR, env=env, capture_output=True, text=True)
    lines = (result.stdout + result.stderr).splitlines()
    assert result.returncode == 1 and len(lines) == 1, lines
    assert lines[0].startswith(f"error: the Prefect API at http://127.0.0.1:{port}/api did not answer")
    assert "set PREFECT_API_URL" in lines[0]
