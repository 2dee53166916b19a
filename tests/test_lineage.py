"""OpenLineage events of a replicator's commits, received by a local HTTP server (as Marquez
would) or appended to a file, and validated (``tests.lineage_events``); no other services: a
SQLite catalog on the local filesystem."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr

from floe_cdc.core.config import LineageConfig, load_config
from floe_cdc.core.errors import ConfigError
from floe_cdc.pipeline.lineage import catalog_namespace
from floe_cdc.pipeline.replication import Replicator
from floe_cdc.reconcile.reconcile import ReconcileResult
from tests.debezium_events import event, field
from tests.lineage_events import valid
from tests.shop import TOPIC, cycle

ITEM = [field("id", "int64", "INT8", optional=False), field("code", "int32", "INT4")]


def columns(source, table) -> dict[str, int]:
    return {"id": 1, "code": 2}


def _change(offset: int, op: str, item: int, code: int | None = None):
    row = {"id": item, "code": code} if op != "d" else {"id": item}
    return event(TOPIC, offset, "public.items", ITEM, ["id"], op, row, (70 + offset, 1000 + offset))


@pytest.fixture
def endpoint() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A lineage endpoint on loopback: the URL and the events posted to it, with their headers."""
    received: list[dict[str, Any]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(
                {"path": self.path, "auth": self.headers.get("Authorization"), **json.loads(body)}
            )
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", received
    finally:
        server.shutdown()
        server.server_close()


def _config(shop_config, lineage: LineageConfig):
    return load_config(shop_config("fail")).model_copy(update={"lineage": lineage})


def test_each_commit_sends_one_valid_event_from_the_source_table_to_the_iceberg_table(shop_config, endpoint):
    url, received = endpoint
    config = _config(shop_config, LineageConfig(url=url, api_key=SecretStr("lineage-key")))
    with Replicator(config, column_lookup=columns) as replicator:
        cycle(replicator, [_change(0, "c", 1, 7), _change(1, "c", 2, 8)])
        replicator.lineage.reconciled([ReconcileResult("items", "public.items", 2, 2, True, mode="exact")])
        cycle(replicator, [_change(2, "u", 1, 9), _change(3, "d", 2)])
        table = replicator.load("items")
        snapshots = [s.snapshot_id for s in table.metadata.snapshots]
    assert len(received) == 2
    first, second = (valid(e) for e in received)
    assert first["path"] == "/api/v1/lineage" and first["auth"] == "Bearer lineage-key"
    assert first["eventType"] == "COMPLETE"
    assert (first["job"]["namespace"], first["job"]["name"]) == ("floe", "replicate.items")
    assert first["inputs"][0]["namespace"] == "postgres://127.0.0.1:5432"
    assert first["inputs"][0]["name"] == "shop.public.items"
    output = first["outputs"][0]
    assert output["namespace"] == "file" and output["name"] == table.location().removeprefix("file://")
    assert output["facets"]["symlinks"]["identifiers"] == [
        {
            "namespace": config.iceberg.catalog_uri.get_secret_value(),
            "name": "ns.items",
            "type": "TABLE",
        }
    ]
    commit = first["run"]["facets"]["floe_commit"]
    assert (commit["events"], commit["inserted"], commit["updated"], commit["deleted"]) == (2, 2, 0, 0)
    assert commit["kafkaOffsets"] == {TOPIC: {"0": 2}} and commit["snapshotId"] == snapshots[0]
    assert commit["sourcePosition"]["lsn"] == 1001
    assert first["run"]["facets"]["floe_reconciliation"]["outcome"] == "unknown"
    commit = second["run"]["facets"]["floe_commit"]
    assert (commit["events"], commit["inserted"], commit["updated"], commit["deleted"]) == (2, 0, 1, 1)
    assert commit["kafkaOffsets"] == {TOPIC: {"0": 4}} and commit["snapshotId"] == snapshots[-1]
    reconciliation = second["run"]["facets"]["floe_reconciliation"]
    assert (reconciliation["outcome"], reconciliation["sourceCount"], reconciliation["mode"]) == (
        "pass",
        2,
        "exact",
    )
    assert first["run"]["runId"] != second["run"]["runId"]
    assert output["outputFacets"]["outputStatistics"]["rowCount"] == 2


def test_events_can_go_to_a_file_one_json_line_each(shop_config, tmp_path):
    path = tmp_path / "lineage" / "events.jsonl"
    path.parent.mkdir()
    config = _config(shop_config, LineageConfig(file=str(path)))
    with Replicator(config, column_lookup=columns) as replicator:
        cycle(replicator, [_change(0, "c", 1, 7)])
        cycle(replicator, [_change(1, "c", 2, 8)])
    events = [valid(json.loads(line)) for line in path.read_text().splitlines()]
    assert [e["run"]["facets"]["floe_commit"]["kafkaOffsets"] for e in events] == [
        {TOPIC: {"0": 1}},
        {TOPIC: {"0": 2}},
    ]


def test_a_lineage_endpoint_that_is_down_never_stops_replication(shop_config, caplog):
    config = _config(shop_config, LineageConfig(url="http://127.0.0.1:9", api_key=SecretStr("lineage-key")))
    with caplog.at_level(logging.WARNING), Replicator(config, column_lookup=columns) as replicator:
        cycle(replicator, [_change(0, "c", 1, 7)])
        assert replicator.checkpoints()["items"].offsets == {TOPIC: {0: 1}}
    warning = [r.getMessage() for r in caplog.records if "lineage event" in r.getMessage()]
    assert len(warning) == 1 and "table items" in warning[0] and "check lineage" in warning[0]
    assert "lineage-key" not in caplog.text


def test_the_catalog_is_named_without_its_credentials():
    uri = "postgresql+psycopg2://floe:very-secret@db.internal:5432/catalog?sslmode=require"
    assert catalog_namespace({"uri": uri}) == "postgresql+psycopg2://db.internal:5432/catalog"
    assert catalog_namespace({"uri": "http://rest:8181"}) == "http://rest:8181"


def test_lineage_needs_exactly_one_destination(shop_config, tmp_path):
    path = shop_config("fail")
    text = path.read_text()
    for lineage in ("lineage: {namespace: floe}\n", "lineage: {url: 'http://m:5000', file: e.jsonl}\n"):
        path.write_text(text + lineage)
        with pytest.raises(ConfigError, match=r"lineage: .*set exactly one of url"):
            load_config(path)
    path.write_text(text)
    assert load_config(path).lineage is None
