"""The Terraform modules under infra/terraform and the rendering they read (``floe render``).

The cloud modules' providers (Mongey/kafka, Mongey/kafka-connect, cyrilgdn/postgresql,
PrefectHQ/prefect) cannot be downloaded here, so these tests parse the modules (python-hcl2)
instead of planning them: that they apply exactly what ``floe render`` writes (the connector
configurations ``floe connectors apply`` puts on Kafka Connect), that every field they read
from it exists, and that variables are typed, documented and keep secrets out of plans.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import hcl2
import pytest
import yaml
from typer.testing import CliRunner

from floe_cdc.capture.connectors import render as render_connector
from floe_cdc.capture.signals import notification_topic, signal_topic
from floe_cdc.cli.main import app
from floe_cdc.core.config import load_config
from tests.conftest import PROJECT_DIR
from tests.terraform_cli import TERRAFORM, TerraformRun

MODULES = sorted(p for p in (TERRAFORM / "modules").iterdir() if p.is_dir())
ROOTS = [*MODULES, *sorted(p for p in (TERRAFORM / "envs").iterdir() if p.is_dir())]
SECRET_NAME = re.compile(r"password|secret|api_key|token|connection_string")


@pytest.fixture
def rendered(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, Any], Path]:
    """``floe render`` of a pipeline with a PostgreSQL source (odd table names) and a MongoDB one."""
    document = {
        "sources": [
            {
                "name": "shop",
                "database": "shop",
                "user": "floe",
                "password": "pg-secret-1",
                "tables": ["public.orders", '"sales.eu".invoices', 'public."Order Lines"'],
            },
            {
                "kind": "mongodb",
                "name": "docs",
                "connection_string": "mongodb://app:mongo-secret-2@db:27017/?replicaSet=rs0",
                "database": "app",
                "collections": ["events"],
            },
        ],
        "kafka": {"bootstrap_servers": "broker:9092"},
        "connect": {"url": "http://connect:8083"},
        "iceberg": {"catalog_uri": "sqlite:///catalog.db", "warehouse": "wh", "namespace": "lake"},
    }
    config_path = tmp_path / "floe.yaml"
    config_path.write_text(yaml.safe_dump(document))
    out = tmp_path / "rendered"
    monkeypatch.chdir(PROJECT_DIR)
    result = CliRunner().invoke(app, ["render", "--config", str(config_path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return (
        out,
        {
            name: json.loads((out / name).read_text())
            for name in ("connectors.json", "topics.json", "postgres.json", "prefect.json")
        },
        config_path,
    )


def _parse(root: Path) -> dict[str, list[Any]]:
    merged: dict[str, list[Any]] = {}
    for path in sorted(root.glob("*.tf")):
        with path.open() as handle:
            for kind, blocks in hcl2.load(handle).items():
                if isinstance(blocks, list):
                    merged.setdefault(kind, []).extend(blocks)
    return merged


def _unquote(text: str) -> str:
    return text.strip('"')


def _resources(root: Path) -> dict[str, dict[str, Any]]:
    found = {}
    for block in _parse(root).get("resource", []):
        for kind, named in block.items():
            for name, body in named.items():
                found[f"{_unquote(kind)}.{_unquote(name)}"] = body
    return found


def _variables(root: Path) -> dict[str, dict[str, Any]]:
    return {_unquote(n): body for block in _parse(root).get("variable", []) for n, body in block.items()}


def test_render_writes_what_connectors_apply_puts_without_secrets(rendered):
    out, files, config_path = rendered
    config = load_config(config_path)
    for source in config.sources:
        entry = files["connectors.json"][source.connector_name]
        secrets = {key: render_connector(source, config.kafka)[key] for key in entry["sensitive_keys"]}
        assert {**entry["config"], **secrets} == {
            **render_connector(source, config.kafka),
            "name": source.connector_name,
        }
        assert entry["sensitive_keys"] == (
            ["database.password"] if source.name == "shop" else ["mongodb.connection.string"]
        )
    text = "".join(path.read_text() for path in out.iterdir())
    assert "pg-secret-1" not in text and "mongo-secret-2" not in text
    topics = {source.topic_for(table) for source, table in config.tables()}
    topics |= {topic(source) for source in config.sources for topic in (signal_topic, notification_topic)}
    assert set(files["topics.json"]) == topics
    shop = files["postgres.json"]["shop"]
    assert shop["tables"] == [
        {"schema": "public", "table": "orders"},
        {"schema": "sales.eu", "table": "invoices"},
        {"schema": "public", "table": "Order Lines"},
    ]
    assert (shop["publication"], shop["slot"]) == ("floe_shop", "floe_shop")
    assert "docs" not in files["postgres.json"]
    prefect = files["prefect.json"]
    declared = {d["name"] for d in yaml.safe_load((PROJECT_DIR / "prefect.yaml").read_text())["deployments"]}
    assert set(prefect["deployments"]) == declared | {"replicate-shop", "replicate-docs"}
    assert prefect["deployments"]["replicate-shop"]["parameters"]["tables"] == [
        "orders",
        "invoices",
        "order_lines",
    ]
    assert set(prefect["concurrency_limits"]) == {
        f"floe-replicate-lake.{table.target_name}" for _, table in config.tables()
    }
    assert len(prefect["automations"]) == 6


def _fields(expression: Any) -> set[str]:
    """The ``each.value.<field>`` names an attribute's expression reads."""
    return set(re.findall(r"each\.value\.(\w+)", json.dumps(expression)))


