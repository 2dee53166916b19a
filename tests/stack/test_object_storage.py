"""Iceberg in object storage: tables behind the stack's REST catalog on SeaweedFS's S3 read by a
second engine (DuckDB), a second S3 server (rclone) behind a SQL catalog, and S3 going away in
the middle of a commit."""

from __future__ import annotations

import contextlib
import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pyarrow as pa
import pytest
import yaml
from pyiceberg.catalog import load_catalog
from pyiceberg.table import Transaction

from floe_cdc.core.config import load_config
from floe_cdc.core.errors import FloeError, ReplicationFailed, Transient
from floe_cdc.flows.replicate import replicate
from floe_cdc.lake.catalog import CatalogRefused, new_table, open_catalog
from floe_cdc.lake.maintenance import MaintainResult
from floe_cdc.pipeline.maintenance import maintain
from floe_cdc.stack.processes import ManagedProcess
from floe_cdc.stack.stack import LocalStack
from tests.duckdb_iceberg import duckdb_with_iceberg
from tests.stack.compare import assert_same_rows
from tests.stack.pipeline import assert_tables_equal, catch_up, replicated_database, run_sql

pytestmark = pytest.mark.stack

CHANGES = [
    "UPDATE items SET name = 'changed', price = price + 1 WHERE id % 7 = 0",
    "DELETE FROM items WHERE id % 11 = 0",
    "INSERT INTO items (id, name, price) SELECT g, 'new ' || g, 1 FROM generate_series(1001, 1050) g",
]


def test_a_table_in_s3_reads_the_same_through_pyiceberg_and_duckdb(stack: LocalStack, tmp_path):
    path = replicated_database(stack, tmp_path, "floe_objects")
    run_sql(stack, "floe_objects", CHANGES)
    catch_up(path)
    config = load_config(path)
    assert_tables_equal(stack, config, "floe_objects")

    table = open_catalog(config.iceberg).load_table((config.iceberg.namespace, "items"))
    assert table.metadata_location.startswith(f"s3://{stack.settings.table_bucket}/")
    s = stack.settings
    connection = duckdb_with_iceberg(tmp_path)
    connection.execute(
        f"SET s3_endpoint = '{s.host}:{s.s3_port}'; SET s3_url_style = 'path'; SET s3_use_ssl = false; "
        f"SET s3_region = 'us-east-1'; SET s3_access_key_id = '{s.s3_access_key}'; "
        f"SET s3_secret_access_key = '{s.s3_secret_key.get_secret_value()}'"
    )
    read = connection.execute(f"SELECT * FROM iceberg_scan('{table.metadata_location}')").arrow()
    with stack.postgres.connect("floe_objects") as conn:
        assert assert_same_rows(conn, "public.items", table, read) == 400 - 36 + 50


def test_maintain_beside_replicate_loses_and_duplicates_nothing(stack: LocalStack, tmp_path):
    path = replicated_database(stack, tmp_path, "floe_maintained")
    # Everything is due at once; files younger than an hour may be a commit in flight.
    eager = {
        "delete_ratio": 0.01,
        "min_small_files": 2,
        "snapshot_retention_hours": 0,
        "orphan_min_age_hours": 1,
    }
    with path.open("a") as document:
        yaml.safe_dump({"maintain": eager}, document)
    config = load_config(path)
    results: list[MaintainResult] = []
    stop = threading.Event()

    def maintain_repeatedly() -> None:
        while not stop.is_set():
            results.extend(maintain(config, ["items"]))
            time.sleep(0.2)

    maintainer = threading.Thread(target=maintain_repeatedly)
    maintainer.start()
    try:
        for step in range(6):
            run_sql(
                stack,
                "floe_maintained",
                [
                    f"UPDATE items SET name = 'step {step}', price = price + 1 WHERE id % {step + 2} = 0",
                    f"DELETE FROM items WHERE id % 13 = {step}",
                    f"INSERT INTO items (id, name, price) SELECT g, 'new', 1 FROM generate_series("
                    f"{2000 + 20 * step}, {2019 + 20 * step}) g",
                ],
            )
            with contextlib.suppress(ReplicationFailed):  # a cycle that lost a race to a rewrite
                replicate(config_path=str(path))
    finally:
        stop.set()
        maintainer.join()
    assert [r.error for r in results if r.error] == []
    assert sum(r.files_rewritten for r in results) > 0
    catch_up(path)
    assert_tables_equal(stack, config, "floe_maintained")

    # With no writer in flight, the files of the expired snapshots go, and the table still reads.
    [final] = maintain(
        config.model_copy(
            update={"maintain": config.maintain.model_copy(update={"orphan_min_age_hours": 0})}
        ),
        ["items"],
    )
    assert final.orphan_files_removed > 0 and final.error is None
    assert_tables_equal(stack, config, "floe_maintained")


