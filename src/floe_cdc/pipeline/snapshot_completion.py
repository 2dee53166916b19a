"""Completing incremental re-snapshots: when the rows a snapshot did not read again may go.

A table's incremental snapshot is complete once the connector has said that its scan finished
and the table has applied every event its topic held at that moment: the scan's last reads were
written before the notification, through the same producer. The merge that gets there removes
the stored rows positioned below the mark's floor (see ``lake.resnapshot_mark``) and the mark.
A table with no new events in that cycle gets an empty batch to carry the completion.

The end offsets are the topic's high watermarks. A broker that under-reports them (tansu reports
the last record batch's base offset + 1) can let the completion go one record batch early, if a
cycle stopped inside that batch; the rows of that batch then come back with the next cycle.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from floe_cdc.capture.consumer import ChangeConsumer
from floe_cdc.capture.notifications import TableScan, read_finished_scans
from floe_cdc.core.config import Source, TargetRef
from floe_cdc.lake.checkpoint import Checkpoint
from floe_cdc.lake.resnapshot_mark import ResnapshotMark, read_mark

log = logging.getLogger("floe.resnapshot")


@dataclass(frozen=True)
class Completion:
    """A table whose snapshot scan finished: the floor to apply and the end offsets of its topic
    (per partition) when the finish was seen; the table must have read that far."""

    table: str
    scan: TableScan
    floor: int
    ends: dict[int, int]

    def reached(self, offsets: dict[int, int]) -> bool:
        """Whether a table that has read its topic to *offsets* holds the whole scan."""
        behind = {p: end for p, end in self.ends.items() if offsets.get(p, 0) < end}
        if behind:
            log.info("re-snapshot of %s: scan finished, applied once offsets %s are read", self.table, behind)
        return not behind


def pending_marks(checkpoints: dict[str, Checkpoint]) -> dict[str, ResnapshotMark]:
    """The tables' incremental re-snapshots that are not applied yet, by table."""
    marks = {name: read_mark(checkpoint.table_properties) for name, checkpoint in checkpoints.items()}
    return {name: mark for name, mark in marks.items() if mark is not None and mark.incremental}


def finished_snapshots(
    consumer: ChangeConsumer,
    tables: dict[str, tuple[Source, TargetRef]],
    checkpoints: dict[str, Checkpoint],
) -> dict[str, Completion]:
    """Before a cycle reads its changes: the pending incremental snapshots of *tables* whose scan
    the connector reports finished since the request."""
    pending = pending_marks({name: checkpoints[name] for name in tables})
    by_source: dict[str, list[str]] = {}
    for name in pending:
        by_source.setdefault(tables[name][0].name, []).append(name)
    completions = {}
    for names in by_source.values():
        source = tables[names[0]][0]
        start = {
            partition: min(pending[n].notifications.get(partition, 0) for n in names)
            for partition in {p for n in names for p in pending[n].notifications} or {0}
        }
        scans = read_finished_scans(consumer, source, start)
        for name in names:
            ref, mark = tables[name][1], pending[name]
            scan = next(
                (
                    s
                    for s in scans
                    if s.collection == source.source_table(ref)
                    and s.offset >= mark.notifications.get(s.partition, 0)
                ),
                None,
            )
            if scan is None:
                continue
            if not scan.read_in_full:
                log.error(
                    "the re-snapshot of %s ended without reading %s (%s): nothing is removed; fix the cause "
                    "(the Kafka Connect worker's log says more), then run 'floe resnapshot --table %s' again",
                    name,
                    scan.collection,
                    scan.status,
                    name,
                )
            floor = mark.floor if scan.read_in_full else 0
            completions[name] = Completion(name, scan, floor, consumer.end_offsets(source.topic_for(ref)))
    return completions
