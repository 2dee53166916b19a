from pydantic import SecretStr

from cdc.connectors import render, render_postgres
from floe.config import CollectionRef, MongoSource, PostgresSource, TableRef


def test_postgres_connector_properties():
    source = PostgresSource(
        name="shop",
        database="shop",
        user="floe",
        password=SecretStr("pw"),
        tables=[TableRef(name="public.orders"), TableRef(name="sales.order_lines")],
        connector_overrides={"max.batch.size": "1024"},
    )
    config = render_postgres(source)
    assert config["table.include.list"] == r"public\.orders,sales\.order_lines"
    assert config["plugin.name"] == "pgoutput"
    assert config["publication.autocreate.mode"] == "filtered"
    assert config["slot.name"] == "floe_shop" and config["publication.name"] == "floe_shop"
    assert config["topic.prefix"] == "floe.shop"
    assert config["value.converter.schemas.enable"] == "true"
    assert config["column.propagate.source.type"] == ".*"
    assert config["skipped.operations"] == "none"
    assert config["max.batch.size"] == "1024"
    assert config["database.password"] == "pw"


def test_mongodb_connector_properties():
    source = MongoSource(
        kind="mongodb",
        name="docs",
        connection_string=SecretStr("mongodb://u:pw@db1/?replicaSet=rs0"),
        database="shop",
        collections=[CollectionRef(name="orders"), CollectionRef(name="click.events")],
    )
    config = render(source)
    assert config["connector.class"] == "io.debezium.connector.mongodb.MongoDbConnector"
    assert config["mongodb.connection.string"] == "mongodb://u:pw@db1/?replicaSet=rs0"
    assert config["collection.include.list"] == r"shop\.orders,shop\.click\.events"
    assert (config["capture.scope"], config["capture.target"]) == ("database", "shop")
    assert config["capture.mode"] == "change_streams_update_full"
    assert config["topic.prefix"] == "floe.docs"
    assert config["key.converter.schemas.enable"] == config["value.converter.schemas.enable"] == "true"
