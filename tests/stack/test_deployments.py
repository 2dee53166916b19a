"""Operating Floe from Prefect: the deployments ``floe deploy`` registers, run by the stack's two
process workers through the Prefect API, with their states, artifacts, events, automations and
notifications checked through the API too."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar
from uuid import UUID

import httpx
import pytest
import yaml
from prefect import get_client
from prefect.blocks.notifications import CustomWebhookNotificationBlock
from prefect.client.schemas.filters import (
    FlowRunFilter,
    FlowRunFilterId,
    FlowRunFilterState,
    FlowRunFilterStateType,
    FlowRunFilterTags,
)
from prefect.client.schemas.objects import StateType
from prefect.deployments import run_deployment
from prefect.events.filters import EventFilter, EventNameFilter, EventRelatedFilter, EventResourceFilter
from prefect.states import Cancelled, Cancelling
from pyiceberg.expressions import EqualTo

from floe_cdc.capture.deploy import apply_connectors, resume_source
from floe_cdc.core.config import load_config
from floe_cdc.flows.deployments import deploy
from floe_cdc.flows.replicate import table_lock_names
from floe_cdc.lake.catalog import open_catalog
from floe_cdc.stack.stack import LocalStack
from tests.conftest import PROJECT_DIR
from tests.stack.pipeline import ITEMS, assert_tables_equal, run_sql, write_config

pytestmark = pytest.mark.stack

BLOCK = "floe-test-alerts"
_NOT_FINAL = (StateType.SCHEDULED, StateType.PENDING, StateType.RUNNING, StateType.PAUSED)
AUTOMATIONS = {
    "floe: reconciliation failed",
    "floe: replication lag",
    "floe: table stalled",
    "floe: WAL retained",
    "floe: run failed",
    "floe: replicate stopped",
}


async def _pause_schedules() -> list[str]:
    """Keep the interval schedules from firing inside the test stack: runs are started by hand.
    The scheduler may already have made a run between the deploy and the pause (a replicate run
    follows forever, holding its tables' locks against the session's other tests): those runs
    are cancelled too."""
    async with get_client() as client:
        deployments = await client.read_deployments()
        for deployment in deployments:
            await client.pause_deployment(deployment.id)
        scheduled = FlowRunFilter(
            tags=FlowRunFilterTags(all_=["auto-scheduled"]),
            state=FlowRunFilterState(type=FlowRunFilterStateType(any_=list(_NOT_FINAL))),
        )
        for attempt in range(2):  # again after the scheduler's pass that may have been under way
            if attempt:
                await asyncio.sleep(2)
            for run in await client.read_flow_runs(flow_run_filter=scheduled):
                ended = Cancelling() if run.state_type == StateType.RUNNING else Cancelled()
                await client.set_flow_run_state(run.id, ended, force=True)
        return sorted(d.name for d in deployments)


def test_deployments_register_and_the_worker_runs_them(stack: LocalStack, config_path):
    lines = deploy(config_path, PROJECT_DIR)
    assert "replicate-e2e" in lines[0] and "floe: run failed" in lines[1]
    assert {"connectors", "maintain", "pause", "reconcile", "replicate-e2e", "resnapshot", "resume"} <= set(
        asyncio.run(_pause_schedules())
    )
    tables = {"config_path": str(config_path), "tables": ["orders"]}
    source = {"config_path": str(config_path), "source": "e2e"}
    try:
        for deployment, parameters in (
            ("replicate/replicate-e2e", {"follow": False}),  # one catch-up; the default lives on
            ("connectors/connectors", {"config_path": str(config_path)}),
            ("reconcile/reconcile", tables),
            ("maintain/maintain", tables),
            ("pause/pause", source),
            ("resume/resume", source),
        ):
            flow_run = run_deployment(deployment, parameters=parameters, timeout=180, poll_interval=1)
            assert flow_run.state is not None and flow_run.state.is_completed(), (deployment, flow_run.state)
            if deployment.startswith(("maintain", "connectors")):
                with get_client(sync_client=True) as client:
                    found = client.read_artifacts(
                        flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
                    )
                assert [float(a.data) for a in found if a.type == "progress"] == [100.0]
        unknown = run_deployment(
            "reconcile/reconcile", parameters={**tables, "tables": ["nope"]}, timeout=180, poll_interval=1
        )
        assert unknown.state.is_failed() and "known tables: customers" in unknown.state.message
    finally:
        resume_source(load_config(config_path), "e2e")  # never leave the session's source paused


class _Receiver(BaseHTTPRequestHandler):
    received: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.received.append(self.rfile.read(int(self.headers["Content-Length"])).decode())
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[list[str]]:
    """A notification block posting to a local receiver; the bodies it received."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/"
    CustomWebhookNotificationBlock(
        name="floe", url=url, json_data={"subject": "{{subject}}", "body": "{{body}}"}
    ).save(BLOCK, overwrite=True)
    _Receiver.received = []
    yield _Receiver.received
    server.shutdown()


