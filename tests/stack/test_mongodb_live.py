"""A live MongoDB-protocol source: Debezium's MongoDB connector capturing SecantusDB, the stack's
MongoDB wire-protocol server (not MongoDB itself), through Kafka into Iceberg.

Two sources on the same server: one delivers whole documents on update
(``change_streams_update_full``), the other only the change (``change_streams``), which Floe
applies as a patch to the stored document. Each Iceberg table is compared with the collection
document by document and field by field.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from bson import Decimal128, ObjectId
from pymongo import MongoClient

from floe_cdc.capture.connect_client import ConnectClient
from floe_cdc.capture.mongodb.shape import DocumentShape
from floe_cdc.core.config import PipelineConfig, load_config
from floe_cdc.lake.catalog import open_catalog
from floe_cdc.pipeline.reconciliation import reconcile
from floe_cdc.stack.stack import LocalStack
from tests.mongo_scenario import comparable
from tests.stack.pipeline import catch_up, start_capture

pytestmark = pytest.mark.stack

MODES = {"full": "change_streams_update_full", "patch": "change_streams"}


def _document(n: int) -> dict[str, Any]:
    return {
        "_id": ObjectId(f"65f0c0ffee{n:014x}"),
        "number": n,
        "customer": f"customer {n % 7}",
        "total": Decimal128(Decimal(f"{n}.25")),
        "tags": ["new", f"t{n % 3}"],
        "address": {"city": "Lyon", "zip": f"{69000 + n}"},
        "placed_at": datetime(2024, 3, 1, 12, n % 60, tzinfo=UTC),
    }


def _write_config(stack: LocalStack, directory: Path) -> Path:
    settings = stack.settings
    document = {
        "sources": [
            {
                "kind": "mongodb",
                "name": f"live_{name}",
                "connection_string": stack.mongodb.uri,
                "database": f"live_{name}",
                "collections": [{"name": "orders", "target": f"orders_{name}"}],
                "capture_mode": mode,
            }
            for name, mode in MODES.items()
        ],
        "kafka": {"bootstrap_servers": settings.kafka_bootstrap},
        "connect": {"url": settings.connect_url},
        "iceberg": {"catalog": settings.catalog_properties(), "namespace": "live"},
        "replicate": {"idle_seconds": 2, "max_seconds": 60},
    }
    path = directory / "floe.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def _assert_same_documents(client: MongoClient, config: PipelineConfig) -> None:
    catalog = open_catalog(config.iceberg)
    for source, collection in config.tables():
        table = catalog.load_table((config.iceberg.namespace, collection.target_name))
        shape = DocumentShape(collection.schema_policy, tuple(collection.extract))
        rows = table.scan().to_arrow().to_pylist()
        stored = {doc["_id"]: doc for doc in (comparable(shape.document(row)) for row in rows)}
        found = client[source.database][collection.name].find()
        expected = {doc["_id"]: doc for doc in map(comparable, found)}
        assert stored.keys() == expected.keys(), collection.target_name
        for key, document in expected.items():
            assert stored[key] == document, (collection.target_name, key)


def _change(client: MongoClient, database: str) -> None:
    orders = client[database]["orders"]
    orders.insert_many([_document(n) for n in range(100, 105)])
    orders.update_one({"number": 1}, {"$set": {"customer": "renamed", "address.city": "Paris"}})
    orders.update_one({"number": 2}, {"$inc": {"number": 1000}, "$unset": {"tags": ""}})
    orders.update_one({"number": 3}, {"$push": {"tags": "pushed"}})
    orders.replace_one({"number": 4}, {"number": 4, "customer": "replaced", "total": Decimal128("9.99")})
    orders.update_one({"number": 5}, {"$set": {"customer": "first"}})
    orders.update_one({"number": 5}, {"$set": {"customer": "second"}})
    orders.delete_many({"number": {"$gte": 15, "$lt": 20}})


def test_debezium_captures_secantusdb_snapshot_stream_and_resume(stack: LocalStack, tmp_path: Path):
    assert stack.settings.mongodb, "the test stack runs SecantusDB (FLOE_STACK_MONGODB)"
    client = MongoClient(stack.mongodb.uri, tz_aware=True)
    for name in MODES:
        client.drop_database(f"live_{name}")
        client[f"live_{name}"]["orders"].insert_many([_document(n) for n in range(20)])
    path = _write_config(stack, tmp_path)
    config = load_config(path)
    start_capture(config)

    rows = catch_up(path)
    assert {name: row["inserted"] for name, row in rows.items()} == {"orders_full": 20, "orders_patch": 20}
    _assert_same_documents(client, config)

    for name in MODES:
        _change(client, f"live_{name}")
    catch_up(path)
    _assert_same_documents(client, config)

    # Stopped connectors miss nothing written meanwhile, and resume without a new snapshot.
    with ConnectClient(config.connect.url) as connect:
        for source in config.sources:
            connect.pause(source.connector_name)
        for name in MODES:
            orders = client[f"live_{name}"]["orders"]
            orders.insert_one(_document(200))
            orders.update_one({"number": 6}, {"$set": {"customer": "while paused"}})
            orders.delete_one({"number": 7})
        for source in config.sources:
            connect.restart(source.connector_name)
            connect.resume(source.connector_name)
            connect.wait_running(source.connector_name)
    rows = catch_up(path)
    # Three changes per source while paused, and no snapshot read again.
    assert all(3 <= row["events"] < 10 for row in rows.values()), f"resumed without a new snapshot: {rows}"
    _assert_same_documents(client, config)

    results = reconcile(config)
    assert all(result.passed for result in results), results
    assert {result.source_count for result in results} == {client["live_full"]["orders"].count_documents({})}
    client.close()