# Resource of the prefect module -> the part of prefect.json it iterates over.
PREFECT_READS = {
    "prefect_deployment.floe": "deployments",
    "prefect_global_concurrency_limit.floe": "concurrency_limits",
    "prefect_automation.floe": "automations",
}


def test_the_modules_apply_the_rendering_unchanged(rendered):
    _, files, _ = rendered
    connectors = _resources(TERRAFORM / "modules" / "connectors")
    locals_ = _parse(TERRAFORM / "modules" / "connectors")["locals"][0]
    assert locals_["connectors"] == '${jsondecode(file("${var.rendered_dir}/connectors.json"))}'
    assert locals_["topics"] == '${jsondecode(file("${var.rendered_dir}/topics.json"))}'
    connector = connectors["kafka-connect_connector.floe"]
    assert (connector["for_each"], connector["name"], connector["config"]) == (
        "${local.connectors}",
        "${each.key}",
        "${each.value.config}",
    )
    assert "each.value.sensitive_keys" in connector["config_sensitive"]
    topic = connectors["kafka_topic.floe"]
    assert (topic["for_each"], topic["name"], topic["partitions"], topic["config"]) == (
        "${local.topics}",
        "${each.key}",
        "${each.value.partitions}",
        "${each.value.config}",
    )
    # Every field a module reads from an entry is one floe render writes.
    for name, entry in files["connectors.json"].items():
        assert _fields(connector) <= set(entry), name
    for name, entry in files["topics.json"].items():
        assert _fields(topic) <= set(entry), name
    prefect = _resources(TERRAFORM / "modules" / "prefect")
    for resource, key in PREFECT_READS.items():
        for entry in files["prefect.json"][key].values():
            if isinstance(entry, dict):
                assert _fields(prefect[resource]) <= set(entry), (resource, entry)
    postgres = json.dumps(_parse(TERRAFORM / "modules" / "postgres_cdc"))
    source = files["postgres.json"]["shop"]
    assert set(re.findall(r"local\.source\.(\w+)", postgres)) <= set(source)
    assert set(re.findall(r"\bt\.(\w+)", postgres)) <= set(source["tables"][0])


def test_env_local_applies_the_rendering_unchanged(rendered):
    """envs/local applies the same rendering through Floe's provider."""
    _, files, _ = rendered
    local = _resources(TERRAFORM / "envs" / "local")
    connector = local["floe_connector.floe"]
    assert (connector["for_each"], connector["name"], connector["config"]) == (
        "${local.connectors}",
        "${each.key}",
        "${each.value.config}",
    )
    assert "each.value.sensitive_keys" in connector["config_sensitive"]
    source = files["postgres.json"]["shop"]
    for resource in ("floe_publication.floe", "floe_replication_slot.floe"):
        assert local[resource]["for_each"] == "${local.postgres}"
        assert _fields(local[resource]) <= set(source), resource
    assert local["floe_publication.floe"]["tables"] == "${[for t in each.value.tables : [t.schema, t.table]]}"
    for resource, key in PREFECT_READS.items():
        ours = local[resource.replace("prefect_", "floe_")]
        assert ours["for_each"] == f"${{local.prefect.{key}}}"
        for entry in files["prefect.json"][key].values():
            if isinstance(entry, dict):
                assert _fields(ours) <= set(entry), (resource, entry)


