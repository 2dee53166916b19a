"""The session's real local stack and a replicated test database on it."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cdc.deploy import apply_connectors
from floe.config import PipelineConfig, load_config
from floe.demo.run import seed
from localstack.settings import StackSettings
from localstack.stack import LocalStack
from tests.conftest import PROJECT_DIR

DATABASE = "floe_e2e"
TABLES = ["public.customers", "public.products", "public.orders", "public.order_lines"]


@pytest.fixture(scope="session")
def stack() -> LocalStack:
    local = LocalStack(StackSettings(), PROJECT_DIR)
    try:
        local.up()
    except Exception:
        local.down()
        raise
    try:
        yield local
    finally:
        _stop(local)


def _stop(local: LocalStack) -> None:
    # Send the flow runs' buffered logs while the Prefect server is still there to take them.
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()
    local.down()


@pytest.fixture(scope="session")
def config_path(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = stack.settings
    stack.postgres.ensure_database(DATABASE)
    seed(stack, DATABASE)
    password = settings.pg_password.get_secret_value()
    document = {
        "sources": [
            {
                "name": "e2e",
                "port": settings.pg_port,
                "database": DATABASE,
                "user": settings.pg_user,
                "password": password,
                "tables": TABLES,
            }
        ],
        "kafka": {"bootstrap_servers": settings.kafka_bootstrap},
        "connect": {"url": settings.connect_url},
        "iceberg": {
            "catalog_uri": stack.catalog_uri(),
            "warehouse": stack.warehouse.as_uri(),
            "namespace": "e2e",
        },
        "replicate": {"idle_seconds": 2, "max_seconds": 60},
    }
    path = tmp_path_factory.mktemp("pipeline") / "floe.yaml"
    path.write_text(yaml.safe_dump(document))
    apply_connectors(load_config(path))
    return path


@pytest.fixture(scope="session")
def config(config_path: Path) -> PipelineConfig:
    return load_config(config_path)
