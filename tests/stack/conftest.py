"""The session's real local stack and a replicated test database on it."""

from __future__ import annotations

from pathlib import Path

import pytest

from floe_cdc.core.config import PipelineConfig, load_config
from floe_cdc.stack.demo.run import seed
from floe_cdc.stack.settings import StackSettings
from floe_cdc.stack.stack import LocalStack
from tests.conftest import PROJECT_DIR
from tests.stack.pipeline import start_capture, write_config

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
        local.down()


@pytest.fixture(scope="session")
def config_path(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    stack.postgres.ensure_database(DATABASE)
    seed(stack, DATABASE)
    path = write_config(stack, tmp_path_factory.mktemp("pipeline"), "e2e", DATABASE, TABLES)
    start_capture(path)
    return path


@pytest.fixture(scope="session")
def config(config_path: Path) -> PipelineConfig:
    return load_config(config_path)
