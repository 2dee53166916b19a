"""The user's own SodaCL checks, run by Soda against tables registered in DuckDB (no services)."""

from __future__ import annotations

import pyarrow as pa
import pytest
from pydantic import SecretStr

from floe_cdc.core.config import ChecksConfig, IcebergConfig, PipelineConfig, load_config
from floe_cdc.core.errors import ConfigError
from floe_cdc.pipeline.health import RECONCILIATION_FAILED, reconciliation_alerts
from floe_cdc.reconcile.reconcile import ReconcileResult
from floe_cdc.reconcile.user_checks import checked_tables, run_user_checks, sodacl_documents, sodacl_files

ORDERS = pa.table(
    {"id": [1, 2, 3, 4], "email": ["a@x", None, "c@x", "d@x"], "total": [10.0, 20.0, -5.0, 7.5]}
)
CUSTOMERS = pa.table({"id": [1, 2], "name": ["Ann", "Bob"]})


def _files(tmp_path):
    (tmp_path / "orders.yml").write_text(
        "checks for orders:\n"
        "  - row_count > 0\n"
        "  - missing_count(email) = 0:\n"
        "      name: every order has an email\n"
        "  - min(total) >= 0:\n"
        "      name: no negative totals\n"
        "  - duplicate_count(id) = 0\n"
        "  - missing_count(email):\n"
        "      warn: when > 0\n"
        "      name: emails missing (warning)\n"
    )
    (tmp_path / "customers.yaml").write_text("checks for customers:\n  - row_count = 2\n")
    (tmp_path / "notes.txt").write_text("not SodaCL")
    return sodacl_files(str(tmp_path))


def test_each_check_gives_its_outcome_and_measured_value(tmp_path):
    files = _files(tmp_path)
    assert [f.name for f in files] == ["customers.yaml", "orders.yml"]
    documents = sodacl_documents(files)
    assert checked_tables(documents) == {"orders", "customers"}
    found = run_user_checks(documents, {"orders": lambda: ORDERS, "customers": lambda: CUSTOMERS})
    orders = {c["name"]: (c["outcome"], c["value"]) for c in found["orders"]}
    assert orders["every order has an email"] == ("fail", 1)
    assert orders["no negative totals"] == ("fail", -5.0)
    assert orders["emails missing (warning)"] == ("warn", 1)
    assert [o for name, (o, _) in orders.items() if name.startswith(("row_count", "duplicate_count"))] == [
        "pass",
        "pass",
    ]
    assert found["customers"] == [{"name": "row_count = 2", "outcome": "pass", "value": 2}]


def test_only_the_reconciled_tables_are_checked(tmp_path):
    """A reconcile of some tables: the checks of the others are left out, not failed."""
    found = run_user_checks(sodacl_documents(_files(tmp_path)), {"customers": lambda: CUSTOMERS})
    assert list(found) == ["customers"] and found["customers"][0]["outcome"] == "pass"


def test_a_check_that_cannot_run_is_an_error_with_its_reason(tmp_path):
    (tmp_path / "bad.yml").write_text("checks for customers:\n  - missing_count(no_such_column) = 0\n")
    [check] = run_user_checks(
        sodacl_documents(sodacl_files(str(tmp_path))), {"customers": lambda: CUSTOMERS}
    )["customers"]
    assert (check["name"], check["outcome"]) == ("SodaCL scan", "error") and "no_such_column" in check[
        "reason"
    ]


def test_a_file_that_is_not_sodacl_is_named(tmp_path):
    (tmp_path / "broken.yml").write_text("checks for orders: [\n")
    with pytest.raises(ConfigError, match=r"checks.path: .*broken.yml is not valid YAML"):
        sodacl_documents(sodacl_files(str(tmp_path)))


def test_a_failed_check_raises_the_reconciliation_alert_naming_it(tmp_path):
    files = _files(tmp_path)
    checks = run_user_checks(sodacl_documents(files), {"orders": lambda: ORDERS})["orders"]
    result = ReconcileResult("orders", "public.orders", 4, 4, True, checks=checks)
    config = PipelineConfig.model_construct(
        iceberg=IcebergConfig(catalog_uri=SecretStr("sqlite://"), warehouse="wh", namespace="shop"),
        checks=ChecksConfig(path=str(tmp_path)),
    )
    [alert] = reconciliation_alerts(config, [result])
    assert alert.event == RECONCILIATION_FAILED and alert.subject == "shop.orders"
    assert alert.message.startswith("table shop.orders failed 2 of its SodaCL checks: ")
    assert "'every order has an email' fail (measured 1)" in alert.message
    assert "'no negative totals' fail (measured -5.0)" in alert.message and str(tmp_path) in alert.message
    assert result.failed_checks == ["every order has an email", "no negative totals"]


def test_the_checks_path_is_taken_from_the_configuration_folder(shop_config, tmp_path):
    path = shop_config("fail")
    text = path.read_text()
    path.write_text(text + "checks: {path: my_checks}\n")
    with pytest.raises(ConfigError, match=r"checks.path .*my_checks does not exist; point it at your SodaCL"):
        load_config(path)
    (tmp_path / "my_checks").mkdir()
    assert load_config(path).checks.path == str((tmp_path / "my_checks").resolve())
