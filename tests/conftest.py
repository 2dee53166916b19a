"""Shared test setup.

Tests marked ``stack`` run against the real local stack, started once per session on ports of
its own (so a running demo stack is left alone) and stopped at the end. Prefect reads its
settings at import, so the environment is set when pytest starts, before any test module
imports a flow, and restored (and the state folder removed) when it ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest
import yaml
from pyiceberg.catalog.sql import SqlCatalog

_STACK_PORTS = {
    "FLOE_STACK_PG_PORT": os.environ.get("FLOE_TEST_PG_PORT", "56432"),
    "FLOE_STACK_KAFKA_PORT": os.environ.get("FLOE_TEST_KAFKA_PORT", "29092"),
    "FLOE_STACK_CONNECT_PORT": os.environ.get("FLOE_TEST_CONNECT_PORT", "28083"),
    "FLOE_STACK_PREFECT_PORT": os.environ.get("FLOE_TEST_PREFECT_PORT", "24200"),
    "FLOE_STACK_S3_PORT": os.environ.get("FLOE_TEST_S3_PORT", "26333"),
    "FLOE_STACK_ICEBERG_PORT": os.environ.get("FLOE_TEST_ICEBERG_PORT", "26181"),
    "FLOE_STACK_OBJECT_STORE_PORT_BASE": os.environ.get("FLOE_TEST_OBJECT_STORE_PORT_BASE", "26900"),
    "FLOE_STACK_MONGO_PORT": os.environ.get("FLOE_TEST_MONGO_PORT", "27117"),
}
_saved_env: dict[str, str | None] = {}


def pytest_configure(config: pytest.Config) -> None:
    """Point the stack and Prefect at a state folder of this run, before test modules import
    Prefect (it reads its settings at import); pytest_unconfigure puts everything back."""
    state = Path(tempfile.mkdtemp(prefix="floe-test-stack-"))
    state.chmod(0o755)  # the postgres user runs the test cluster in there
    env = {
        **_STACK_PORTS,
        "FLOE_STACK_MONGODB": "true",
        # One run per worker: runs started together must go to both workers.
        "FLOE_STACK_WORKER_LIMIT": "1",
        "FLOE_STACK_DIR": str(state),
        "PREFECT_API_URL": f"http://127.0.0.1:{_STACK_PORTS['FLOE_STACK_PREFECT_PORT']}/api",
        "PREFECT_HOME": str(state / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "floe",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    }
    for key, value in env.items():
        _saved_env[key] = os.environ.get(key)
        os.environ[key] = value


def pytest_unconfigure(config: pytest.Config) -> None:
    state = os.environ.get("FLOE_STACK_DIR")
    for key, value in _saved_env.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value
    if state:
        shutil.rmtree(state, ignore_errors=True)


PROJECT_DIR = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that restart the broker run after the others, and tests that stop the stack last."""

    def rank(item: pytest.Item) -> int:
        return (
            2
            if item.get_closest_marker("stops_stack")
            else 1
            if item.get_closest_marker("restarts_broker")
            else 0
        )

    items.sort(key=rank)


@pytest.fixture
def catalog(tmp_path: Path) -> SqlCatalog:
    """A real pyiceberg SQL catalog (SQLite) with the namespace ``ns``."""
    catalog = SqlCatalog("test", uri=f"sqlite:///{tmp_path}/catalog.db", warehouse=(tmp_path / "wh").as_uri())
    catalog.create_namespace("ns")
    return catalog


@pytest.fixture
def shop_config(tmp_path: Path):
    """Writes the config of source ``shop`` with table ``public.items`` under a policy; no services."""

    def write(policy: str) -> Path:
        document = {
            "sources": [
                {
                    "name": "shop",
                    "database": "shop",
                    "user": "floe",
                    "password": "unused",
                    "tables": [{"name": "public.items", "on_incompatible_change": policy}],
                }
            ],
            "kafka": {"bootstrap_servers": "127.0.0.1:9"},
            "connect": {"url": "http://127.0.0.1:9"},
            "iceberg": {
                "catalog_uri": f"sqlite:///{tmp_path}/catalog.db",
                "warehouse": "wh",
                "namespace": "ns",
            },
        }
        path = tmp_path / "floe.yaml"
        path.write_text(yaml.safe_dump(document))
        return path

    return write
