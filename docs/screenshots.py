"""Screenshots of Floe in the Prefect UI, for the README, taken with headless Chromium.

Run on the local stack once ``make demo`` has replicated the demo database (``make
screenshots`` does both, and installs Debian's ``chromium`` when it is missing):

1. registers the deployments and automations (``floe deploy``), changes the demo database and
   runs ``replicate-shop``;
2. removes one row from the Iceberg table ``orders`` behind Floe's back and runs ``reconcile``
   in ``keys`` mode: the run fails and names the row, and the alert automation fires;
3. repairs the table with the ``resnapshot`` deployment (replicate runs apply it);
4. saves the deployments page, the replicate run's artifacts, the failed reconciliation, the
   freshness chart, the automations and the event feed as PNG files in ``docs/images``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

# isort: off
import floe_cdc  # noqa: F401  (first: it points Prefect, which reads its settings at import, at the stack)

# isort: on
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.deployments import run_deployment
from pyiceberg.expressions import EqualTo

from floe_cdc.core.config import load_config
from floe_cdc.flows.deployments import deploy
from floe_cdc.lake.catalog import open_catalog
from floe_cdc.lake.lookup import key_columns
from floe_cdc.stack.demo.run import apply_workload
from floe_cdc.stack.settings import StackSettings
from floe_cdc.stack.stack import LocalStack

PROJECT = Path(__file__).resolve().parent.parent

IMAGES = PROJECT / "docs" / "images"
TABLE = "orders"


def _artifact_id(run_id: object, key: str) -> str:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id])))
    return str(next(a.id for a in artifacts if a.key == key))


def _replicate(source: str) -> object:
    """A completed replicate run (one started while the scheduled one runs is cancelled)."""
    for _ in range(10):
        run = run_deployment(f"replicate/replicate-{source}", timeout=300)
        if run.state.is_completed():
            return run
    sys.exit(f"replicate-{source} did not complete: {run.state}")


def _shoot(url: str, name: str, height: int = 1000) -> None:
    browser = shutil.which("chromium") or sys.exit("chromium is not installed: apt-get install chromium")
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size=1440,{height}",
            "--virtual-time-budget=30000",  # let the UI load its data before the picture
            f"--screenshot={IMAGES / name}",
            url,
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    print(f"{IMAGES / name}: {url}")


def main() -> None:
    config_path = PROJECT / "floe.yaml"
    config = load_config(config_path)
    source = config.sources[0].name
    ui = StackSettings().prefect_ui_url
    print("\n".join(deploy(config_path, PROJECT)))

    apply_workload(LocalStack(StackSettings(), PROJECT), config.sources[0].database)  # changes to show
    replicated = _replicate(source)
    table = open_catalog(config.iceberg).load_table((config.iceberg.namespace, TABLE))
    keys = key_columns(table)
    column = keys.column_names[0]
    table.delete(EqualTo(column, keys.column(0)[0].as_py()))  # behind Floe's back
    parameters = {"tables": [TABLE], "mode": "keys", "wait_seconds": 120}
    failed = run_deployment("reconcile/reconcile", parameters=parameters, timeout=300)
    repair = run_deployment("resnapshot/resnapshot", parameters={"tables": [TABLE]}, timeout=0)
    while True:
        with get_client(sync_client=True) as client:
            if client.read_flow_run(repair.id).state.is_final():
                break
        _replicate(source)
    IMAGES.mkdir(parents=True, exist_ok=True)
    _shoot(f"{ui}/deployments", "deployments.png")
    _shoot(f"{ui}/runs/flow-run/{replicated.id}?tab=Artifacts", "replicate-run.png", 1300)
    summary = _artifact_id(replicated.id, "floe-replicate-summary")
    _shoot(f"{ui}/artifacts/artifact/{summary}", "replicate-summary.png")
    _shoot(
        f"{ui}/artifacts/artifact/{_artifact_id(failed.id, 'floe-reconcile-summary')}", "failed-reconcile.png"
    )
    _shoot(f"{ui}/runs/flow-run/{failed.id}", "failed-reconcile-run.png")
    _shoot(f"{ui}/artifacts/artifact/{_artifact_id(replicated.id, 'floe-freshness')}", "freshness.png", 1100)
    _shoot(f"{ui}/automations", "automation.png")
    _shoot(f"{ui}/events?events=floe.reconciliation.failed", "events.png")


if __name__ == "__main__":
    main()
