"""The ad-hoc ``resnapshot`` flow: read tables again from their source, with a progress artifact."""

from __future__ import annotations

import time

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_progress_artifact, update_progress_artifact

from floe_cdc.core.config import PipelineConfig, PostgresSource, TableRef, load_config
from floe_cdc.core.errors import ConfigError, FloeError, Terminal
from floe_cdc.pipeline.direct_resnapshot import resnapshot_table, split_direct
from floe_cdc.pipeline.initial_load import TableLoad
from floe_cdc.pipeline.resnapshot import ResnapshotWatch, TableProgress, request_resnapshot


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


def _read_directly(config: PipelineConfig, source: PostgresSource, ref: TableRef) -> None:
    """Re-snapshot one table of a direct-load source in this run, its progress as an artifact."""
    name = ref.target_name
    artifact = create_progress_artifact(
        0.0, key="floe-resnapshot", description=f"Direct re-snapshot of {name}"
    )

    def progress(load: TableLoad) -> None:
        update_progress_artifact(artifact, round(load.fraction * 100, 1))

    read = resnapshot_table(config, source, ref, progress)
    update_progress_artifact(artifact, 100.0)
    summary = (
        f"{name}: {read.rows:,} rows read directly from {source.source_table(ref)} in {read.chunks} chunks"
        f"{' (resumed)' if read.resumed else ''}; replicate applies the changes made meanwhile"
    )
    get_run_logger().info("%s", summary)
    create_markdown_artifact(key="floe-resnapshot-summary", markdown=f"# Re-snapshot\n\n{summary}")


def _follow(config: PipelineConfig, tables: list[str], wait_seconds: float) -> None:
    """Request Debezium's re-snapshots of *tables* and follow them until replicate has applied them."""
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


@flow(name="resnapshot")
def resnapshot(
    config_path: str = "floe.yaml", tables: list[str] | None = None, wait_seconds: float = 3600
) -> None:
    """Read *tables* again from their source while replication goes on.

    Tables of sources with ``initial_load: direct`` are read by this run, straight into a branch
    of their Iceberg table that the table then switches to; replicate applies the changes made
    meanwhile. Other PostgreSQL tables are read by an incremental snapshot, in chunks between
    changes that keep streaming; MongoDB collections by a blocking one. Replicate runs apply the
    reads (they win over older changes by their source position, changes made meanwhile win over
    them) and, once the connector reports a table read to the end, remove the rows the source no
    longer has. This run follows the progress for up to *wait_seconds*, and fails if the
    connector could not read a table.
    """
    if not tables:
        raise ConfigError("name the tables to re-snapshot (parameter tables); they are read again in full")
    config = load_config(config_path)
    direct, others = split_direct(config, tables)
    for source, ref in direct:
        _read_directly(config, source, ref)
    if others:
        _follow(config, others, wait_seconds)
