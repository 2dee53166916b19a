from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pydantic import SecretStr

from floe_cdc.core.config import IcebergConfig
from floe_cdc.lake.catalog import open_catalog
from floe_cdc.lake.file_io import FloeFileIO


def test_a_written_file_knows_its_length_without_asking_the_store(tmp_path: Path, monkeypatch):
    io = FloeFileIO()
    path = str(tmp_path / "rows.parquet")
    output = io.new_output(path)
    with output.create(overwrite=True) as stream:
        pq.write_table(pa.table({"id": list(range(10_000))}), stream)
    monkeypatch.setattr(type(output), "_file_info", lambda self: pytest.fail("the store was asked"))
    assert len(output) == Path(path).stat().st_size > 0
    assert pq.read_table(path)["id"].to_pylist() == list(range(10_000))


def test_a_file_not_written_through_it_is_measured_by_the_store(tmp_path: Path):
    path = tmp_path / "earlier.bin"
    path.write_bytes(b"x" * 1234)
    assert len(FloeFileIO().new_output(str(path))) == 1234


def test_s3_objects_are_written_in_one_request():
    properties = {"s3.endpoint": "http://127.0.0.1:1", "s3.region": "us-east-1"}
    filesystem = FloeFileIO(properties).fs_by_scheme("s3", "bucket")
    _, (options,) = filesystem.__reduce__()
    assert options["allow_delayed_open"] is True
    assert options["endpoint_override"] == "http://127.0.0.1:1"


def test_tables_of_the_catalogs_floe_opens_use_it_unless_configured(tmp_path: Path):
    uri = SecretStr(f"sqlite:///{tmp_path}/catalog.db")
    config = IcebergConfig(catalog_uri=uri, warehouse=f"file://{tmp_path}/wh", namespace="shop")
    assert open_catalog(config).properties["py-io-impl"] == "floe_cdc.lake.file_io.FloeFileIO"
    own = {"type": "sql", "uri": str(uri.get_secret_value()), "warehouse": f"file://{tmp_path}/wh"}
    own["py-io-impl"] = "pyiceberg.io.pyarrow.PyArrowFileIO"
    config = IcebergConfig(catalog={k: SecretStr(v) for k, v in own.items()}, namespace="shop")
    assert open_catalog(config).properties["py-io-impl"] == "pyiceberg.io.pyarrow.PyArrowFileIO"
