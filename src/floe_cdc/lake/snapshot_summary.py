"""Snapshot summaries that count Iceberg v3 deletion vectors as Iceberg's Java library does.

pyiceberg's summary collector counts every position delete by its file's size. A deletion vector
shares its Puffin file with the other vectors of its commit, so a commit of 300 vectors counted
that file 300 times in ``added-files-size`` (and in ``total-files-size`` from then on), which
monitoring and the write amplification Floe reports read. Java counts a vector by its blob's size
(``content_size_in_bytes``) and as a DV (``added-dvs``, ``removed-dvs``), not a position delete
file; the delete-file and deleted-row counts include it either way.
"""

from __future__ import annotations

from collections import defaultdict

from pyiceberg.manifest import DataFile
from pyiceberg.partitioning import PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.snapshots import SnapshotSummaryCollector, UpdateMetrics, set_when_positive

from floe_cdc.lake.deletion_vectors import is_vector
from floe_cdc.lake.pyiceberg_v3 import data_file_field

ADDED_DVS, REMOVED_DVS = "added-dvs", "removed-dvs"


class _Metrics(UpdateMetrics):
    """pyiceberg's counts of added and removed files, deletion vectors counted as Java counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.added_dvs = self.removed_dvs = 0

    def add_file(self, data_file: DataFile) -> None:
        if is_vector(data_file):
            self._count_vector(data_file, "added")
        else:
            super().add_file(data_file)

    def remove_file(self, data_file: DataFile) -> None:
        if is_vector(data_file):
            self._count_vector(data_file, "removed")
        else:
            super().remove_file(data_file)

    def _count_vector(self, vector: DataFile, side: str) -> None:
        """Counts a deletion vector on the *side* ("added" or "removed") of the counts: by its
        blob, as a delete file and a DV, with the rows it deletes."""
        for count, amount in (
            ("file_size", data_file_field(vector, "content_size_in_bytes")),
            ("delete_files", 1),
            ("dvs", 1),
            ("pos_deletes", vector.record_count),
        ):
            setattr(self, f"{side}_{count}", getattr(self, f"{side}_{count}") + amount)

    def to_dict(self) -> dict[str, str]:
        properties = super().to_dict()
        set_when_positive(properties, self.added_dvs, ADDED_DVS)
        set_when_positive(properties, self.removed_dvs, REMOVED_DVS)
        return properties


class SummaryCollector(SnapshotSummaryCollector):
    """pyiceberg's snapshot summary collector, counting deletion vectors as Java does, and
    working out a changed partition's path only when the summary is to hold it."""

    def __init__(self, partition_summary_limit: int = 0) -> None:
        super().__init__(partition_summary_limit)
        self.metrics = _Metrics()
        self.partition_metrics = defaultdict(_Metrics)

    def update_partition_metrics(
        self, partition_spec: PartitionSpec, file: DataFile, is_add_file: bool, schema: Schema
    ) -> None:
        if self.max_changed_partitions_for_summaries > 0:
            super().update_partition_metrics(partition_spec, file, is_add_file, schema)
            return
        # With no per-partition summaries (Iceberg's default ``write.summary.partition-limit``
        # of 0) only their count is kept, and a partition's path takes pyiceberg about 15 µs to
        # write: a v3 commit into a partitioned table lists hundreds of vectors.
        self.partition_metrics.setdefault(f"{partition_spec.spec_id}:{file.partition}", _Metrics())
