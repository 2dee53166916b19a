"""The ad-hoc ``connectors`` flow: ``floe connectors apply`` from the Prefect UI, with the
direct first loads' progress as an artifact."""

from __future__ import annotations

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact

from floe_cdc.capture.deploy import apply_connectors
from floe_cdc.core.config import load_config
from floe_cdc.pipeline.initial_load import SourceLoad, TableLoad, load_direct_sources


def _markdown(loads: list[SourceLoad], states: dict[str, str]) -> str:
    lines = ["# Connectors", "", "| connector | state |", "|---|---|"]
    lines += [f"| {name} | {state} |" for name, state in states.items()]
    if loads:
        lines += [
            "",
            "## Loaded directly",
            "",
            "| source | table | rows | chunks | resumed |",
            "|---|---|---:|---:|---|",
        ]
        lines += [
            f"| {load.source} | {t.table} | {t.rows:,} | {t.chunks} | {'yes' if t.resumed else 'no'} |"
            for load in loads
            for t in load.tables
        ]
    return "\n".join(lines)


@flow(name="connectors")
def connectors(config_path: str = "floe.yaml") -> dict[str, str]:
    """Create or update every source's Debezium connector, validated by Connect first.

    The tables of a new source with ``initial_load: direct`` are loaded into Iceberg first, in
    chunks by key (the progress artifact follows the table being loaded); its connector then
    streams from where the load read. A load stopped half-way resumes from its last chunk.
    """
    config = load_config(config_path)
    artifact = create_progress_artifact(0.0, key="floe-load", description="Direct first loads")

    def progress(table: TableLoad) -> None:
        update_progress_artifact(
            artifact, round(table.fraction * 100, 1), description=f"Direct first load of {table.table}"
        )

    loads = load_direct_sources(config, progress)
    update_progress_artifact(artifact, 100.0)
    states = apply_connectors(config)
    for name, state in states.items():
        get_run_logger().info("%s: %s", name, state)
    create_markdown_artifact(key="floe-connectors", markdown=_markdown(loads, states))
    return states
