"""A command pointed at a component that does not answer, or refused by the source, fails whole:
exit 1, one ``error:`` line that names the setting and the fix, no traceback and no library
noise, and nothing new anywhere (publications, slots, topics, connectors, catalog namespaces)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka.admin import AdminClient
from prefect.client.orchestration import get_client

from floe_cdc.capture.connect_client import ConnectClient
from floe_cdc.core.config import load_config
from floe_cdc.lake.catalog import open_catalog
from floe_cdc.stack.stack import LocalStack
from tests.conftest import PROJECT_DIR
from tests.stack.pipeline import ITEMS, replicated_database, run_sql, write_config

pytestmark = pytest.mark.stack

DATABASE = "floe_half_made"


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed once the block ends: nothing answers there


def floe(*args: str, cwd: Path) -> tuple[int, list[str]]:
    """The ``floe`` command as a user runs it: its exit code and every line it printed."""
    command = [str(Path(sys.executable).parent / "floe"), *args]
    result = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=os.environ, timeout=300)
    return result.returncode, [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def _assert_one_error_line(lines: list[str], named: str) -> None:
    """The last line is the one ``error:`` line and names *named*; before it at most Floe's own
    progress lines, none of Prefect's account of the failure (retries, failed states, tracebacks,
    which its UI keeps) and none of librdkafka's."""
    errors = [line for line in lines if line.startswith("error: ")]
    assert errors == lines[-1:] and named in errors[0], lines
    noise = (
        "Traceback",
        "failed with",
        "Failed(",
        "rdkafka",
        "Encountered exception",
        "WARNING",
        "ERROR",
        "Still processing",
    )
    assert not [line for line in lines if any(word in line for word in noise)], lines


def _world(stack: LocalStack, config_path: Path) -> dict[str, Any]:
    """What a failed command must not have added to: this source's publications, slots, topics,
    connectors, catalog namespaces and tables, and Prefect deployments (other tests' connectors
    keep making topics meanwhile)."""

    def ours(names: list[Any]) -> list[str]:
        return sorted(str(name) for name in names if "half_made" in str(name) or "half-made" in str(name))

    config = load_config(config_path)
    with stack.postgres.connect(config.sources[0].database) as conn, conn.cursor() as cur:
        cur.execute("SELECT pubname FROM pg_publication")
        publications = [row[0] for row in cur.fetchall()]
        cur.execute("SELECT slot_name FROM pg_replication_slots")
        slots = [row[0] for row in cur.fetchall()]
    admin = AdminClient({"bootstrap.servers": stack.settings.kafka_bootstrap, "log_level": 0})
    with ConnectClient(stack.settings.connect_url) as client:
        connectors = client.connectors()
    catalog = open_catalog(config.iceberg)
    namespaces = [namespace for namespace in catalog.list_namespaces() if "half_made" in str(namespace)]
    with get_client(sync_client=True) as prefect:
        deployments = [deployment.name for deployment in prefect.read_deployments()]
    return {
        "publications": ours(publications),
        "slots": ours(slots),
        "topics": ours(list(admin.list_topics(timeout=10).topics)),
        "connectors": ours(connectors),
        "namespaces": sorted(namespaces),
        "tables": sorted(table for namespace in namespaces for table in catalog.list_tables(namespace)),
        "deployments": ours(deployments),
    }