def _two_sources(stack: LocalStack, directory: Path) -> Path:
    """Two databases, one table each, as two sources of one pipeline with tight alert limits."""
    stack.postgres.ensure_database("floe_scale_a")
    stack.postgres.ensure_database("floe_scale_b")
    run_sql(stack, "floe_scale_a", ITEMS)
    run_sql(stack, "floe_scale_b", [s.replace("items", "stock") for s in ITEMS])
    path = write_config(stack, directory, "scale_a", "floe_scale_a", ["public.items"])
    document = yaml.safe_load(path.read_text())
    second = {
        **document["sources"][0],
        "name": "scale_b",
        "database": "floe_scale_b",
        "tables": ["public.stock"],
    }
    document["sources"].append(second)
    document["alerts"] = {"notify_block": f"custom-webhook/{BLOCK}", "retained_wal_mb": 0.000001}
    document["replicate"]["report_seconds"] = 5  # a long-lived run's report, every 5 s
    path.write_text(yaml.safe_dump(document))
    return path


def _wait_for(runs: list[UUID], timeout: float = 300) -> list:
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            flow_runs = [client.read_flow_run(run) for run in runs]
            if all(run.state and run.state.is_final() for run in flow_runs) or time.monotonic() > deadline:
                return flow_runs
            time.sleep(1)


def _events(name: str, runs: list[UUID], timeout: float = 60) -> list:
    """The events called *name* that relate to one of *runs*, once there are any (a run's events
    reach the server after the run has ended)."""
    query = EventFilter(
        event=EventNameFilter(name=[name]),
        related=EventRelatedFilter(id=[f"prefect.flow-run.{run}" for run in runs]),
    )
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            events = client.read_events(query, limit=50).events
            if events or time.monotonic() > deadline:
                return events
            time.sleep(1)


def _eventually(check: Callable[[], None], timeout: float) -> None:
    """*check* passes within *timeout* seconds (its last AssertionError otherwise)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def _artifact_versions(run: UUID, key: str) -> list:
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run])))
    return [artifact for artifact in found if artifact.key == key]


def _locked_interval(run: UUID, lock: str) -> tuple[float, float]:
    """When *run* held the concurrency limit *lock*: Prefect's acquired and released events."""
    times = []
    for phase in ("acquired", "released"):
        events = [e for e in _events(f"prefect.concurrency-limit.{phase}", [run]) if e.resource.name == lock]
        assert events, f"run {run} has no {phase} event for {lock}"
        times.append(events[0].occurred.timestamp())
    return times[0], times[1]


def _notified(received: list[str], *words: str, timeout: float = 90) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for body in received:
            if all(word in body for word in words):
                return body
        time.sleep(1)
    raise AssertionError(f"no notification with {words}; received {received}")


