"""Reconciliation of MongoDB collections: Soda on the real Iceberg table, pymongo as far as it runs
without a server (no MongoDB server can be installed here; see the README)."""

from __future__ import annotations

import pytest

from floe_cdc.core.config import MongoSource, PipelineConfig
from floe_cdc.pipeline.reconciliation import reconcile
from floe_cdc.pipeline.replay import replay_quarantined
from floe_cdc.pipeline.replication import Replicator, TableChanges
from floe_cdc.reconcile.mongo_counts import SourceCountError, count_documents
from tests.mongo_scenario import EXPECTED, batches

PASSWORD = "pw-never-shown"
UNREACHABLE = f"mongodb://floe:{PASSWORD}@127.0.0.1:9/?replicaSet=rs0&serverSelectionTimeoutMS=300"


@pytest.fixture
def config(tmp_path) -> PipelineConfig:
    return PipelineConfig.model_validate(
        {
            "sources": [
                {
                    "kind": "mongodb",
                    "name": "mg",
                    "connection_string": UNREACHABLE,
                    "database": "shop",
                    "collections": ["orders"],
                }
            ],
            "kafka": {"bootstrap_servers": "127.0.0.1:9"},
            "connect": {"url": "http://127.0.0.1:9"},
            "iceberg": {
                "catalog_uri": f"sqlite:///{tmp_path}/catalog.db",
                "warehouse": (tmp_path / "wh").as_uri(),
                "namespace": "ns",
            },
        }
    )


def _replicate(config: PipelineConfig) -> None:
    with Replicator(config) as replicator:
        for records in batches("floe.mg.shop.orders"):
            changes = TableChanges(records, replicator.decode_table("orders", records))
            replicator.merge(changes, replicator.checkpoints()["orders"])


def test_document_count_is_checked_by_soda_against_the_iceberg_table(config):
    _replicate(config)
    counted: list[tuple[str, list[str]]] = []

    def counter(source: MongoSource, collections: list[str]) -> dict[str, int]:
        counted.append((source.name, collections))
        return {"orders": len(EXPECTED) + extra}

    extra = 0
    [result] = reconcile(config, counter=counter)
    assert (result.source_table, result.source_count, result.iceberg_count, result.passed) == (
        "shop.orders",
        6,
        6,
        True,
    )
    assert result.quarantined == 2  # the poison event and the patch of an unknown document
    extra = 1
    [result] = reconcile(config, counter=counter)
    assert (result.source_count, result.iceberg_count, result.passed) == (7, 6, False)
    assert counted == [("mg", ["orders"])] * 2


def test_an_unreachable_replica_set_is_a_clear_error_without_the_password(config):
    source = config.sources[0]
    with pytest.raises(SourceCountError) as caught:
        count_documents(source, ["orders"])
    message = str(caught.value)
    assert message.startswith("cannot reach MongoDB source mg to count its documents: 127.0.0.1:9")
    assert PASSWORD not in message


def test_reconcile_reports_the_count_error_per_collection(config):
    _replicate(config)
    [result] = reconcile(config)
    assert result.passed is None and "cannot reach MongoDB source mg" in result.error
    assert PASSWORD not in result.error


def test_quarantined_mongodb_events_replay_through_the_document_decoder(config):
    _replicate(config)
    [outcome] = replay_quarantined(config)
    # The patch of a document never seen still has no base; the poison event was superseded.
    assert (outcome.table, outcome.replayed, outcome.still_failing) == ("orders", 0, 2)
