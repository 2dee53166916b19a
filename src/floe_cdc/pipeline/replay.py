"""Re-apply quarantined change events once their cause is fixed (``floe quarantine replay``).

Replayed events go through the same merge as live ones, with two differences: they do not move
the table's offsets, and the table's watermark does not filter them (they are older than what
was merged since by nature). Each stored row's own source position still decides, and entries
whose key was changed again after them are ``superseded`` and never replayed, so a replay never
duplicates or regresses a row.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from floe_cdc.capture.envelope import KafkaRecord
from floe_cdc.capture.source_catalog import column_ids
from floe_cdc.core.config import PipelineConfig, PostgresSource, TableRef
from floe_cdc.core.errors import SchemaMappingError
from floe_cdc.lake import quarantine
from floe_cdc.lake.checkpoint import read_checkpoint
from floe_cdc.lake.merge import MergeResult, merge_batch
from floe_cdc.pipeline.replication import Replicator, TableChanges

log = logging.getLogger("floe.replay")


@dataclass
class ReplayOutcome:
    table: str
    replayed: int
    still_failing: int
    merge: MergeResult | None = None
    error: str | None = None


def replay_quarantined(
    config: PipelineConfig,
    tables: list[str] | None = None,
    column_lookup: Callable[[PostgresSource, TableRef], dict[str, int]] = column_ids,
) -> list[ReplayOutcome]:
    """Re-apply pending quarantined events; *column_lookup* as for ``Replicator``."""
    outcomes = []
    with Replicator(config, tables, column_lookup) as replicator:
        pending = quarantine.entries(
            replicator.quarantine_table, list(replicator.targets) if tables else None
        )
        for name in sorted(set(pending["table"].to_pylist())):
            entries = pending.filter(pc.equal(pending["table"], name))
            if name not in replicator.targets:
                log.warning(
                    "%d quarantined events of %s: the table is not in the configuration",
                    entries.num_rows,
                    name,
                )
                continue
            outcomes.append(_replay_table(replicator, name, entries))
    return outcomes


def _replay_table(replicator: Replicator, name: str, entries: pa.Table) -> ReplayOutcome:
    records = [
        KafkaRecord(row["topic"], row["partition"], row["offset"], row["key"], row["value"])
        for row in entries.to_pylist()
    ]
    decoded, table = replicator.prepare(TableChanges(records, replicator.decode_table(name, records)))
    failing = {(q.topic, q.partition, q.offset): q.error for q in decoded.quarantined}
    batch = dataclasses.replace(decoded, offsets={}, position={}, quarantined=[], snapshot_completed=None)
    try:
        result = merge_batch(table, batch, read_checkpoint(table)) if batch.size else None
    except SchemaMappingError as exc:
        errors = {(r.topic, r.partition, r.offset): str(exc) for r in records}
        quarantine.resolve(replicator.quarantine_table, entries, quarantine.PENDING, errors)
        return ReplayOutcome(name, 0, len(records), error=str(exc))
    quarantine.resolve(replicator.quarantine_table, entries, quarantine.REPLAYED, failing)
    log.info(
        "replayed %d quarantined events of %s; %d still fail", len(records) - len(failing), name, len(failing)
    )
    return ReplayOutcome(name, len(records) - len(failing), len(failing), result)
