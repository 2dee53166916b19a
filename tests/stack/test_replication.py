"""End to end on the real stack: PostgreSQL -> Debezium -> Kafka -> Prefect flow -> Iceberg -> Soda."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowFilter,
    FlowFilterName,
    FlowRunFilter,
    FlowRunFilterDeploymentId,
)
from prefect.client.schemas.sorting import ArtifactSort, FlowRunSort
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter
from pyiceberg.expressions import EqualTo
from typer.testing import CliRunner

from floe_cdc.capture.connect_client import ConnectClient
from floe_cdc.cli.main import app
from floe_cdc.core.errors import ReconciliationFailed
from floe_cdc.flows.reconcile import reconcile
from floe_cdc.flows.replicate import replicate
from floe_cdc.lake.catalog import open_catalog
from tests.lineage_events import valid
from tests.stack.conftest import DATABASE
from tests.stack.pipeline import assert_tables_equal, catch_up, run_sql

pytestmark = pytest.mark.stack


LIVE_CHANGES = [
    # one row updated many times, each in its own transaction
    *[f"UPDATE customers SET loyalty_points = {n}, full_name = 'Round {n}' WHERE id = 5" for n in range(40)],
    # inserted and deleted before the next cycle
    "INSERT INTO customers (id, email, created_at) VALUES (5001, 'gone@example.com', now())",
    "DELETE FROM customers WHERE id = 5001",
    # every type set to NULL, then to edge values
    "UPDATE customers SET full_name = NULL, birth_date = NULL, loyalty_points = NULL, external_id = NULL, "
    "profile = NULL, tags = NULL WHERE id = 6",
    'UPDATE customers SET tags = ARRAY[]::text[], profile = \'{"nested": {"a": [1, 2, null]}, "ü": "ß"}\', '
    "birth_date = '1900-02-28', created_at = '1969-12-31 23:59:59.999999+00' WHERE id = 7",
    "INSERT INTO products (id, name, price, weight_kg, volume_l, thumbnail, opens_at, listed_at, attributes, "
    "ratings, stock) VALUES (1001, 'Édition ☃', -9999999999.99, -0.5, 1e300, ''::bytea, '23:59:59.999999', "
    "'1970-01-01 00:00:00', '[1, \"two\"]', ARRAY[NULL, 3]::int[], -32768)",
    "INSERT INTO products (id, name, price) VALUES (1002, '', 9999999999.99)",
    "UPDATE products SET price = price + 0.01, ratings = array_append(ratings, 5), thumbnail = '\\xdeadbeef' "
    "WHERE id % 10 = 0",
    "DELETE FROM order_lines WHERE order_id BETWEEN 100 AND 150",
    "DELETE FROM orders WHERE id BETWEEN 100 AND 150",
    "UPDATE orders SET status = 'cancelled', note = NULL WHERE id BETWEEN 200 AND 260",
    "UPDATE order_lines SET quantity = quantity + 1 WHERE order_id = 300",
    "INSERT INTO orders (id, customer_id, status, ordered_at) SELECT 10000 + g, g, 'new', now() "
    "FROM generate_series(1, 100) g",
]


def test_snapshot_replicates_every_table_value_by_value(stack, config_path, config):
    catch_up(config_path)
    assert_tables_equal(stack, config, DATABASE)


def test_live_inserts_updates_deletes_end_equal_to_source(stack, config_path, config):
    run_sql(stack, DATABASE, LIVE_CHANGES)
    time.sleep(3)  # let Debezium publish, so that the repeated updates land in one batch
    by_table = catch_up(config_path)
    assert by_table["customers"]["events"] >= 40
    assert by_table["orders"]["deleted"] == 51
    assert_tables_equal(stack, config, DATABASE)


def test_reconciliation_fails_with_both_counts_after_a_row_vanishes(config_path, config):
    results = {row["table"]: row for row in reconcile(config_path=str(config_path))}
    assert all(row["passed"] for row in results.values()), results
    products = open_catalog(config.iceberg).load_table(("e2e", "products"))
    products.delete(EqualTo("id", 3))  # behind Floe's back
    with pytest.raises(ReconciliationFailed, match="failing: products") as failure:
        reconcile(config_path=str(config_path), tables=["products"])
    results = {row["table"]: row for row in failure.value.rows}
    assert list(results) == ["products"]
    failed = results["products"]
    assert failed["passed"] is False
    assert failed["source_count"] == failed["iceberg_count"] + 1


def test_a_failing_user_sodacl_check_fails_the_reconciliation_and_raises_its_alert(config_path, tmp_path):
    """The user's own checks (checks.path) run with the reconciliation against the Iceberg table;
    one fails: the run fails, its rows and summary show each check, and the alert event that the
    reconciliation automation notifies of names the check (tests/stack/test_deployments.py shows
    that event reaching people)."""
    catch_up(config_path, tables=["customers"])  # the table exists whichever tests ran before
    checks = tmp_path / "checks"
    checks.mkdir()
    (checks / "customers.yml").write_text(
        "checks for customers:\n"
        "  - row_count > 0\n"
        "  - row_count < 1:\n"
        "      name: the table is empty\n"
        "  - missing_count(email) = 0\n"
    )
    document = yaml.safe_load(config_path.read_text())
    document["checks"] = {"path": str(checks)}
    path = tmp_path / "floe.yaml"
    path.write_text(yaml.safe_dump(document))
    state = reconcile(config_path=str(path), tables=["customers"], return_state=True)
    assert state.is_failed(), state
    with pytest.raises(ReconciliationFailed, match="failing: customers") as failure:
        state.result()
    [row] = failure.value.rows
    assert row["passed"] is True, row  # the counts agree: what failed is the user's check
    outcomes = {check["name"]: check["outcome"] for check in row["checks"]}
    assert outcomes == {
        "row_count > 0": "pass",
        "the table is empty": "fail",
        "missing_count(email) = 0": "pass",
    }
    run = state.state_details.flow_run_id
    query = EventFilter(
        event=EventNameFilter(name=["floe.reconciliation.failed"]),
        related=EventRelatedFilter(id=[f"prefect.flow-run.{run}"]),
    )
    deadline = time.monotonic() + 60
    with get_client(sync_client=True) as client:
        while not (events := client.read_events(query, limit=10).events) and time.monotonic() < deadline:
            time.sleep(1)
    [event] = events
    assert event.resource.name == "e2e.customers"
    assert "failed 1 of its SodaCL checks: 'the table is empty' fail (measured" in event.payload["message"]


def test_cycle_publishes_a_table_artifact(config_path):
    replicate(config_path=str(config_path))
    artifact = asyncio.run(_latest_artifact("floe-replicate"))
    assert {row["table"] for row in json.loads(artifact.data)} == {
        "customers",
        "products",
        "orders",
        "order_lines",
    }
    assert "change events merged" in artifact.description


async def _latest_artifact(key: str):
    async with get_client() as client:
        found = await client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return found[0]


def test_connectors_cli_shows_running_connector(config_path):
    result = CliRunner().invoke(app, ["connectors", "status", "--config", str(config_path)])
    assert result.exit_code == 0, result.output
    assert "floe-e2e: RUNNING (task 0 RUNNING)" in result.output


def test_connector_lifecycle_and_connect_errors(stack, config):
    name = config.sources[0].connector_name
    with ConnectClient(stack.settings.connect_url) as client:
        client.pause(name)
        deadline = time.monotonic() + 30
        while client.status(name)["connector"]["state"] != "PAUSED" and time.monotonic() < deadline:
            time.sleep(0.5)
        assert client.status(name)["connector"]["state"] == "PAUSED"
        client.resume(name)
        assert client.wait_running(name)["connector"]["state"] == "RUNNING"
        client.restart(name)
        assert client.wait_running(name)["connector"]["state"] == "RUNNING"
        errors = client.validate(
            "io.debezium.connector.postgresql.PostgresConnector",
            {
                "name": "probe",
                "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
                "snapshot.mode": "bogus",
                "topic.prefix": "probe",
                "database.hostname": "127.0.0.1",
            },
        )
        assert "snapshot.mode" in errors


def test_secrets_never_reach_logs_or_artifacts(stack, config_path):
    replicate(config_path=str(config_path))
    password = stack.settings.pg_password.get_secret_value()
    logs, artifacts = asyncio.run(_everything_prefect_kept())
    assert logs and artifacts
    assert not [line for line in logs if password in line]
    assert not [data for data in artifacts if password in data]
    for component in ("connect", "prefect-server", "kafka"):
        assert password not in (stack.settings.logs_dir / f"{component}.log").read_text(errors="replace")
    # Kafka Connect holds a config-provider reference, in the connector's and its tasks' configs.
    with httpx.Client(base_url=stack.settings.connect_url) as connect:
        stored = connect.get("/connectors/floe-e2e/config").json()
        tasks = connect.get("/connectors/floe-e2e/tasks").text
    assert stored["database.password"].startswith("${file:") and password not in tasks


async def _everything_prefect_kept() -> tuple[list[str], list[str]]:
    async with get_client() as client:
        logs = await client.read_logs(limit=200)
        artifacts = await client.read_artifacts(limit=50)
    return [entry.message for entry in logs], [json.dumps(a.data) + (a.description or "") for a in artifacts]


def _follow(
    config_path: Path, signals: int, sig: signal.Signals = signal.SIGTERM, until: str = " merged "
) -> tuple[int, str]:
    """``floe replicate --follow``, sent *signals* times *sig* the moment it prints a line that
    *until* (a regular expression) matches; by default, once it has committed its first changes
    (the stream reading on). Its exit code and output."""
    floe = Path(sys.executable).parent / "floe"
    run = subprocess.Popen(
        [str(floe), "replicate", "--follow", "--config", str(config_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    committed = threading.Event()

    def read() -> None:
        for line in run.stdout:
            lines.append(line)
            if re.search(until, line):
                committed.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    committed.wait(timeout=120)
    for _ in range(signals):
        run.send_signal(sig)
        time.sleep(0.2)
    try:
        run.wait(timeout=90)
    except subprocess.TimeoutExpired:
        run.kill()
        raise AssertionError(f"still running 90 s after {sig.name}:\n{''.join(lines)[-4000:]}") from None
    reader.join(timeout=10)
    return run.returncode, "".join(lines)


async def _last_replicate_run_state() -> str:
    """The state of the latest replicate run the CLI started (deployments' scheduled runs have none)."""
    async with get_client() as client:
        [run] = await client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["replicate"])),
            flow_run_filter=FlowRunFilter(deployment_id=FlowRunFilterDeploymentId(is_null_=True)),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
    return run.state.type.value


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_stop_signal_in_follow_commits_what_it_read_then_stops(
    stack, config_path, config, sig: signal.Signals
):
    run_sql(stack, DATABASE, [f"UPDATE customers SET loyalty_points = {sig.value} WHERE id % 4 = 0"])
    code, output = _follow(config_path, signals=1, sig=sig)
    assert code == 0, output[-3000:]
    assert "table        events" in output, output[-3000:]
    assert output.rstrip().endswith("stopped") and "Traceback" not in output, output[-3000:]
    assert asyncio.run(_last_replicate_run_state()) == "COMPLETED"
    catch_up(config_path, tables=["customers"])
    assert_tables_equal(stack, config, DATABASE, only=["customers"])


