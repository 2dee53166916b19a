import socket

import pytest
from pydantic import SecretStr

from floe_cdc.core.config import IcebergConfig
from floe_cdc.lake.catalog import CatalogUnavailable, open_catalog


def test_an_unreachable_catalog_database_names_the_setting_and_hides_the_password():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends
    uri = f"postgresql+psycopg2://floe:very-secret@127.0.0.1:{port}/floe_catalog"
    config = IcebergConfig(catalog_uri=SecretStr(uri), warehouse="file:///tmp/wh", namespace="shop")
    with pytest.raises(CatalogUnavailable) as caught:
        open_catalog(config)
    message = str(caught.value)
    assert "iceberg.catalog_uri" in message and "very-secret" not in message
    assert "\n" not in message


def test_an_unreachable_rest_catalog_names_the_setting():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed once the block ends: nothing listens there
    catalog = {"type": "rest", "uri": f"http://127.0.0.1:{port}", "credential": "key:rest-secret"}
    config = IcebergConfig(catalog={k: SecretStr(v) for k, v in catalog.items()}, namespace="shop")
    with pytest.raises(CatalogUnavailable) as caught:
        open_catalog(config)
    message = str(caught.value)
    assert "check iceberg.catalog (uri, credential)" in message and "rest-secret" not in message