@pytest.mark.parametrize("root", ROOTS, ids=lambda p: str(p.relative_to(TERRAFORM)))
def test_variables_are_typed_documented_and_secrets_stay_secret(root):
    variables = _variables(root)
    assert variables, root
    for name, body in variables.items():
        assert body.get("type") and body.get("description"), (
            f"{root.name}: variable {name} needs a type and a description"
        )
        if SECRET_NAME.search(name) or body.get("sensitive"):
            assert body.get("sensitive") is True, f"{root.name}: secret variable {name} must be sensitive"
            assert "default" not in body, f"{root.name}: secret variable {name} must not have a default"
    secret = {name for name, body in variables.items() if body.get("sensitive")}
    for block in _parse(root).get("output", []):
        for name, body in block.items():
            assert body.get("description"), f"{root.name}: output {name} needs a description"
            used = set(re.findall(r"var\.(\w+)", json.dumps(body.get("value"))))
            if used & secret:
                assert body.get("sensitive") is True, f"{root.name}: output {name} shows a secret"


@pytest.mark.parametrize("env", ["aws", "local"])
def test_envs_document_every_variable_and_output_in_the_readme(env: str):
    readme = (TERRAFORM / "README.md").read_text()
    env = TERRAFORM / "envs" / env
    outputs = {_unquote(n) for block in _parse(env).get("output", []) for n in block}
    for name in [*_variables(env), *outputs]:
        assert f"`{name}`" in readme, f"infra/terraform/README.md does not list {name}"


def test_terraform_files_are_formatted():
    result = subprocess.run(
        ["terraform", "fmt", "-check", "-recursive", "-diff", str(TERRAFORM)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_render_into_a_file_is_one_error_line(tmp_path: Path, shop_config, monkeypatch: pytest.MonkeyPatch):
    blocked = tmp_path / "taken"
    blocked.write_text("not a directory")
    monkeypatch.chdir(PROJECT_DIR)
    result = CliRunner().invoke(app, ["render", "--config", str(shop_config("fail")), "--out", str(blocked)])
    assert result.exit_code == 1
    assert (
        result.output.strip().startswith("error: cannot write to --out") and "Traceback" not in result.output
    )


def test_env_local_validates_with_floes_provider(tmp_path: Path):
    terraform = TerraformRun("local", tmp_path)
    terraform("init", "-backend=false", "-input=false")
    terraform("validate")


def test_terraform_setup_with_a_missing_mirror_is_one_error_line(tmp_path: Path):
    result = CliRunner().invoke(
        app, ["terraform", "setup", "--dir", str(tmp_path / "tf"), "--plugin-mirror", str(tmp_path / "none")]
    )
    assert result.exit_code == 1
    assert result.output.startswith("error: --plugin-mirror") and "Traceback" not in result.output
    assert not (tmp_path / "tf").exists()


def test_the_provider_starts_without_the_libraries_its_operations_need():
    """Terraform starts the provider several times per command, mostly for its schema: that start
    must not pay for Prefect, psycopg2 or the pipeline; the first operation loads them."""
    probe = (
        "import sys; from floe_cdc.terraform.provider import FloeProvider; "
        "provider = FloeProvider(); [r.get_schema() for r in provider.get_resources()]; "
        "print(sorted(m for m in ('prefect', 'psycopg2', 'pyiceberg', 'httpx') if m in sys.modules)); "
        "from floe_cdc.terraform.resource import Operations; "
        "print(all(isinstance(r(provider).operations, Operations) for r in provider.get_resources()))"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert result.stdout.split() == ["[]", "True"], result.stdout + result.stderr
