"""Floe's snapshot summary collector against pyiceberg's, for files that are not deletion vectors
(the vectors: tests/test_deletion_vectors.py)."""

from __future__ import annotations

import pytest
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.partitioning import PartitionField, PartitionSpec
from pyiceberg.schema import Schema
from pyiceberg.table.snapshots import SnapshotSummaryCollector
from pyiceberg.transforms import DayTransform, IdentityTransform
from pyiceberg.typedef import Record
from pyiceberg.types import DateType, LongType, NestedField, StringType

from floe_cdc.lake.snapshot_summary import SummaryCollector

SCHEMA = Schema(
    NestedField(1, "id", LongType(), required=False),
    NestedField(2, "placed", DateType(), required=False),
    NestedField(3, "region", StringType(), required=False),
)
BY_DAY = PartitionSpec(PartitionField(2, 1000, DayTransform(), "placed_day"), spec_id=1)
BY_REGION = PartitionSpec(PartitionField(3, 1001, IdentityTransform(), "region"), spec_id=2)


def _file(number: int, content: DataFileContent, partition: Record, spec: PartitionSpec) -> DataFile:
    data_file = DataFile.from_args(
        content=content,
        file_path=f"s3://b/t/data/{number}.parquet",
        file_format=FileFormat.PARQUET,
        partition=partition,
        record_count=10 + number,
        file_size_in_bytes=1000 + number,
    )
    data_file.spec_id = spec.spec_id
    return data_file


@pytest.mark.parametrize("limit", [0, 10])
def test_the_summary_of_partitioned_files_is_pyiceberg_s_with_or_without_partition_summaries(limit):
    files = [
        (_file(0, DataFileContent.DATA, Record(20000), BY_DAY), BY_DAY, True),
        (_file(1, DataFileContent.DATA, Record(20000), BY_DAY), BY_DAY, True),
        (_file(2, DataFileContent.POSITION_DELETES, Record(20001), BY_DAY), BY_DAY, True),
        (_file(3, DataFileContent.DATA, Record(20002), BY_DAY), BY_DAY, False),
        (_file(4, DataFileContent.DATA, Record("eu"), BY_REGION), BY_REGION, True),
    ]
    ours, theirs = SummaryCollector(limit), SnapshotSummaryCollector(limit)
    for collector in (ours, theirs):
        for data_file, spec, added in files:
            if added:
                collector.add_file(data_file, schema=SCHEMA, partition_spec=spec)
            else:
                collector.remove_file(data_file, schema=SCHEMA, partition_spec=spec)
    assert ours.build() == theirs.build()
    assert ours.build()["changed-partition-count"] == "4"
