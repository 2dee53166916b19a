"""Shared test setup.

Tests marked ``stack`` run against the real local stack, started once per session on ports of
its own (so a running demo stack is left alone) and stopped at the end. ``make test`` runs three
pytest-xdist workers, each running one group of the stack tests (``STACK_GROUPS``) on a stack
of its own, then the modules that need no service as they run out of work. Prefect reads its
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
from xdist.remote import Producer
from xdist.scheduler import LoadScopeScheduling

# Each xdist worker's stack sits this many ports above the previous worker's.
_PORTS_PER_WORKER = 50
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
# The stack tests' files in three groups of about equal time, each run in order by one xdist worker
# on a stack of its own (see the durations make test prints); a file not named here runs in the
# first group. The stack tests spend much of their time waiting on services, so three stacks on
# two cores finish sooner than two.
STACK_GROUPS = (
    {
        "test_terraform_local.py",
        "test_initial_load.py",
        "test_crash_recovery.py",
        "test_soft_deletes.py",
        "test_mongodb.py",
        "test_mongodb_live.py",
    },
    {
        "test_replication.py",
        "test_large_rows_and_failed_tasks.py",
        "test_object_storage.py",
        "test_broker_restart.py",
        "test_exact_reconciliation.py",
        "test_replication_stream.py",
        "test_identifiers.py",
        "test_pause.py",
        "test_masking.py",
    },
)
# The modules that need no service and take longest, handed out first so that none of them is
# the last thing a worker runs.
SLOW_MODULES = ("test_packaging.py", "test_terraform.py", "test_interop.py")
_saved_env: dict[str, str | None] = {}


def _point_at_this_runs_stack() -> None:
    """Point the stack and Prefect at a state folder of this run; pytest_unconfigure puts
    everything back.

    Called when this conftest is imported: pytest imports the conftests of the paths on its
    command line (``tests/stack/conftest.py`` imports Floe, which reads Prefect's settings)
    before it calls ``pytest_configure``, and this one before them.
    """
    state = Path(tempfile.mkdtemp(prefix="floe-test-stack-"))
    state.chmod(0o755)  # the postgres user runs the test cluster in there
    offset = _PORTS_PER_WORKER * int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    ports = {key: str(int(port) + offset) for key, port in _STACK_PORTS.items()}
    env = {
        **ports,
        "FLOE_STACK_MONGODB": "true",
        # One run per worker: runs started together must go to both workers.
        "FLOE_STACK_WORKER_LIMIT": "1",
        "FLOE_STACK_DIR": str(state),
        "PREFECT_API_URL": f"http://127.0.0.1:{ports['FLOE_STACK_PREFECT_PORT']}/api",
        "PREFECT_HOME": str(state / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_EXTRA_LOGGERS": "floe",
        "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    }
    for key, value in env.items():
        _saved_env[key] = os.environ.get(key)
        os.environ[key] = value


_point_at_this_runs_stack()


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


def _module(nodeid: str) -> str:
    """The path of the test module a test's node id names."""
    return nodeid.split("::", 1)[0]


def _stack_group(nodeid: str) -> int | None:
    """The stack group (0, 1, 2) of a stack test; None for a test that needs no service."""
    path = _module(nodeid)
    if not path.startswith("tests/stack/"):
        return None
    name = Path(path).name
    return next((n + 1 for n, files in enumerate(STACK_GROUPS) if name in files), 0)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The stack groups first, in order (the scheduler hands them out first: they take longest),
    then the tests that need no service, the slowest modules first; in a group, tests that
    restart the broker after the others and tests that stop the stack last."""

    def rank(item: pytest.Item) -> tuple[int, int]:
        group = _stack_group(item.nodeid)
        if group is None:
            name = Path(_module(item.nodeid)).name
            slow = SLOW_MODULES.index(name) if name in SLOW_MODULES else len(SLOW_MODULES)
            return (len(STACK_GROUPS) + 1, slow)
        if item.get_closest_marker("stops_stack"):
            return (group, 2)
        return (group, 1 if item.get_closest_marker("restarts_broker") else 0)

    items.sort(key=rank)


class StackScheduling(LoadScopeScheduling):
    """``pytest -n``: the tests of each stack group are one unit of work, run in collection order
    by one worker on its own stack; every other test module is a unit of its own, handed to the
    worker that runs out of work first. (xdist's ``loadgroup`` would say the same with markers,
    but under pytest 9 it no longer groups anything.)"""

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False  # the units in collection order: stack groups first

    def _split_scope(self, nodeid: str) -> str:
        group = _stack_group(nodeid)
        return _module(nodeid) if group is None else f"stack-{group + 1}"


def pytest_xdist_make_scheduler(config: pytest.Config, log: Producer) -> StackScheduling:
    return StackScheduling(config, log)


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
