"""The ad-hoc ``resnapshot`` flow: read tables again from their source, with a progress artifact."""

from __future__ import annotations

import time

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact

from floe.config import load_config
from floe.errors import ConfigError, FloeError, Terminal
from pipeline.resnapshot import ResnapshotWatch, TableProgress, request_resnapshot


class ResnapshotUnfinished(FloeError, Terminal):
    """The re-snapshot did not complete within the flow's wait; it goes on without the flow."""


def _markdown(progress: list[TableProgress]) -> str:
    lines = [
        "# Re-snapshot",
        "",
        "| table | rows read again | source rows | applied |",
        "|---|---:|---:|---|",
    ]
    for p in progress:
        lines.append(
            f"| {p.table} | {p.read} | {'' if p.total is None else p.total} | {'yes' if p.done else 'no'} |"
        )
    return "\n".join(lines)


@flow(name="resnapshot")
def resnapshot(
    config_path: str = "floe.yaml", tables: list[str] | None = None, wait_seconds: float = 3600
) -> None:
    """Read *tables* again from their source while replication goes on.

    PostgreSQL tables are read by an incremental snapshot, in chunks between changes that keep
    streaming; MongoDB collections by a blocking one. Replicate runs apply the reads (they win
    over older changes by their source position, changes made meanwhile win over them) and,
    once the connector reports a table read to the end, remove the rows the source no longer
    has. This run follows the progress for up to *wait_seconds*, and fails if the connector
    could not read a table.
    """
    if not tables:
        raise ConfigError("name the tables to re-snapshot (parameter tables); they are read again in full")
    config = load_config(config_path)
    watch = ResnapshotWatch(config, tables)
    try:
        for line in request_resnapshot(config, tables):
            get_run_logger().info("%s", line)
        artifact = create_progress_artifact(
            0.0, key="floe-resnapshot", description=f"Re-snapshot of {', '.join(tables)}"
        )
        deadline = time.monotonic() + wait_seconds
        while True:
            progress = watch.poll()
            share = sum(p.fraction for p in progress) / len(progress)
            update_progress_artifact(artifact, round(share * 100, 1))
            if all(p.done for p in progress):
                break
            if time.monotonic() > deadline:
                create_markdown_artifact(key="floe-resnapshot-summary", markdown=_markdown(progress))
                raise ResnapshotUnfinished(
                    f"the re-snapshot of {', '.join(p.table for p in progress if not p.done)} had not been "
                    f"applied after {wait_seconds:g}s; it goes on as long as replicate runs (check that it "
                    "does, and the connector with 'floe connectors status')"
                )
            time.sleep(2.0)
        create_markdown_artifact(key="floe-resnapshot-summary", markdown=_markdown(progress))
    finally:
        watch.close()
