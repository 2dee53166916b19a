"""``floe stack status`` and ``floe stack down`` on the session's real stack."""

from __future__ import annotations

import psutil
import pytest
from typer.testing import CliRunner

from floe_cdc.cli.main import app
from floe_cdc.stack.stack import LocalStack

pytestmark = pytest.mark.stack


def _processes_mentioning(*needles: str) -> list[str]:
    found = []
    for process in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if any(needle in cmdline for needle in needles):
            found.append(f"{process.info['pid']}: {cmdline[:200]}")
    return found


def _listening(stack: LocalStack) -> list[int]:
    """The stack's ports that something still listens on."""
    s = stack.settings
    ports = {s.pg_port, s.kafka_port, s.connect_port, s.prefect_port, s.s3_port, s.iceberg_port, s.mongo_port}
    ports |= set(s.object_store_internal_ports())
    listening = {c.laddr.port for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN}
    return sorted(listening & ports)


def test_status_reports_every_component_healthy(stack: LocalStack):
    result = CliRunner().invoke(app, ["stack", "status"])
    assert result.exit_code == 0, result.output
    for component in ("postgres", "object-store", "mongodb", "kafka", "connect", "prefect-server"):
        assert f"{component} " in result.output
    assert "prefect-worker-1 " in result.output and "prefect-worker-2 " in result.output
    assert "unhealthy" not in result.output and "stopped" not in result.output


@pytest.mark.stops_stack
def test_down_leaves_no_process_and_no_replication_slot(stack: LocalStack):
    slot_dir = stack.postgres.data_dir / "pg_replslot"
    with stack.postgres.connect() as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_create_logical_replication_slot('floe_lifecycle_probe', 'pgoutput')")
    assert any(slot_dir.iterdir())
    result = CliRunner().invoke(app, ["stack", "down"])
    assert result.exit_code == 0, result.output
    assert "floe_lifecycle_probe" in result.output
    assert list(slot_dir.iterdir()) == []
    state = str(stack.settings.state_dir)
    listener = f"tcp://{stack.settings.host}:{stack.settings.kafka_port}"
    assert _processes_mentioning(state, listener) == []
    assert _listening(stack) == []
    status = CliRunner().invoke(app, ["stack", "status"])
    assert status.exit_code == 1 and "healthy " not in status.output