@pytest.fixture(scope="module")
def source(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database with a plain table and one whose interval column the direct load refuses."""
    stack.postgres.ensure_database(DATABASE)
    run_sql(stack, DATABASE, ITEMS)
    run_sql(
        stack,
        DATABASE,
        [
            "DROP TABLE IF EXISTS spans",
            "CREATE TABLE spans (id int PRIMARY KEY, during interval)",
            "INSERT INTO spans VALUES (1, '2 days')",
        ],
    )
    return write_config(stack, tmp_path_factory.mktemp("half-made"), "half_made", DATABASE, ["public.items"])


def _set(path: Path, change: Callable[[dict[str, Any]], None]) -> Path:
    document = yaml.safe_load(path.read_text())
    change(document)
    changed = path.with_name(f"changed-{path.name}")
    changed.write_text(yaml.safe_dump(document))
    return changed


def _connect_closed(doc: dict[str, Any]) -> None:
    doc["connect"]["url"] = f"http://127.0.0.1:{_closed_port()}"


def _broker_closed(doc: dict[str, Any]) -> None:
    doc["kafka"]["bootstrap_servers"] = f"127.0.0.1:{_closed_port()}"


def _catalog_closed(doc: dict[str, Any]) -> None:
    doc["sources"][0]["initial_load"] = "direct"
    doc["iceberg"]["catalog"]["uri"] = f"http://127.0.0.1:{_closed_port()}"


def _object_store_closed(doc: dict[str, Any]) -> None:
    doc["sources"][0]["initial_load"] = "direct"
    doc["iceberg"]["catalog"]["s3.endpoint"] = f"http://127.0.0.1:{_closed_port()}"


def _source_closed(doc: dict[str, Any]) -> None:
    doc["sources"][0]["port"] = _closed_port()


def _interval_refused(doc: dict[str, Any]) -> None:
    doc["sources"][0]["initial_load"] = "direct"
    doc["sources"][0]["tables"] = ["public.items", "public.spans"]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (_connect_closed, "check connect.url"),
        (_broker_closed, "check kafka.bootstrap_servers"),
        (_catalog_closed, "check iceberg.catalog"),
        (_object_store_closed, "s3.endpoint"),
        (_source_closed, "check the source's host, port"),
        (_interval_refused, "column during (INTERVAL)"),
    ],
    ids=["connect", "broker", "catalog", "object-store", "source", "direct-load-refused"],
)
def test_connectors_apply_that_fails_leaves_nothing_behind(
    stack: LocalStack, source: Path, change: Callable[[dict[str, Any]], None], named: str
):
    before = _world(stack, source)
    code, lines = floe("connectors", "apply", "--config", str(_set(source, change)), cwd=source.parent)
    assert code == 1, lines
    _assert_one_error_line(lines, named)
    assert _world(stack, source) == before


@pytest.fixture(scope="module")
def replicated(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return replicated_database(stack, tmp_path_factory.mktemp("half-made-replicated"), "floe_half_made_r")


def _catalog_uri_closed(doc: dict[str, Any]) -> None:
    doc["iceberg"]["catalog"]["uri"] = f"http://127.0.0.1:{_closed_port()}"


def _s3_closed(doc: dict[str, Any]) -> None:
    doc["iceberg"]["catalog"]["s3.endpoint"] = f"http://127.0.0.1:{_closed_port()}"


def _connector_missing(doc: dict[str, Any]) -> None:
    doc["sources"][0]["name"] = "ghost"


def _notify_block_missing(doc: dict[str, Any]) -> None:
    doc.setdefault("alerts", {})["notify_block"] = "slack-webhook/half-made-nowhere"


# (command, what is wrong, what its error line names)
_CANNOT_WORK = [
    ("replicate", _s3_closed, "table half_made_r.items: the Iceberg catalog or its object store did not"),
    ("replicate", _broker_closed, "check kafka.bootstrap_servers"),
    ("replicate", _catalog_uri_closed, "check iceberg.catalog"),
    ("replicate", _connector_missing, "connector floe-ghost of source ghost does not exist: run 'floe"),
    ("reconcile", _source_closed, "check the source's host, port"),
    ("reconcile", _catalog_uri_closed, "check iceberg.catalog"),
    ("maintain", _s3_closed, "s3.endpoint"),
    ("maintain", _catalog_uri_closed, "check iceberg.catalog"),
    ("resnapshot", _connect_closed, "check connect.url"),
    ("resnapshot", _broker_closed, "check kafka.bootstrap_servers"),
    ("pause", _connect_closed, "check connect.url"),
    ("deploy", _notify_block_missing, "alerts.notify_block"),
]


@pytest.mark.parametrize(
    ("command", "change", "named"),
    [
        pytest.param(*case, id=f"{case[0]}-{case[1].__name__.strip('_').replace('_', '-')}")
        for case in _CANNOT_WORK
    ],
)
def test_a_command_that_cannot_work_is_one_error_line_exit_1_and_makes_nothing(
    stack: LocalStack, replicated: Path, command: str, change: Callable[[dict[str, Any]], None], named: str
):
    before = _world(stack, replicated)
    changed = _set(replicated, change)
    arguments = {"replicate": ["--once"], "pause": ["--source", "half_made_r"], "resnapshot": ["-t", "items"]}
    arguments = arguments.get(command, [])
    code, lines = floe(command, *arguments, "--config", str(changed), cwd=PROJECT_DIR)
    assert code == 1, lines
    _assert_one_error_line(lines, named)
    assert _world(stack, replicated) == before
