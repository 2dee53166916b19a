"""``infra/terraform/envs/local`` applied for real: the warehouse bucket through hashicorp/aws on
the stack's S3 server, and the publication, slot, connector and Prefect objects through Floe's
own provider; drift seen by ``plan`` and repaired by ``apply``; ``destroy`` leaves nothing.

Prefect's objects go to a Prefect server of this test's own: the stack's server already holds
the ``floe`` work pool its workers poll and the deployments other tests register.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import boto3
import httpx
import pytest
import yaml
from botocore.exceptions import ClientError
from typer.testing import CliRunner

from floe_cdc.capture.connect_client import ConnectClient
from floe_cdc.cli.main import app
from floe_cdc.core.config import load_config
from floe_cdc.stack.prefect_server import prefect_cli
from floe_cdc.stack.processes import ManagedProcess
from floe_cdc.stack.stack import LocalStack
from tests.conftest import PROJECT_DIR
from tests.stack.pipeline import assert_tables_equal, catch_up, run_sql, write_config
from tests.terraform_cli import TerraformRun

pytestmark = pytest.mark.stack

DATABASE = "floe_terraform"
BUCKET = "floe-terraform-warehouse"
CONNECTOR = "floe-terraform"
TABLES = [
    "DROP TABLE IF EXISTS items, orders",
    "CREATE TABLE items (id int PRIMARY KEY, name text)",
    "CREATE TABLE orders (id int PRIMARY KEY, item int, qty int)",
    "INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 50) g",
]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def prefect_api(tmp_path: Path) -> Iterator[str]:
    """A Prefect server of this test's own, on SQLite; stopped with everything it started."""
    port = _free_port()
    server = ManagedProcess("prefect-terraform", tmp_path / "prefect-server")
    env = {
        **os.environ,
        "PREFECT_HOME": str(tmp_path / "prefect-home"),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{tmp_path / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    api = f"http://127.0.0.1:{port}/api"
    server.start([prefect_cli(), "server", "start", "--host", "127.0.0.1", "--port", str(port)], env=env)
    try:
        server.wait_healthy(lambda: httpx.get(f"{api}/health", timeout=3).status_code == 200, 120)
        yield api
    finally:
        server.stop(grace_seconds=10)


def _render(config_path: Path, out: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(PROJECT_DIR)
    result = CliRunner().invoke(app, ["render", "--config", str(config_path), "--out", str(out)])
    assert result.exit_code == 0, result.output


def _prefect_names(api: str) -> dict[str, list[str]]:
    """What the Prefect server holds of each kind Terraform manages."""
    kinds = {
        "deployments": "/deployments/filter",
        "work_pools": "/work_pools/filter",
        "concurrency_limits": "/v2/concurrency_limits/filter",
        "automations": "/automations/filter",
    }
    return {
        kind: sorted(item["name"] for item in httpx.post(f"{api}{path}", json={}, timeout=10).json())
        for kind, path in kinds.items()
    }


PLAN = "floe.tfplan"


def _plan(terraform: TerraformRun) -> tuple[int, str]:
    """``plan -detailed-exitcode``, saved: 0 nothing to do, 2 changes (and the plan's text). Applying
    the saved plan applies what was shown, as a careful operator does, without planning again."""
    result = terraform("plan", "-detailed-exitcode", "-input=false", f"-out={PLAN}", check=False)
    assert result.returncode in (0, 2), result.stdout + result.stderr
    return result.returncode, result.stdout


def test_terraform_applies_detects_drift_and_destroys_everything(
    stack: LocalStack, prefect_api: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    s = stack.settings
    stack.postgres.ensure_database(DATABASE)
    run_sql(stack, DATABASE, TABLES)
    secret = s.s3_secret_key.get_secret_value()
    catalog = {
        "type": "sql",
        "uri": f"sqlite:///{tmp_path / 'catalog.db'}",
        "warehouse": f"s3://{BUCKET}/warehouse",
        "s3.endpoint": s.s3_endpoint,
        "s3.access-key-id": s.s3_access_key,
        "s3.secret-access-key": secret,
        "s3.region": "us-east-1",
        "s3.path-style-access": "true",
    }
    config_path = write_config(stack, tmp_path, "terraform", DATABASE, ["public.items"], catalog)
    rendered = tmp_path / "rendered"
    _render(config_path, rendered, monkeypatch)
    terraform = TerraformRun("local", tmp_path / "env")
    (terraform.directory / "terraform.tfvars.json").write_text(
        json.dumps(
            {
                "rendered_dir": str(rendered),
                "project_dir": str(PROJECT_DIR),
                "warehouse_bucket": BUCKET,
                "s3_endpoint": s.s3_endpoint,
                "s3_access_key": s.s3_access_key,
                "s3_secret_key": secret,
                "postgres_port": s.pg_port,
                "postgres_user": s.pg_user,
                "postgres_password": s.pg_password.get_secret_value(),
                "connect_url": s.connect_url,
                "prefect_api_url": prefect_api,
                "connector_secrets": {CONNECTOR: {"database.password": s.pg_password.get_secret_value()}},
            }
        )
    )
    connect = ConnectClient(s.connect_url)
    s3 = boto3.client(
        "s3",
        endpoint_url=s.s3_endpoint,
        aws_access_key_id=s.s3_access_key,
        aws_secret_access_key=secret,
        region_name="us-east-1",
    )
    terraform("init", "-input=false")
    try:
        terraform("apply", "-auto-approve", "-input=false")
        assert _plan(terraform)[0] == 0, "plan right after apply proposes changes"
        held = _prefect_names(prefect_api)
        config = load_config(config_path)
        assert held["work_pools"] == ["floe"]
        assert set(held["deployments"]) == set(
            json.loads((rendered / "prefect.json").read_text())["deployments"]
        )
        # Prefect keeps a deployment's own run limit as a global limit named after it.
        limits = [name for name in held["concurrency_limits"] if not name.startswith("deployment:")]
        assert limits == ["floe-replicate-terraform.items"]
        assert len(held["automations"]) == 6
        shown = terraform("show").stdout
        assert s.pg_password.get_secret_value() not in shown and secret not in shown

        # The snapshot and a change reach Iceberg, in the bucket Terraform made.
        run_sql(stack, DATABASE, ["UPDATE items SET name = 'changed' WHERE id % 5 = 0"])
        catch_up(config_path)
        assert_tables_equal(stack, config, DATABASE)
        assert s3.list_objects_v2(Bucket=BUCKET, Prefix="warehouse/")["KeyCount"] > 0

        # A connector deleted behind Terraform's back shows in the plan and comes back.
        connect.delete(CONNECTOR)
        code, plan = _plan(terraform)
        assert code == 2 and f'floe_connector.floe["{CONNECTOR}"] will be created' in plan, plan
        terraform("apply", "-input=false", PLAN)
        assert connect.get_config(CONNECTOR) is not None

        # A table added to floe.yaml updates the connector and the publication in place (and the
        # plan shows nothing else of the repaired connector).
        document = yaml.safe_load(config_path.read_text())
        document["sources"][0]["tables"].append("public.orders")
        config_path.write_text(yaml.safe_dump(document))
        _render(config_path, rendered, monkeypatch)
        code, plan = _plan(terraform)
        assert code == 2, plan
        assert f'floe_connector.floe["{CONNECTOR}"] will be updated in-place' in plan, plan
        assert 'floe_publication.floe["terraform"] will be updated in-place' in plan, plan
        assert "must be replaced" not in plan and "will be destroyed" not in plan, plan
        terraform("apply", "-input=false", PLAN)
        assert "public\\.orders" in connect.get_config(CONNECTOR)["table.include.list"]
        run_sql(
            stack,
            DATABASE,
            ["INSERT INTO orders VALUES (1, 1, 3), (2, 7, 1)", "DELETE FROM items WHERE id = 2"],
        )
        catch_up(config_path)
        assert_tables_equal(stack, load_config(config_path), DATABASE)
    finally:
        terraform("destroy", "-auto-approve", "-input=false")

    assert CONNECTOR not in connect.connectors()
    with stack.postgres.connect(DATABASE) as conn, conn.cursor() as cur:
        cur.execute("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'floe_terraform'")
        assert cur.fetchone()[0] == 0
        cur.execute("SELECT count(*) FROM pg_publication WHERE pubname = 'floe_terraform'")
        assert cur.fetchone()[0] == 0
    assert _prefect_names(prefect_api) == {
        "deployments": [],
        "work_pools": [],
        "concurrency_limits": [],
        "automations": [],
    }
    with pytest.raises(ClientError):
        s3.head_bucket(Bucket=BUCKET)
