"""Compare each source table's row count with its Iceberg table's, through a Soda scan.

The Iceberg side is handed to Soda as a DuckDB connection holding the table's key columns (the
row count needs nothing else). A PostgreSQL source is Soda's own data source, compared in a
cross-source ``row_count same as`` check; a MongoDB collection is counted with pymongo (Soda has
no MongoDB data source) and the count enters the check as a scan variable. Soda's
telemetry is switched off through its global config file, which must be chosen before
``soda.scan`` is imported.
"""

from __future__ import annotations

import logging
import re
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import yaml

from floe.config import MongoSource, PipelineConfig, PostgresSource, Source, TargetRef
from iceberg import quarantine
from iceberg.catalog import load_table, open_catalog
from soda_checks.mongo_counts import SourceCountError, count_documents

log = logging.getLogger("floe.reconcile")

ICEBERG_DATA_SOURCE = "iceberg"
_SAFE_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), undefined=jinja2.StrictUndefined
)


@dataclass
class ReconcileResult:
    """Outcome of one table's reconciliation; ``passed`` is None when the check could not run."""

    table: str
    source_table: str
    source_count: int | None
    iceberg_count: int | None
    passed: bool | None
    error: str | None = None
    quarantined: int = 0  # events of this table waiting in the quarantine table

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _scan_class() -> type:
    config = Path(tempfile.gettempdir()) / "floe-soda-config.yml"
    if not config.exists():
        config.write_text(
            "send_anonymous_usage_stats: false\nuser_cookie_id: 00000000-0000-0000-0000-000000000000\n"
        )
    from soda.common.config_helper import ConfigHelper

    ConfigHelper.get_instance(str(config))
    from soda.scan import Scan

    logging.getLogger("soda.scan").setLevel(logging.CRITICAL)
    return Scan


def _data_source_name(source: PostgresSource) -> str:
    return f"src_{source.name}"


def _source_configuration(source: PostgresSource) -> str:
    """Soda's configuration for the source database. Holds the password: never log it."""
    config = {
        f"data_source {_data_source_name(source)}": {
            "type": "postgres",
            "host": source.host,
            "port": source.port,
            "username": source.user,
            "password": source.password.get_secret_value(),
            "database": source.database,
        }
    }
    return yaml.safe_dump(config)


def _check_name(target: str) -> str:
    return f"floe_row_count_{target}"


def _count_variable(target: str) -> str:
    return f"floe_source_count_{target}"


def _safe(source: Source, table: TargetRef) -> bool:
    """Names that go into SodaCL: the Iceberg table's, and a PostgreSQL source table's."""
    names = [table.target_name]
    if isinstance(source, PostgresSource):
        names += table.name.split(".")
    return all(_SAFE_NAME.match(name) for name in names)


Counter = Callable[[MongoSource, list[str]], dict[str, int]]


def reconcile(
    config: PipelineConfig, tables: list[str] | None = None, counter: Counter = count_documents
) -> list[ReconcileResult]:
    """Reconcile the chosen tables (all by default), one Soda scan per source.

    *counter* counts a MongoDB source's documents (pymongo by default).
    """
    chosen = config.tables(tables)
    catalog = open_catalog(config.iceberg)
    scan_class = _scan_class()
    waiting = quarantine.pending_counts(quarantine.open_quarantine(catalog, config.iceberg.namespace))
    results: list[ReconcileResult] = []
    for source in {id(s): s for s, _ in chosen}.values():
        connection = duckdb.connect()
        ready = []
        for table in (t for s, t in chosen if s is source):
            target, source_table = table.target_name, source.source_table(table)
            if not _safe(source, table):
                results.append(
                    ReconcileResult(target, source_table, None, None, None, "unsupported table name")
                )
                continue
            iceberg_table = load_table(catalog, config.iceberg.namespace, target)
            if iceberg_table is None:
                results.append(
                    ReconcileResult(target, source_table, None, None, False, "Iceberg table not created yet")
                )
                continue
            key = [
                iceberg_table.schema().find_column_name(i)
                for i in iceberg_table.schema().identifier_field_ids
            ]
            connection.register(target, iceberg_table.scan(selected_fields=tuple(key)).to_arrow())
            ready.append(table)
        if ready:
            results.extend(_reconcile_source(scan_class, source, connection, ready, counter))
        connection.close()
    for result in results:
        result.quarantined = waiting.get(result.table, 0)
    return results


def _reconcile_source(
    scan_class: type, source: Source, connection: duckdb.DuckDBPyConnection, tables: list, counter: Counter
) -> list[ReconcileResult]:
    counts: dict[str, int] = {}
    if isinstance(source, MongoSource):
        try:
            counts = counter(source, [t.name for t in tables])
        except SourceCountError as exc:
            return [
                ReconcileResult(t.target_name, source.source_table(t), None, None, None, str(exc))
                for t in tables
            ]
        checks = [
            _TEMPLATES.get_template("document_count.yml").render(
                target=t.target_name,
                variable=_count_variable(t.target_name),
                check_name=_check_name(t.target_name),
            )
            for t in tables
        ]
        configuration = None
        variables = {_count_variable(t.target_name): str(counts[t.name]) for t in tables}
    else:
        checks = [
            _TEMPLATES.get_template("row_count.yml").render(
                target=t.target_name,
                source_table=t.name,
                source_data_source=_data_source_name(source),
                check_name=_check_name(t.target_name),
            )
            for t in tables
        ]
        configuration, variables = _source_configuration(source), {}
    outcome = _run_scan(scan_class, source.name, connection, "\n".join(checks), configuration, variables)
    by_name = {check["name"]: check for check in outcome.get("checks", [])}
    errors = [entry["message"] for entry in outcome.get("logs", []) if entry.get("level") == "ERROR"]
    results = []
    for table in tables:
        source_table = source.source_table(table)
        check = by_name.get(_check_name(table.target_name))
        if check is None or check.get("outcome") is None:
            reason = errors[0] if errors else "check did not run"
            results.append(ReconcileResult(table.target_name, source_table, None, None, None, reason))
            continue
        diagnostics = check.get("diagnostics", {})
        results.append(
            ReconcileResult(
                table=table.target_name,
                source_table=source_table,
                source_count=counts.get(table.name, diagnostics.get("otherRowCount")),
                iceberg_count=diagnostics.get("rowCount", diagnostics.get("value")),
                passed=check["outcome"] == "pass",
            )
        )
    return results


def _run_scan(
    scan_class: type,
    source_name: str,
    connection: duckdb.DuckDBPyConnection,
    sodacl: str,
    configuration: str | None,
    variables: dict[str, str],
) -> dict[str, Any]:
    scan = scan_class()
    scan.set_scan_definition_name(f"floe_reconcile_{source_name}")
    scan.set_data_source_name(ICEBERG_DATA_SOURCE)
    scan.add_duckdb_connection(connection, data_source_name=ICEBERG_DATA_SOURCE)
    if configuration:
        scan.add_configuration_yaml_str(configuration)
    scan.add_variables(variables)
    scan.add_sodacl_yaml_str(sodacl)
    try:
        scan.execute()
    finally:
        # Soda leaves its source connection idle in a transaction, which would hold locks (and
        # block DDL) on the source tables until the process exits: close it here.
        for data_source in scan._data_source_manager.data_sources.values():
            data_source.disconnect()
    return scan.get_scan_results()
