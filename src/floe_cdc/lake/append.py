"""Commit rows known to be new to their table: the chunks of a direct load.

A direct load reads a table in chunks of disjoint key ranges into an Iceberg table (or branch)
that holds nothing but what the same load wrote before, so no chunk can meet a stored row of one
of its keys. The merge's key matching, and the key index it keeps in memory for that (1.4 GB at
10M rows), would find nothing: each chunk is written as data files and committed as a fast
append instead, with the checkpoint and the load's progress in the same snapshot.
"""

from __future__ import annotations

from pyiceberg.table import Table
from pyiceberg.table.refs import MAIN_BRANCH

from floe_cdc.core.changes import POS_COLUMN, ChangeBatch
from floe_cdc.lake.checkpoint import Checkpoint
from floe_cdc.lake.layout import sort_rows
from floe_cdc.lake.merge import committing, conform
from floe_cdc.lake.pyiceberg_adapter import RowDelta, transaction, write_data_files
from floe_cdc.lake.schema import POSITION_FIELD, evolve


def append_rows(
    table: Table,
    batch: ChangeBatch,
    checkpoint: Checkpoint,
    branch: str = MAIN_BRANCH,
    evolve_schema: bool = True,
) -> None:
    """Append *batch*'s rows to *branch* of *table* in one commit that carries *checkpoint* and
    the batch's summary; *evolve_schema* first brings the table's schema to the batch's columns
    (a load's later chunks have the columns of its first and skip that step).

    The commit asserts the branch's head it was planned on (Floe retries no commit), so a
    second writer makes it fail rather than append the same rows twice.
    """
    outcome = "nothing of the chunk is visible; the load resumes from its last committed chunk when run again"
    with committing(batch.table, outcome), transaction(table) as tx:
        if evolve_schema:
            evolve(tx, batch.table, batch.columns, batch.column_history)
        metadata = tx.table_metadata
        rows = conform(
            batch.data.append_column(POSITION_FIELD, batch.data[POS_COLUMN]), metadata.schema().as_arrow()
        )
        properties = {**checkpoint.properties(), **batch.summary, "floe.events": str(batch.size)}
        append = RowDelta(tx, properties, branch)  # adds data files only: a fast append
        rows = sort_rows(rows, metadata.sort_order(), metadata.schema())
        for data_file in write_data_files(metadata, table.io, rows):
            append.append_data_file(data_file)
        append.commit()
