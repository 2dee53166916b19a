from pathlib import Path

import pytest
from pydantic import SecretStr

from floe_cdc.core.config import load_config, split_table_name
from floe_cdc.core.errors import ConfigError
from floe_cdc.core.secrets import mask

VALID = """
sources:
  - name: shop
    database: shop
    user: floe
    password: ${TEST_FLOE_SECRET}
    port: ${TEST_FLOE_PORT:-5433}
    tables: [public.orders, {name: sales.orders, target: sales_orders}]
kafka: {bootstrap_servers: "127.0.0.1:9092"}
connect: {url: "http://127.0.0.1:8083"}
iceberg:
  catalog_uri: "sqlite:///cat.db"
  warehouse: warehouse
  namespace: shop
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "floe.yaml"
    path.write_text(text)
    return path


def test_valid_config_interpolates_env_and_resolves_warehouse(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_FLOE_SECRET", "s3cret-value")
    config = load_config(write(tmp_path, VALID))
    source = config.sources[0]
    assert source.port == 5433
    assert source.password.get_secret_value() == "s3cret-value"
    assert "s3cret-value" not in repr(config)
    assert config.iceberg.warehouse == (tmp_path / "warehouse").as_uri()
    assert [t.target_name for _, t in config.tables()] == ["orders", "sales_orders"]
    assert source.topic_for(source.tables[1]) == "floe.shop.sales.orders"
    assert source.slot == "floe_shop"


def test_missing_env_var_names_the_key_and_variable(tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_FLOE_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"sources\[0\]\.password: environment variable TEST_FLOE_SECRET"):
        load_config(write(tmp_path, VALID))


def test_invalid_value_names_the_key(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_FLOE_SECRET", "x")
    monkeypatch.setenv("TEST_FLOE_PORT", "not-a-port")
    with pytest.raises(ConfigError, match=r"sources\[0\]\.port: Input should be a valid integer"):
        load_config(write(tmp_path, VALID))


def test_duplicate_targets_are_rejected(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_FLOE_SECRET", "x")
    text = VALID.replace("{name: sales.orders, target: sales_orders}", "sales.orders")
    with pytest.raises(ConfigError, match="'orders' is the target of both"):
        load_config(write(tmp_path, text))


def test_unqualified_table_and_unknown_key(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_FLOE_SECRET", "x")
    text = VALID.replace("public.orders,", "orders,").replace(
        "namespace: shop", "namespace: shop\n  colour: red"
    )
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    message = str(error.value)
    assert "must be schema.table" in message
    assert "iceberg.colour: unknown key 'colour' (allowed: catalog_name, catalog, catalog_uri" in message


def test_unknown_key_names_the_key_probably_meant(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_FLOE_SECRET", "pw")
    text = VALID.replace("    user: floe", "    user: floe\n    slot: mine").replace(
        "kafka: {", "kafka: {bootstrap: x, "
    )
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text + "replicat: {}\n"))
    message = str(error.value)
    assert "sources[0].slot: unknown key 'slot'; did you mean 'slot_name'?" in message
    assert "kafka.bootstrap: unknown key 'bootstrap'; did you mean 'bootstrap_servers'?" in message
    assert "replicat: unknown key 'replicat'; did you mean 'replicate'?" in message


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")


MONGO = """
sources:
  - kind: mongodb
    name: docs
    connection_string: ${TEST_FLOE_MONGO_URI}
    database: shop
    collections: [orders, {name: click-events, schema_policy: raw, extract: [type, at]}]
