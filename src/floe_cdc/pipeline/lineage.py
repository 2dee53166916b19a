"""OpenLineage events: one for each Iceberg commit, from the source table to the Iceberg table.

Catalogs such as Marquez, DataHub and OpenMetadata read them. Each is a RUN COMPLETE of the job
``replicate.<table>`` with the source dataset as its input and the Iceberg table as its output,
sent through the ``openlineage-python`` client's transports (HTTP or a file). Two facets of
Floe's own ride on the run: ``floe_commit`` (the snapshot, the source position, the Kafka offsets
and the rows by operation) and ``floe_reconciliation`` (the table's latest reconciliation this
process knows of). Datasets are named as OpenLineage's naming conventions say: a PostgreSQL
table ``postgres://host:port`` / ``database.schema.table``, a MongoDB collection
``mongodb://host:port`` / ``database.collection``, the Iceberg table by its location (``s3://bucket``
/ its path) with a symlink to its catalog name.

A lineage endpoint that is down never stops replication: the event is logged as not sent.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlsplit

import attr
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import InputDataset, Job, OutputDataset, Run, RunEvent, RunState
from openlineage.client.facet_v2 import RunFacet, symlinks_dataset
from openlineage.client.generated.output_statistics_output_dataset import OutputStatisticsOutputDatasetFacet
from openlineage.client.uuid import generate_new_uuid
from pyiceberg.table import Table
from pymongo.uri_parser import parse_uri

from floe_cdc.core.changes import ChangeBatch
from floe_cdc.core.config import LineageConfig, MongoSource, PipelineConfig, Source
from floe_cdc.core.secrets import masked_line
from floe_cdc.lake.merge import MergeResult
from floe_cdc.reconcile.reconcile import ReconcileResult

log = logging.getLogger("floe.lineage")

_COUNTS = ("events", "inserted", "updated", "deleted", "replayed", "quarantined")

PRODUCER = "https://github.com/floe-cdc/floe"
# Where the JSON schemas of Floe's facets are published (docs/lineage/ in the repository).
_SCHEMAS = "https://github.com/floe-cdc/floe/blob/main/docs/lineage"


@attr.define
class CommitRunFacet(RunFacet):
    """What one Iceberg commit applied."""

    snapshotId: int | None  # OpenLineage's facets name their fields in camel case
    sourcePosition: dict[str, Any]
    kafkaOffsets: dict[str, dict[str, int]]
    events: int
    inserted: int
    updated: int
    deleted: int
    replayed: int
    quarantined: int

    _additional_skip_redact: ClassVar[list[str]] = ["snapshotId", "sourcePosition", "kafkaOffsets"]

    @staticmethod
    def _get_schema() -> str:
        return f"{_SCHEMAS}/CommitRunFacet.json#/$defs/CommitRunFacet"


@attr.define
class ReconciliationRunFacet(RunFacet):
    """The table's latest reconciliation known when the commit was made."""

    outcome: str  # pass, fail, not checked (the check could not run), or unknown (none yet)
    mode: str | None = None
    sourceCount: int | None = None
    icebergCount: int | None = None
    checkedAt: str | None = None

    @staticmethod
    def _get_schema() -> str:
        return f"{_SCHEMAS}/ReconciliationRunFacet.json#/$defs/ReconciliationRunFacet"


def source_dataset(source: Source, source_table: str) -> tuple[str, str]:
    """The OpenLineage namespace and name of a source table (its naming conventions)."""
    if isinstance(source, MongoSource):
        first = parse_uri(source.connection_string.get_secret_value(), warn=True)["nodelist"][0]
        return f"mongodb://{first[0]}:{first[1]}", source_table
    return f"postgres://{source.host}:{source.port}", f"{source.database}.{source_table}"


def iceberg_dataset(location: str) -> tuple[str, str]:
    """The OpenLineage namespace and name of a table at *location* (object storage: the bucket
    and the path; a local folder: ``file`` and the path)."""
    parts = urlsplit(location)
    if parts.scheme in ("", "file"):
        return "file", parts.path
    return f"{parts.scheme}://{parts.netloc}", parts.path.lstrip("/")


def catalog_namespace(properties: dict[str, str]) -> str:
    """The catalog's address without the credentials (or query) a SQL catalog's URI may hold."""
    uri = properties.get("uri") or properties.get("warehouse", "")
    address = urlsplit(uri)
    if address.username is None and not address.query:
        return uri
    host = address.hostname or ""
    netloc = f"{host}:{address.port}" if address.port else host
    return address._replace(netloc=netloc, query="", fragment="").geturl()


