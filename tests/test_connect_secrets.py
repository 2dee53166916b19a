"""Secrets reach Kafka Connect as config-provider references, never in the stored config."""

from __future__ import annotations

import stat

from floe_cdc.capture.connect_secrets import env_variable, externalize, write_secrets
from floe_cdc.core.config import ConnectConfig

PROPERTIES = {"database.password": "pä:ss=w\\ord ", "database.user": "floe"}


def test_file_mode_references_the_secrets_file(tmp_path):
    connect = ConnectConfig(url="http://connect:8083", secrets_file=str(tmp_path / "s.properties"))
    referenced, values = externalize("floe-shop", PROPERTIES, connect)
    key = "floe-shop.database.password"
    assert referenced["database.password"] == f"${{file:{tmp_path / 's.properties'}:{key}}}"
    assert referenced["database.user"] == "floe"
    assert values == {key: PROPERTIES["database.password"]}


def test_env_and_inline_modes():
    env = ConnectConfig(url="http://connect:8083", secrets="env")
    referenced, values = externalize("floe-shop", PROPERTIES, env)
    assert referenced["database.password"] == "${env:FLOE_SHOP_DATABASE_PASSWORD}" and values == {}
    assert env_variable("floe-docs", "mongodb.connection.string") == "FLOE_DOCS_MONGODB_CONNECTION_STRING"
    inline = ConnectConfig(url="http://connect:8083", secrets="inline")
    assert externalize("floe-shop", PROPERTIES, inline) == (PROPERTIES, {})


def test_secrets_file_is_private_escaped_and_reports_changes(tmp_path):
    path = tmp_path / "dir" / "s.properties"
    values = {"floe-shop.database.password": "pä:ss=w\\ord ", "floe-docs.mongodb.connection.string": "x"}
    assert write_secrets(path, values) == {"floe-shop", "floe-docs"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "floe-shop.database.password=p\\u00e4\\:ss\\=w\\\\ord \n" in path.read_text()
    assert write_secrets(path, values) == set()
    assert write_secrets(path, {**values, "floe-docs.mongodb.connection.string": "y"}) == {"floe-docs"}
