"""Columns left out or hashed at capture: the connector's options, the hash the direct load
writes, the checks of the lists, and the configuration's refusals (no services)."""

from __future__ import annotations

import hashlib
import re

import pyarrow as pa
import pytest
import yaml
from pydantic import SecretStr

from floe_cdc.capture.connectors import render
from floe_cdc.capture.masking import declared_length, hash_values, masking_problems
from floe_cdc.core.config import (
    CollectionRef,
    KafkaConfig,
    MongoSource,
    PostgresSource,
    TableRef,
    load_config,
)
from floe_cdc.core.errors import ConfigError
from floe_cdc.reconcile.row_hashes import layout

SALT = "a-salt-of-16-chars"
KAFKA = KafkaConfig(bootstrap_servers="kafka:9092")


def _source(**tables: dict) -> PostgresSource:
    refs = [TableRef(name=name, **options) for name, options in tables.items()]
    return PostgresSource(
        name="shop",
        database="shop",
        user="floe",
        password=SecretStr("pw"),
        tables=refs,
        hash_salt=SecretStr(SALT),
    )


def test_the_connector_leaves_out_and_hashes_exactly_the_listed_columns():
    source = _source(
        **{
            "public.people": {"exclude": ["ssn", "tax.id"], "hash": ["email"]},
            "public.orders": {"hash": ["note"]},
            "public.items": {},
        }
    )
    config = render(source, KAFKA)
    assert config["column.exclude.list"] == r"(?-i:public\.people\.ssn),(?-i:public\.people\.tax\.id)"
    hashed = f"column.mask.hash.v2.SHA-256.with.salt.{SALT}"
    assert config[hashed] == r"(?-i:public\.people\.email),(?-i:public\.orders\.note)"
    # Debezium applies the first column mapper that matches: the source type's propagation would
    # keep a hashed column from being hashed.
    propagated = re.compile(config["column.propagate.source.type"])
    assert [n for n in ("public.people.email", "public.orders.note") if propagated.fullmatch(n)] == []
    assert propagated.fullmatch("public.people.ssn") and propagated.fullmatch("public.people.email2")
    plain = render(_source(**{"public.items": {}}), KAFKA)
    assert not [key for key in plain if key.startswith("column.mask") or key == "column.exclude.list"]


def test_a_mongodb_source_leaves_out_fields_by_name():
    source = MongoSource(
        name="docs",
        kind="mongodb",
        connection_string=SecretStr("mongodb://h:27017/?replicaSet=rs0"),
        database="app",
        collections=[CollectionRef(name="users", exclude=["password_hash", "ssn"]), CollectionRef(name="x")],
    )
    assert render(source, KAFKA)["field.exclude.list"] == "app.users.password_hash,app.users.ssn"


def test_the_direct_load_hashes_as_debezium_v2_does():
    values = pa.chunked_array([["alice@example.com", None, "", "héllo ☃"]])
    hashed = hash_values(values, SALT, 40).to_pylist()
    expected = hashlib.sha256((SALT + "alice@example.com").encode("utf-8")).hexdigest()[:40]
    assert hashed[0] == expected and len(hashed[0]) == 40
    assert hashed[1] is None
    assert hashed[2] == hashlib.sha256(SALT.encode()).hexdigest()[:40]
    assert hashed[3] == hashlib.sha256((SALT + "héllo ☃").encode("utf-8")).hexdigest()[:40]
    assert len(hash_values(values, SALT, None).to_pylist()[0]) == 64
    assert (declared_length("VARCHAR(12)"), declared_length("BPCHAR(3)"), declared_length("TEXT")) == (
        12,
        3,
        None,
    )


def test_a_missing_key_or_non_text_column_is_refused_with_the_fix():
    table = TableRef(name="public.people", exclude=["id", "nope"], hash=["born", "email"])
    columns = {"id": ("INT4", True), "born": ("DATE", False), "email": ("VARCHAR", False)}
    problems = masking_problems(table, "sources[0].tables[0]", columns)
    assert problems == [
        "column id of table public.people is part of its primary key, which cannot be excluded (changes "
        "would no longer find their rows); remove it from sources[0].tables[0].exclude",
        "table public.people has no column nope (sources[0].tables[0].exclude); correct or remove it",
        "column born of table public.people is DATE: hash applies to text columns (text, varchar, char); "
        "move it to sources[0].tables[0].exclude",
    ]


def _write(tmp_path, source: dict) -> None:
    document = {
        "sources": [{"name": "shop", "database": "shop", "user": "u", "password": "p", **source}],
        "kafka": {"bootstrap_servers": "k:9092"},
        "connect": {"url": "http://c:8083"},
        "iceberg": {"catalog_uri": f"sqlite:///{tmp_path}/c.db", "warehouse": "wh", "namespace": "ns"},
    }
    (tmp_path / "floe.yaml").write_text(yaml.safe_dump(document))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        (
            {"tables": [{"name": "public.p", "hash": ["email"]}]},
            re.escape("tables ['public.p'] hash columns; set hash_salt"),
        ),
        (
            {"tables": [{"name": "public.p", "hash": ["email"], "exclude": ["email"]}]},
            re.escape("['email'] both hashed and excluded"),
        ),
        ({"tables": ["public.p"], "hash_salt": "short secret!"}, "hash_salt: .*at least 16 letters"),
    ],
)
def test_the_configuration_refuses_a_hash_without_salt_a_column_in_both_lists_and_a_bad_salt(
    tmp_path, source, message
):
    _write(tmp_path, source)
    with pytest.raises(ConfigError, match=message) as raised:
        load_config(tmp_path / "floe.yaml")
    assert "short secret" not in str(raised.value)


def test_reconciliation_compares_hashed_columns_as_hashed():
    """The query itself runs in tests/stack/test_masking.py."""
    plan = layout(
        {"id": "integer", "email": "character varying(40)", "note": "text", "born": "date"},
        ["id", "email", "note", "born"],
        ["id"],
        ["email", "note"],
        SALT,
    )
    assert plan.columns == [("email", "hashed:40"), ("note", "hashed"), ("born", "text")]
    assert plan.salt == SALT
