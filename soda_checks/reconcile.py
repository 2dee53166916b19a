"""Compare each source table's row count with its Iceberg table's, through a Soda scan.

The Iceberg side is handed to Soda as a DuckDB connection holding the table's key columns (the
row count needs nothing else), each table under a plain alias. The source side is counted by
Floe: a PostgreSQL table with ``count(*)`` and its names quoted as identifiers (SodaCL cannot
name every table PostgreSQL accepts), a MongoDB collection with pymongo (Soda has no MongoDB
data source). The count enters a ``row_count = ${count}`` check as a scan variable. Soda's
telemetry is switched off through its global config file, which must be chosen before
``soda.scan`` is imported.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import pyarrow as pa

from floe.config import MongoSource, Source, TargetRef
from soda_checks.mongo_counts import SourceCountError, count_documents
from soda_checks.postgres_counts import count_rows

log = logging.getLogger("floe.reconcile")

ICEBERG_DATA_SOURCE = "iceberg"
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


def _check_name(target: str) -> str:
    return f"floe_row_count_{target}"


def _count_variable(alias: str) -> str:
    return f"floe_source_count_{alias}"


Counter = Callable[[MongoSource, list[str]], dict[str, int]]


def check_counts(
    chosen: list[tuple[Source, TargetRef]],
    stored_keys: dict[str, pa.Table | None],
    waiting: dict[str, int],
    counter: Counter = count_documents,
) -> list[ReconcileResult]:
    """Reconcile the *chosen* tables, one Soda scan per source.

    *stored_keys* holds each Iceberg table's key columns by table name (None: not created yet),
    *waiting* the number of its quarantined events, and *counter* counts a MongoDB source's
    documents (pymongo by default).
    """
    scan_class = _scan_class()
    results: list[ReconcileResult] = []
    for source in {id(s): s for s, _ in chosen}.values():
        connection = duckdb.connect()
        ready = []
        for table in (t for s, t in chosen if s is source):
            keys = stored_keys.get(table.target_name)
            if keys is None:
                results.append(
                    ReconcileResult(
                        table.target_name,
                        source.source_table(table),
                        None,
                        None,
                        False,
                        "Iceberg table not created yet",
                    )
                )
                continue
            # Registered under a plain alias, so that no name needs quoting in SodaCL.
            connection.register(_alias(len(ready)), keys)
            ready.append(table)
        if ready:
            results.extend(_reconcile_source(scan_class, source, connection, ready, counter))
        connection.close()
    for result in results:
        result.quarantined = waiting.get(result.table, 0)
    return results


def _alias(index: int) -> str:
    return f"floe_table_{index}"


def _reconcile_source(
    scan_class: type, source: Source, connection: duckdb.DuckDBPyConnection, tables: list, counter: Counter
) -> list[ReconcileResult]:
    """Count the source's tables (pymongo or PostgreSQL), then check each Iceberg table's row count
    against its source count in one Soda scan."""
    names = [t.name if isinstance(source, MongoSource) else source.source_table(t) for t in tables]
    try:
        counts = counter(source, names) if isinstance(source, MongoSource) else count_rows(source, tables)
    except SourceCountError as exc:
        return [
            ReconcileResult(t.target_name, source.source_table(t), None, None, None, str(exc)) for t in tables
        ]
    checks = [
        _TEMPLATES.get_template("row_count.yml").render(
            target=_alias(index),
            variable=_count_variable(_alias(index)),
            check_name=_check_name(_alias(index)),
        )
        for index in range(len(tables))
    ]
    variables = {_count_variable(_alias(i)): str(counts[name]) for i, name in enumerate(names)}
    outcome = _run_scan(scan_class, source.name, connection, "\n".join(checks), variables)
    by_name = {check["name"]: check for check in outcome.get("checks", [])}
    errors = [entry["message"] for entry in outcome.get("logs", []) if entry.get("level") == "ERROR"]
    results = []
    for index, (table, name) in enumerate(zip(tables, names, strict=True)):
        source_table = source.source_table(table)
        check = by_name.get(_check_name(_alias(index)))
        if check is None or check.get("outcome") is None:
            reason = errors[0] if errors else "check did not run"
            results.append(ReconcileResult(table.target_name, source_table, None, None, None, reason))
            continue
        diagnostics = check.get("diagnostics", {})
        results.append(
            ReconcileResult(
                table=table.target_name,
                source_table=source_table,
                source_count=counts[name],
                iceberg_count=diagnostics.get("value"),
                passed=check["outcome"] == "pass",
            )
        )
    return results


def _run_scan(
    scan_class: type,
    source_name: str,
    connection: duckdb.DuckDBPyConnection,
    sodacl: str,
    variables: dict[str, str],
) -> dict[str, Any]:
    scan = scan_class()
    scan.set_scan_definition_name(f"floe_reconcile_{source_name}")
    scan.set_data_source_name(ICEBERG_DATA_SOURCE)
    scan.add_duckdb_connection(connection, data_source_name=ICEBERG_DATA_SOURCE)
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
