"""Re-snapshots of the tables of sources that load directly (``initial_load: direct``): read
straight from PostgreSQL onto a branch of the Iceberg table, which the table then switches to.

1. The branch begins at the table's current snapshot, emptied (``lake.resnapshot_branch``).
   From then on replicate leaves the table alone, and its changes wait in Kafka from that
   snapshot's checkpoint on.
2. A temporary slot exports a snapshot, newer than that checkpoint, and the table is read in it
   in chunks by key onto the branch: one commit per chunk, with how far the reading got.
3. Main switches to the branch's head in one commit that asserts main did not move.

Replicate then applies the waiting changes from the checkpoint on to rows read at position 0:
the changes made before the read again, in order, then the later ones, so every row ends as it
is at the source (the argument of a resumed initial load, ``pipeline.initial_load``). Rows the
source no longer has were never read onto the branch.

A crash leaves the branch with its committed chunks; the next run reads the rest in a newer
snapshot, which the same argument covers. A replicate cycle already under way when the branch
began can still commit to main: the branch is then of no use, and the reading starts again.
"""

from __future__ import annotations

import logging

from floe_cdc.capture.direct_snapshot import ChunkReader, exported_snapshot
from floe_cdc.core.config import PipelineConfig, PostgresSource, TableRef
from floe_cdc.core.errors import ConfigError, FloeError, Terminal
from floe_cdc.lake.catalog import load_table, open_catalog
from floe_cdc.lake.checkpoint import read_checkpoint
from floe_cdc.lake.resnapshot_branch import (
    BASE_KEY,
    BRANCH,
    MainMoved,
    begin_branch,
    branch_base,
    drop_branch,
    switch_to_branch,
)
from floe_cdc.pipeline.initial_load import (
    Progress,
    TableLoad,
    TableReading,
    copy_chunks,
    load_slot,
    load_state,
)
from floe_cdc.pipeline.lineage import Lineage

log = logging.getLogger("floe.resnapshot")

ATTEMPTS = 3


class ResnapshotRaced(FloeError, Terminal):
    """Main kept moving while the re-snapshot was read."""


def split_direct(
    config: PipelineConfig, tables: list[str]
) -> tuple[list[tuple[PostgresSource, TableRef]], list[str]]:
    """*tables* (Iceberg or source names) parted into those whose source loads directly, which
    are re-snapshotted directly too, and the names of the others (Debezium's snapshots)."""
    direct, others = [], []
    for name in tables:
        source, ref = config.find_table(name)
        if isinstance(source, PostgresSource) and source.initial_load == "direct":
            direct.append((source, ref))
        else:
            others.append(name)
    return direct, others


def resnapshot_table(
    config: PipelineConfig, source: PostgresSource, ref: TableRef, progress: Progress = lambda _: None
) -> TableLoad:
    """Read *ref* again from *source* onto the re-snapshot branch and switch the table to it;
    a branch left by an earlier run that did not finish is read on."""
    name = ref.target_name
    table = load_table(open_catalog(config.iceberg), config.iceberg.namespace, name)
    if table is None or table.current_snapshot() is None:
        raise ConfigError(
            f"table {name}: nothing to re-snapshot, Iceberg does not hold it yet; 'floe connectors apply' "
            "loads it the first time"
        )
    reading = TableReading.of(source, ref)
    for _ in range(ATTEMPTS):
        base = branch_base(table)
        if base is not None and base != table.current_snapshot().snapshot_id:
            drop_branch(table)  # main moved since that branch began
            base = None
        state = load_state(table, BRANCH) if base is not None else None
        result = TableLoad(name, resumed=state is not None)
        checkpoint = read_checkpoint(table)
        if base is None:
            base = begin_branch(table, checkpoint)
        if not (state and state.get("done")):
            with (
                exported_snapshot(source, load_slot(source), temporary=True) as snapshot,
                ChunkReader(source, snapshot) as reader,
            ):
                log.info(
                    "re-snapshot of %s: reading %s at %X",
                    name,
                    source.source_table(ref),
                    snapshot.consistent_point,
                )
                after = state.get("after") if state else None
                copy_chunks(
                    table,
                    reading,
                    reader,
                    after,
                    config.load.chunk_rows,
                    checkpoint,
                    result,
                    progress,
                    branch=BRANCH,
                    summary={BASE_KEY: str(base)},
                    lineage=Lineage.of(config),
                )
        try:
            switch_to_branch(table, base)
        except MainMoved as exc:
            log.warning("re-snapshot of %s: %s; reading it again", name, exc)
            continue
        result.done = True
        return result
    raise ResnapshotRaced(
        f"table {name}: {ATTEMPTS} re-snapshots were committed over by other writers while they were read; "
        "check that only one replicate deployment writes the table, then run the re-snapshot again"
    )