kafka: {bootstrap_servers: "127.0.0.1:9092"}
connect: {url: "http://127.0.0.1:8083"}
iceberg: {catalog_uri: "sqlite:///cat.db", warehouse: warehouse, namespace: shop}
"""


def test_mongodb_source_with_collections_and_policies(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_FLOE_MONGO_URI", "mongodb://floe:m0ng0-secret@db1,db2/?replicaSet=rs0")
    config = load_config(write(tmp_path, MONGO))
    source = config.sources[0]
    orders, events = source.collections
    assert (orders.schema_policy, events.schema_policy, events.extract) == ("typed", "raw", ["type", "at"])
    assert events.target_name == "click_events"
    assert source.topic_for(events) == "floe.docs.shop.click-events"
    assert config.find_table("shop.orders") == (source, orders)
    assert "m0ng0-secret" in source.secrets


def test_mongodb_errors_name_the_key_and_never_show_the_connection_string(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_FLOE_MONGO_URI", "http://floe:m0ng0-secret@db1")
    text = MONGO.replace("extract: [type, at]", "extract: [_doc]")
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    message = str(caught.value)
    assert "sources[0].connection_string: Value error, not a valid MongoDB connection string" in message
    assert "sources[0].collections[1]: Value error, extract cannot name ['_doc']" in message
    assert "m0ng0-secret" not in message


def test_any_postgres_name_gets_debeziums_topic_and_a_plain_iceberg_name(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_FLOE_SECRET", "pw")
    text = VALID.replace("tables: [public.orders, ", 'tables: ["Sales Ünit.Order Items", "public.User", ')
    config = load_config(write(tmp_path, text))
    source = config.sources[0]
    assert [t.target_name for t in source.tables] == ["order_items", "user", "sales_orders"]
    # Debezium replaces each character a topic cannot hold with '_', and keeps capitals.
    assert source.topic_for(source.tables[0]) == "floe.shop.Sales__nit.Order_Items"
    assert source.topic_for(source.tables[1]) == "floe.shop.public.User"


def test_tables_that_would_share_a_topic_are_refused(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_FLOE_SECRET", "pw")
    text = VALID.replace(
        "tables: [public.orders, {name: sales.orders, target: sales_orders}]",
        'tables: ["public.My Table", {name: public.My_Table, target: other}]',
    )
    with pytest.raises(ConfigError) as error:
        load_config(write(tmp_path, text))
    assert "would share the Kafka topic floe.shop.public.My_Table" in str(error.value)


@pytest.mark.parametrize(
    ("written", "schema", "table"),
    [
        ("public.orders", "public", "orders"),
        ("Sales Ünit.Order Items", "Sales Ünit", "Order Items"),
        ('"sales.eu".orders', "sales.eu", "orders"),
        ('"sales.eu"."Say ""hi"", now"', "sales.eu", 'Say "hi", now'),
        ('public."a.b.c"', "public", "a.b.c"),
    ],
)
def test_table_names_split_as_sql_quotes_them(written, schema, table):
    assert split_table_name(written) == (schema, table)


@pytest.mark.parametrize("written", ["orders", "a.b.c", '"a.b', 'public.""x"""', ".orders", "public."])
def test_table_names_that_are_not_schema_dot_table_are_refused(written):
    with pytest.raises(ValueError, match=r"schema\.table|double quote"):
        split_table_name(written)


def test_catalog_properties_reach_pyiceberg_and_their_secrets_are_masked(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_FLOE_SECRET", "pw")
    text = VALID.replace(
        '  catalog_uri: "sqlite:///cat.db"\n  warehouse: warehouse\n',
        "  catalog:\n    type: rest\n    uri: http://catalog:8181\n    warehouse: floe\n"
        "    credential: key:s3cr3t-cred\n    s3.secret-access-key: s3cr3t-key\n"
        "    s3.access-key-id: floe\n    s3.path-style-access: true\n",
    )
    config = load_config(write(tmp_path, text))
    properties = config.iceberg.catalog_properties()
    assert properties["type"] == "rest" and properties["warehouse"] == "floe"
    assert properties["s3.path-style-access"] == "true"
    assert "s3cr3t" not in repr(config)
    assert mask("got key:s3cr3t-cred and s3cr3t-key") == "got ******** and ********"
    # A key id and a URI without a password stay readable in logs; a URI with one does not.
    assert mask("floe at http://catalog:8181") == "floe at http://catalog:8181"
    assert (
        "postgresql://u:pw@db/c"
        in config.iceberg.model_copy(update={"catalog": {"uri": SecretStr("postgresql://u:pw@db/c")}}).secrets
    )


def test_the_sql_shorthand_and_a_local_warehouse(tmp_path, monkeypatch):
    monkeypatch.setenv("TEST_FLOE_SECRET", "pw")
    properties = load_config(write(tmp_path, VALID)).iceberg.catalog_properties()
    assert properties == {
        "type": "sql",
        "uri": "sqlite:///cat.db",
        "warehouse": (tmp_path / "warehouse").as_uri(),
    }
    both = VALID.replace("  warehouse: warehouse\n", "  warehouse: warehouse\n  catalog: {type: sql}\n")
    with pytest.raises(ConfigError, match=r"either catalog .* or catalog_uri and warehouse, not both"):
        load_config(write(tmp_path, both))
    neither = VALID.replace('  catalog_uri: "sqlite:///cat.db"\n', "")
    with pytest.raises(ConfigError, match="set catalog"):
        load_config(write(tmp_path, neither))
