"""``floe demo``: stack up, seed, connect, replicate until caught up, reconcile, summarise.

Idempotent: the shop database is seeded only once; every run then applies a small workload of
live changes, so a second run shows change data capture on top of the first.
"""

from __future__ import annotations

import logging
from pathlib import Path

from floe_cdc.capture.deploy import apply_connectors
from floe_cdc.core.config import PipelineConfig, load_config
from floe_cdc.flows.deployments import deploy
from floe_cdc.flows.replicate import replicate_until_caught_up
from floe_cdc.flows.report import format_rows
from floe_cdc.stack.settings import StackSettings
from floe_cdc.stack.stack import LocalStack

log = logging.getLogger("floe.demo")
DEMO_DIR = Path(__file__).parent
CATCH_UP_SECONDS = 300


def seed(stack: LocalStack, database: str) -> bool:
    """Create and fill the shop database unless it exists already; True when it seeded."""
    stack.postgres.ensure_database(database)
    with stack.postgres.connect(database) as conn, conn.cursor() as cur:
        cur.execute("SELECT to_regclass('public.customers') IS NOT NULL")
        if cur.fetchone()[0]:
            return False
        cur.execute((DEMO_DIR / "seed.sql").read_text())
    return True


def apply_workload(stack: LocalStack, database: str) -> None:
    conn = stack.postgres.connect(database)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute((DEMO_DIR / "workload.sql").read_text())
    finally:
        conn.close()


def _demo_database(config: PipelineConfig) -> str:
    return config.sources[0].database


def run_demo(config_path: Path, project_dir: Path) -> int:
    settings = StackSettings()
    stack = LocalStack(settings, project_dir)
    stack.up()
    config = load_config(config_path)
    database = _demo_database(config)
    if seed(stack, database):
        log.info("seeded the demo database %s", database)
    for name, state in apply_connectors(config).items():
        log.info("connector %s: %s", name, state)
    apply_workload(stack, database)
    rows = replicate_until_caught_up(config_path, CATCH_UP_SECONDS)
    for line in deploy(config_path.resolve(), project_dir):
        log.info("%s", line)
    print(
        "\nFloe demo: PostgreSQL database",
        database,
        "replicated into Iceberg namespace",
        config.iceberg.namespace,
    )
    print(format_rows(rows))
    catalog = settings.catalog_properties()
    print(
        f"\nIceberg REST catalog: {catalog['uri']} (warehouse {catalog['warehouse']}, S3 at "
        f"{settings.s3_endpoint})"
    )
    print(f"Prefect UI (flow runs, artifacts, deployments): {settings.prefect_ui_url}")
    print("Stop the local stack with: .venv/bin/floe stack down")
    return 0 if all(row["reconciliation"] == "pass" for row in rows) else 1