def test_a_name_the_catalog_refuses_names_the_setting(stack: LocalStack):
    catalog = load_catalog("refusal", **stack.settings.catalog_properties())
    schema = pa.schema([("id", pa.int64())])
    with pytest.raises(CatalogRefused, match=r"'refusal\._floe_x'.*set iceberg\.quarantine_table to a name"):
        new_table(catalog, "refusal", "_floe_x", schema, "iceberg.quarantine_table", properties={})


@pytest.fixture
def rclone_s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """``rclone serve s3`` over a folder: the catalog properties of a SQL catalog warehoused in it."""
    data = tmp_path / "rclone"
    (data / "floe-rclone").mkdir(parents=True)
    key, secret, port = "floe-rclone-key", "floe-rclone-secret", 26444
    process = ManagedProcess("rclone", tmp_path)
    rclone = str(Path(sys.executable).parent / "rclone")
    address = f"127.0.0.1:{port}"
    process.start(
        [rclone, "serve", "s3", "--config", "", "--addr", address, "--auth-key", f"{key},{secret}", str(data)]
    )
    # rclone answers a chunked upload without a length with 411 MissingContentLength: the AWS SDK
    # inside pyarrow must compute checksums only when the server requires them.
    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "WHEN_REQUIRED")
    try:
        process.wait_healthy(lambda: httpx.get(f"http://{address}/").status_code > 0, 20)
        yield {
            "type": "sql",
            "uri": f"sqlite:///{tmp_path}/catalog.db",
            "warehouse": "s3://floe-rclone/warehouse",
            "s3.endpoint": f"http://{address}",
            "s3.access-key-id": key,
            "s3.secret-access-key": secret,
            "s3.region": "us-east-1",
            "s3.path-style-access": "true",
        }
    finally:
        process.stop(grace_seconds=5)


def test_a_second_s3_server_behind_a_sql_catalog_with_a_v3_table(stack: LocalStack, tmp_path, rclone_s3):
    """The table is Iceberg v3 (its own format_version): its deletes are deletion vectors, in
    Puffin files on S3."""
    v3 = {"name": "public.items", "format_version": 3}
    path = replicated_database(stack, tmp_path, "floe_rclone", rclone_s3, tables=(v3,))
    run_sql(stack, "floe_rclone", CHANGES)
    catch_up(path)
    assert_tables_equal(stack, load_config(path), "floe_rclone")
    folder = tmp_path / "rclone" / "floe-rclone" / "warehouse" / "rclone" / "items"
    assert list(folder.rglob("*.parquet")), "the table's data files are in rclone's folder"
    assert list(folder.rglob("*.puffin")), "the table's deletes are deletion vectors"
    metadata = max(folder.rglob("*.metadata.json"), key=lambda p: p.stat().st_mtime)
    assert json.loads(metadata.read_text())["format-version"] == 3


def test_s3_stopped_in_the_middle_of_a_commit(stack: LocalStack, tmp_path, monkeypatch):
    """The data files are written, then S3 and the catalog go away before the commit: the cycle
    fails with a transient error naming the table; the next cycle applies the changes once."""
    path = replicated_database(stack, tmp_path, "floe_s3fault")
    config = load_config(path)
    run_sql(stack, "floe_s3fault", CHANGES)
    commit = Transaction.commit_transaction

    def stop_then_commit(transaction: Transaction) -> object:
        monkeypatch.setattr(Transaction, "commit_transaction", commit)  # only the first commit
        stack.object_store.stop()
        return commit(transaction)

    monkeypatch.setattr(Transaction, "commit_transaction", stop_then_commit)
    try:
        with pytest.raises(FloeError, match=r"items.*did not answer") as failed:
            replicate(config_path=str(path))
        assert isinstance(failed.value, Transient)
    finally:
        stack.object_store.start()
    catch_up(path)
    assert_tables_equal(stack, config, "floe_s3fault")