def test_two_workers_share_the_sources_and_alerts_reach_people(stack: LocalStack, tmp_path, webhook):
    path = _two_sources(stack, tmp_path)
    config = load_config(path)
    apply_connectors(config)  # with its settle: the runs below must find the snapshot in Kafka
    deploy(path, PROJECT_DIR)
    asyncio.run(_pause_schedules())
    with get_client(sync_client=True) as client:
        assert {a.name for a in client.read_automations()} >= AUTOMATIONS

    # Two sources at once: one run on each worker (one run per worker in the test stack). Then,
    # once a's run is done (a deployment runs one at a time), source a's deployment over both
    # tables: it must not write "stock" while source b's run may still hold it.
    once = {"follow": False}
    runs = [run_deployment(f"replicate/replicate-scale_{x}", parameters=once, timeout=0).id for x in "ab"]
    _wait_for(runs[:1])
    both = {"config_path": str(path), "tables": ["items", "stock"], **once}
    runs.append(run_deployment("replicate/replicate-scale_a", parameters=both, timeout=0).id)
    flow_runs = _wait_for(runs)
    assert all(run.state.is_completed() for run in flow_runs), [run.state for run in flow_runs]
    workers = {e.resource.id for e in _events("prefect.worker.submitted-flow-run", runs)}
    assert workers == {"prefect.worker.process.prefect-worker-1", "prefect.worker.process.prefect-worker-2"}
    [stock] = table_lock_names(config.iceberg.namespace, ["stock"])
    b_run, both_run = _locked_interval(runs[1], stock), _locked_interval(runs[2], stock)
    assert b_run[1] <= both_run[0] or both_run[1] <= b_run[0], "two runs wrote table stock at once"
    assert_tables_equal(stack, config, "floe_scale_a", only=["items"])
    assert_tables_equal(stack, config, "floe_scale_b", only=["stock"])
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[runs[0]])))
    by_key = {a.key: a for a in artifacts}
    assert {"floe-replicate", "floe-replicate-summary", "floe-freshness", "floe-freshness-chart"} <= set(
        by_key
    )
    assert "| items | 400 | 0 | 0 |" in by_key["floe-replicate-summary"].data
    assert httpx.get(by_key["floe-freshness-chart"].data).content.startswith(b"\x89PNG")  # presigned S3 URL

    # Alerts: the WAL each slot retains passes the (tiny) limit: an event, then a notification.
    assert {e.resource.name for e in _events("floe.slot.wal-retained", runs)} >= {"scale_a.floe_scale_a"}
    _notified(webhook, "replication slot floe_scale_a", "keep", "floe resume --source scale_a")

    # A row removed behind Floe's back: exact reconciliation fails the run, with its artifact, the
    # event and two notifications (the failed reconciliation, the failed run).
    open_catalog(config.iceberg).load_table(("scale_a", "stock")).delete(EqualTo("id", 3))
    parameters = {"config_path": str(path), "tables": ["stock"], "mode": "exact", "wait_seconds": 60}
    failed = run_deployment("reconcile/reconcile", parameters=parameters, timeout=240, poll_interval=1)
    assert failed.state.is_failed(), failed.state
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[failed.id])))
    summary = next(a for a in artifacts if a.key == "floe-reconcile-summary")
    assert "exact mode" in summary.data and "| stock | FAIL | 400 | 0 | 400 | 399 |" in summary.data
    [event] = _events("floe.reconciliation.failed", [failed.id])
    assert event.resource.name == "scale_a.stock" and event.payload["iceberg_count"] == 399
    _notified(webhook, "scale_a.stock failed exact reconciliation", "floe resnapshot --table stock")
    _notified(webhook, "reconcile", "Failed")

    # Re-snapshot repairs it while source b's deployment runs as deployed: one long-lived run that
    # commits as changes come. Progress reaches 100, the row is back; Cancel stops the run at a commit.
    living = run_deployment("replicate/replicate-scale_b", timeout=0)
    repair = run_deployment(
        "resnapshot/resnapshot",
        parameters={"config_path": str(path), "tables": ["stock"], "wait_seconds": 240},
        timeout=0,
    )
    repaired = _wait_for([repair.id])[0]
    assert repaired.state.is_completed(), repaired.state
    run_sql(stack, "floe_scale_b", ["INSERT INTO stock (id, name, price) VALUES (1001, 'late', 1)"])
    _eventually(lambda: assert_tables_equal(stack, config, "floe_scale_b", only=["stock"]), timeout=60)
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(living.id).state.is_running()
        client.set_flow_run_state(living.id, Cancelling(), force=True)
    cancelled = _wait_for([living.id], timeout=90)[0]
    assert cancelled.state.is_cancelled(), cancelled.state
    heartbeats = EventFilter(
        event=EventNameFilter(name=["prefect.flow-run.heartbeat"]),
        resource=EventResourceFilter(id=[f"prefect.flow-run.{living.id}"]),
    )
    with get_client(sync_client=True) as client:
        assert client.read_events(heartbeats, limit=5).events, "the long-lived run sent no heartbeat"
    reports = _artifact_versions(living.id, "floe-replicate")
    assert len(reports) >= 2, "the long-lived run's report was not updated on its cadence"
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[repair.id])))
    progress = next(a for a in artifacts if a.type == "progress")
    assert float(progress.data) == 100.0
    assert_tables_equal(stack, config, "floe_scale_b", only=["stock"])
    assert event.payload["mode"] == "exact"
