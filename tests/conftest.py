"""Shared test setup.

Tests marked ``stack`` run against the real local stack, started once per session on ports of
its own (so a running demo stack is left alone) and stopped at the end. Prefect reads its
settings at import, so the environment is set here, before any test module imports a flow.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml
from pyiceberg.catalog.sql import SqlCatalog

_STATE = Path(tempfile.mkdtemp(prefix="floe-test-stack-"))
os.chmod(_STATE, 0o755)
TEST_STACK_ENV = {
    "FLOE_STACK_DIR": str(_STATE),
    "FLOE_STACK_PG_PORT": os.environ.get("FLOE_TEST_PG_PORT", "56432"),
    "FLOE_STACK_KAFKA_PORT": os.environ.get("FLOE_TEST_KAFKA_PORT", "29092"),
    "FLOE_STACK_CONNECT_PORT": os.environ.get("FLOE_TEST_CONNECT_PORT", "28083"),
    "FLOE_STACK_PREFECT_PORT": os.environ.get("FLOE_TEST_PREFECT_PORT", "24200"),
}
os.environ.update(TEST_STACK_ENV)
os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{TEST_STACK_ENV['FLOE_STACK_PREFECT_PORT']}/api"
os.environ["PREFECT_HOME"] = str(_STATE / "prefect")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["PREFECT_LOGGING_EXTRA_LOGGERS"] = "floe"
os.environ["PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW"] = "ignore"

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