def test_a_second_sigterm_stops_at_once_and_loses_nothing(stack, config_path, config):
    run_sql(stack, DATABASE, ["UPDATE customers SET full_name = full_name || ' (stopped)' WHERE id % 3 = 0"])
    code, output = _follow(config_path, signals=2)
    assert code == 130, output[-3000:]
    assert "Traceback" not in output, output[-3000:]
    assert output.rstrip().endswith("interrupted; the next run goes on from the last commit"), output[-3000:]
    # (products lost a row behind Floe's back in an earlier test: it does not reconcile any more)
    catch_up(config_path, tables=["customers"])
    assert_tables_equal(stack, config, DATABASE, only=["customers"])


def test_a_following_run_checks_counts_at_a_source_position_while_the_source_writes(
    stack, config_path, config, tmp_path
):
    """Counts taken now would differ while the source writes; the following run's count check
    compares them at one source position, beside the stream, and passes."""
    document = yaml.safe_load(config_path.read_text())
    document["replicate"].update({"report_seconds": 2, "reconcile_seconds": 1})
    lineage = tmp_path / "lineage.jsonl"
    document["lineage"] = {"file": str(lineage)}
    checking = tmp_path / "floe.yaml"
    checking.write_text(yaml.safe_dump(document))
    writing = threading.Event()

    def write() -> None:
        while not writing.wait(0.05):
            run_sql(
                stack, DATABASE, ["UPDATE customers SET loyalty_points = loyalty_points + 1 WHERE id % 5 = 0"]
            )

    writer = threading.Thread(target=write)
    writer.start()
    try:
        # The report's rows show "not run" until a check has ended.
        code, output = _follow(checking, signals=1, sig=signal.SIGINT, until=r"^customers .* pass ")
    finally:
        writing.set()
        writer.join()
    assert code == 0, output[-3000:]
    assert re.search(r"(?m)^customers .* pass ", output), output[-3000:]
    # One valid lineage event per commit the run made, in order; the count check's outcome rides
    # on the events after it.
    events = [valid(json.loads(line)) for line in lineage.read_text().splitlines()]
    customers = [e for e in events if e["job"]["name"] == "replicate.customers"]
    assert {e["inputs"][0]["name"] for e in customers} == {f"{DATABASE}.public.customers"}
    facets = [e["run"]["facets"] for e in customers]
    table = open_catalog(config.iceberg).load_table(f"{config.iceberg.namespace}.customers")
    first = table.snapshot_by_id(facets[0]["floe_commit"]["snapshotId"])
    committed = [s.snapshot_id for s in table.snapshots() if s.sequence_number >= first.sequence_number]
    assert [f["floe_commit"]["snapshotId"] for f in facets] == committed
    outcomes = [f["floe_reconciliation"]["outcome"] for f in facets]
    assert outcomes[0] == "unknown" and set(outcomes) <= {"unknown", "not checked", "pass"}, outcomes
