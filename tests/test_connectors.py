import http.server
import socket
import threading
from typing import ClassVar

import pytest
from pydantic import SecretStr

from floe_cdc.capture.connect_client import ConnectClient, failure_of
from floe_cdc.capture.connectors import MONGODB_CONNECTOR, render, render_postgres
from floe_cdc.core.config import CollectionRef, KafkaConfig, MongoSource, PostgresSource, TableRef
from floe_cdc.core.errors import ConnectRejected, ConnectUnavailable, Terminal


def test_postgres_connector_properties():
    source = PostgresSource(
        name="shop",
        database="shop",
        user="floe",
        password=SecretStr("pw"),
        tables=[
            TableRef(name="public.orders"),
            TableRef(name="sales.order_lines"),
            TableRef(name="Sales Ünit.Order (2024)+"),
            TableRef(name='"sales.eu"."Say ""hi"", now "'),
        ],
        connector_overrides={"max.batch.size": "1024"},
    )
    config = render_postgres(source, KafkaConfig(bootstrap_servers="kafka:9092"))
    # Include lists are regular expressions: every name matches exactly itself, case-sensitively.
    assert config["table.include.list"].split(",(") == [
        r"(?-i:public\.orders)",
        r"?-i:sales\.order_lines)",
        r"?-i:Sales[ ]Ünit\.Order[ ]\(2024\)\+)",
        r'?-i:sales\.eu\.Say[ ]"hi"\,[ ]now[ ])',
    ]
    assert config["plugin.name"] == "pgoutput"
    assert config["publication.autocreate.mode"] == "disabled"
    assert config["slot.name"] == "floe_shop" and config["publication.name"] == "floe_shop"
    assert config["topic.prefix"] == "floe.shop"
    assert config["value.converter.schemas.enable"] == "true"
    assert config["column.propagate.source.type"] == ".*"
    assert config["skipped.operations"] == "none"
    assert config["max.batch.size"] == "1024"
    assert config["database.password"] == "pw"
    # Multi-MB rows fit by default: producer requests, its buffer and the topics created.
    assert config["producer.override.max.request.size"] == str(32 * 1024 * 1024)
    assert int(config["producer.override.buffer.memory"]) > int(config["producer.override.max.request.size"])
    assert config["topic.creation.default.max.message.bytes"] == config["producer.override.max.request.size"]


def test_mongodb_connector_properties():
    source = MongoSource(
        kind="mongodb",
        name="docs",
        connection_string=SecretStr("mongodb://u:pw@db1/?replicaSet=rs0"),
        database="shop",
        collections=[CollectionRef(name="orders"), CollectionRef(name="click.events")],
    )
    config = render(source, KafkaConfig(bootstrap_servers="kafka:9092"))
    assert config["connector.class"] == "io.debezium.connector.mongodb.MongoDbConnector"
    assert config["mongodb.connection.string"] == "mongodb://u:pw@db1/?replicaSet=rs0"
    assert config["collection.include.list"] == r"(?-i:shop\.orders),(?-i:shop\.click\.events)"
    assert (config["capture.scope"], config["capture.target"]) == ("database", "shop")
    assert config["capture.mode"] == "change_streams_update_full"
    assert config["topic.prefix"] == "floe.docs"
    assert config["key.converter.schemas.enable"] == config["value.converter.schemas.enable"] == "true"


def test_a_connect_worker_that_does_not_answer_in_time_is_named_with_the_way_out():
    with socket.socket() as listener:  # accepts connections, never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with ConnectClient(url, timeout_seconds=0.3) as client, pytest.raises(ConnectUnavailable) as caught:
            client.validate(MONGODB_CONNECTOR, {"name": "x"})
    assert "did not answer PUT /connector-plugins/MongoDbConnector/config/validate" in str(caught.value)
    assert "connect.timeout_seconds" in str(caught.value)


def test_an_unreachable_connect_worker_names_the_setting():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    with ConnectClient(f"http://127.0.0.1:{port}") as client, pytest.raises(ConnectUnavailable) as caught:
        client.connectors()
    assert "check connect.url" in str(caught.value)


def test_a_failed_task_is_named_with_its_first_trace_line_and_the_way_out():
    running = {"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "RUNNING"}]}
    assert failure_of("floe-shop", running) is None
    trace = (
        "org.apache.kafka.connect.errors.ConnectException: Unrecoverable exception from producer send\n"
        "Caused by: org.apache.kafka.common.errors.RecordTooLargeException: The message is 1612231 bytes"
    )
    failed = {"connector": {"state": "RUNNING"}, "tasks": [{"id": 0, "state": "FAILED", "trace": trace}]}
    message = failure_of("floe-shop", failed)
    assert message.startswith("connector floe-shop: task 0 FAILED: org.apache.kafka.connect.errors.Connect")
    assert "(Caused by: org.apache.kafka.common.errors.RecordTooLargeException: The message is" in message
    assert "producer.override.max.request.size" in message and "max.message.bytes" in message
    assert "floe connectors apply" in message


class _Worker(http.server.BaseHTTPRequestHandler):
    """A Connect worker that answers 409 (rebalancing), then 500 "a rebalance is expected" (Connect's
    RebalanceNeededException), then serves; 400 for a bad config."""

    answers: ClassVar[list[int]] = [409, 500, 200]

    def do_GET(self) -> None:
        status = self.answers.pop(0) if self.path == "/connectors" else 400
        messages = {
            200: b'["floe-shop"]',
            409: b'{"message": "Cannot complete request momentarily due to stale configuration"}',
            500: b'{"message": "Request cannot be completed because a rebalance is expected"}',
        }
        body = messages.get(status, b'{"message": "nope"}')
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def test_rebalancing_is_retried_and_a_rejection_is_terminal():
    server = http.server.HTTPServer(("127.0.0.1", 0), _Worker)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with ConnectClient(f"http://127.0.0.1:{server.server_port}", timeout_seconds=10) as client:
            assert client.connectors() == ["floe-shop"]  # after a 409 and a 500 naming a rebalance
            with pytest.raises(ConnectRejected) as caught:
                client.version()
    finally:
        server.shutdown()
    assert isinstance(caught.value, Terminal) and "(400): nope" in str(caught.value)