class Lineage:
    """Sends the lineage events of one pipeline's commits."""

    def __init__(self, config: PipelineConfig, settings: LineageConfig) -> None:
        self._config, self._settings = config, settings
        self._client = OpenLineageClient(config={"transport": _transport(settings)})
        self._reconciled: dict[str, ReconcileResult] = {}
        self._reconciled_at: dict[str, str] = {}
        self._catalog = catalog_namespace(config.iceberg.catalog_properties())

    @classmethod
    def of(cls, config: PipelineConfig) -> Lineage | None:
        return cls(config, config.lineage) if config.lineage else None

    def reconciled(self, results: list[ReconcileResult]) -> None:
        """Remember the tables' latest reconciliations, for the facets of their next commits."""
        now = _now()
        for result in results:
            self._reconciled[result.table], self._reconciled_at[result.table] = result, now

    def merged(self, table: Table, batch: ChangeBatch, result: MergeResult) -> None:
        """Send the event of a merge's commit."""
        counts = {name: getattr(result, name) for name in _COUNTS}
        self._send(batch.table, table.location(), result.snapshot_id, counts, batch.position, batch.offsets)

    def loaded(self, table: Table, branch: str, batch: ChangeBatch) -> None:
        """Send the event of a direct load's (or re-snapshot's) commit of *batch* to *branch*."""
        counts = {**dict.fromkeys(_COUNTS, 0), "events": batch.size, "inserted": batch.size}
        snapshot = table.snapshot_by_name(branch)
        snapshot_id = snapshot.snapshot_id if snapshot else None
        self._send(batch.table, table.location(), snapshot_id, counts, batch.position, batch.offsets)

    def _send(
        self,
        table: str,
        location: str,
        snapshot_id: int | None,
        counts: dict[str, int],
        position: dict[str, Any],
        offsets: dict[str, dict[int, int]],
    ) -> None:
        source, ref = self._config.find_table(table)
        in_namespace, in_name = source_dataset(source, source.source_table(ref))
        out_namespace, out_name = iceberg_dataset(location)
        qualified = f"{self._config.iceberg.namespace}.{table}"
        changed = counts["inserted"] + counts["updated"] + counts["deleted"]
        event = RunEvent(
            eventType=RunState.COMPLETE,
            eventTime=_now(),
            run=Run(
                runId=str(generate_new_uuid()),
                facets={
                    "floe_commit": CommitRunFacet(
                        snapshotId=snapshot_id,
                        sourcePosition=position,
                        kafkaOffsets={
                            t: {str(p): o for p, o in parts.items()} for t, parts in offsets.items()
                        },
                        **counts,
                    ),
                    "floe_reconciliation": self._reconciliation(table),
                },
            ),
            job=Job(namespace=self._settings.namespace, name=f"replicate.{table}"),
            producer=PRODUCER,
            inputs=[InputDataset(namespace=in_namespace, name=in_name)],
            outputs=[
                OutputDataset(
                    namespace=out_namespace,
                    name=out_name,
                    facets={
                        "symlinks": symlinks_dataset.SymlinksDatasetFacet(
                            identifiers=[
                                symlinks_dataset.Identifier(
                                    namespace=self._catalog, name=qualified, type="TABLE"
                                )
                            ]
                        )
                    },
                    outputFacets={"outputStatistics": OutputStatisticsOutputDatasetFacet(rowCount=changed)},
                )
            ],
        )
        try:
            self._client.emit(event)
        except Exception as exc:  # whatever the transport raises, replication goes on
            log.warning(
                "lineage event of table %s (snapshot %s) not sent: %s; check lineage in the pipeline "
                "configuration",
                table,
                snapshot_id,
                masked_line(exc),
            )

    def _reconciliation(self, table: str) -> ReconciliationRunFacet:
        result = self._reconciled.get(table)
        if result is None:
            return ReconciliationRunFacet(outcome="unknown")
        outcome = {True: "pass", False: "fail", None: "not checked"}[result.passed]
        return ReconciliationRunFacet(
            outcome=outcome,
            mode=result.mode,
            sourceCount=result.source_count,
            icebergCount=result.iceberg_count,
            checkedAt=self._reconciled_at[table],
        )


def _transport(settings: LineageConfig) -> dict[str, Any]:
    """The client's transport configuration, as its ``openlineage.yml`` spells it."""
    if settings.file is not None:
        return {"type": "file", "log_file_path": settings.file, "append": True}
    transport: dict[str, Any] = {
        "type": "http",
        "url": settings.url,
        "endpoint": settings.endpoint,
        "timeout": settings.timeout_seconds,
    }
    if settings.api_key is not None:
        transport["auth"] = {"type": "api_key", "apiKey": settings.api_key.get_secret_value()}
    return transport


def _now() -> str:
    return datetime.now(UTC).isoformat()
