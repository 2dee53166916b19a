"""MongoDB sources on the real stack, as far as it goes without a MongoDB server.

- The rendered connector configuration is validated by Debezium's own MongoDB connector, loaded
  in the stack's Kafka Connect worker. The only error left is the connection to the server.
- Events in the exact form Debezium's MongoDB connector writes go through the real broker into
  the replicate flow. Each Iceberg table (one typed, one raw) is then compared with the expected
  documents field by field.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from floe_cdc.capture.connect_client import ConnectClient
from floe_cdc.capture.connectors import MONGODB_CONNECTOR, render
from floe_cdc.capture.mongodb.shape import DocumentShape
from floe_cdc.core.config import PipelineConfig, load_config
from floe_cdc.core.errors import ConnectError, ReplicationStopped
from floe_cdc.flows.replicate import replicate
from floe_cdc.lake import quarantine
from floe_cdc.lake.catalog import open_catalog
from floe_cdc.pipeline.reconciliation import reconcile as reconcile_tables
from floe_cdc.stack.stack import LocalStack
from tests.mongo_scenario import batches, comparable, expected_documents
from tests.stack.pipeline import start_capture

pytestmark = pytest.mark.stack

PASSWORD = "m0ngo-pw-hidden"
# Nothing listens on port 9: every connection attempt fails fast (serverSelectionTimeoutMS).
URI = f"mongodb://floe:{PASSWORD}@127.0.0.1:9/?replicaSet=rs0&serverSelectionTimeoutMS=2000"
COLLECTIONS = {"orders": {"name": "orders"}, "orders_raw": {"name": "orders_raw", "schema_policy": "raw"}}


@pytest.fixture(scope="module")
def mongo_config(stack: LocalStack, tmp_path_factory: pytest.TempPathFactory) -> Path:
    settings = stack.settings
    document = {
        "sources": [
            {
                "kind": "mongodb",
                "name": "mg",
                "connection_string": URI,
                "database": "shop",
                "collections": list(COLLECTIONS.values()),
            }
        ],
        "kafka": {"bootstrap_servers": settings.kafka_bootstrap},
        "connect": {"url": settings.connect_url},
        "iceberg": {
            "catalog": stack.settings.catalog_properties(),
            "namespace": "mg",
        },
        "replicate": {"idle_seconds": 2, "max_seconds": 60},
    }
    path = tmp_path_factory.mktemp("mongodb") / "floe.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def test_debeziums_mongodb_connector_accepts_the_rendered_config(mongo_config: Path):
    config = load_config(mongo_config)
    source = config.sources[0]
    properties = {**render(source, config.kafka), "name": source.connector_name}
    with ConnectClient(config.connect.url, timeout_seconds=60) as client:
        assert any(p["class"] == MONGODB_CONNECTOR for p in client.plugins())
        errors = client.validate(MONGODB_CONNECTOR, properties)
        # Validation always tries the server: with none here, only the connection fails.
        assert list(errors) == ["mongodb.connection.string"]
        wrong = client.validate(MONGODB_CONNECTOR, {**properties, "capture.mode": "full_document"})
        assert "capture.mode" in wrong
    with pytest.raises(ConnectError) as caught:
        start_capture(config)
    assert "mongodb.connection.string" in str(caught.value)
    assert PASSWORD not in str(caught.value)


def _produce(config: PipelineConfig, topics: list[str], records: list) -> None:
    servers = config.kafka.bootstrap_servers
    AdminClient({"bootstrap.servers": servers}).create_topics(
        [NewTopic(topic, num_partitions=1, replication_factor=1) for topic in topics]
    )
    producer = Producer({"bootstrap.servers": servers, "enable.idempotence": True})
    for record in records:
        producer.produce(
            record.topic, key=record.key, value=record.value, partition=0, timestamp=record.timestamp or 0
        )
    assert producer.flush(30) == 0


def test_debezium_mongodb_events_replicate_through_the_broker(mongo_config: Path):
    config = load_config(mongo_config)
    source = config.sources[0]
    topics = {c.name: source.topic_for(c) for c in source.collections}
    per_topic = {name: batches(topic, collection=name) for name, topic in topics.items()}
    # No connector runs (no MongoDB here): each run merges what Kafka holds, then fails naming it.
    missing = f"connector {source.connector_name} of source mg does not exist: run 'floe connectors apply'"
    for step in range(3):
        _produce(config, list(topics.values()), [r for name in topics for r in per_topic[name][step]])
        with pytest.raises(ReplicationStopped) as stopped:
            replicate(config_path=str(mongo_config))
        assert str(stopped.value) == missing

    catalog = open_catalog(config.iceberg)
    for name, collection in zip(COLLECTIONS, source.collections, strict=True):
        table = catalog.load_table(("mg", name))
        shape = DocumentShape(collection.schema_policy, tuple(collection.extract))
        documents = sorted(
            (comparable(shape.document(row)) for row in table.scan().to_arrow().to_pylist()),
            key=lambda doc: repr(doc["_id"]),
        )
        expected = expected_documents(collection.schema_policy)
        assert len(documents) == len(expected)
        for actual, wanted in zip(documents, expected, strict=True):
            assert actual.keys() == wanted.keys(), wanted["_id"]
            for field in wanted:
                assert actual[field] == wanted[field], (name, wanted["_id"], field)
        position = json.loads(table.current_snapshot().summary["floe.source-position"])
        assert (position["ts_ms"], position["ord"]) == (1_700_000_061_000, 1)

    quarantined = quarantine.open_quarantine(catalog, config.iceberg)
    entries = quarantine.entries(quarantined, list(COLLECTIONS), status=None)
    found = {(entry["table"], entry["error"].split(" ")[0], entry["status"]) for entry in entries.to_pylist()}
    # The poison event shares its key with the first order, changed again later: superseded. The
    # patch of a document Floe never saw waits for a re-snapshot and a replay.
    assert found == {
        (name, reason, status)
        for name in COLLECTIONS
        for reason, status in (("cannot", "superseded"), ("update", "pending"))
    }
    # The reconciliation says plainly that the source could not be counted.
    checks = reconcile_tables(config)
    assert {check.table for check in checks} == set(COLLECTIONS)
    assert all(check.error.startswith("cannot reach MongoDB source mg") for check in checks), checks
