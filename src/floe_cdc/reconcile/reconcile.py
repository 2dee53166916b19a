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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import jinja2
import pyarrow as pa

from floe_cdc.core.config import MongoSource, Source, TargetRef
from floe_cdc.reconcile.mongo_counts import SourceCountError, count_documents
from floe_cdc.reconcile.postgres_counts import count_rows

log = logging.getLogger("floe.reconcile")

ICEBERG_DATA_SOURCE = "iceberg"
_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "checks"), undefined=jinja2.StrictUndefined
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
    mode: str = "count"
    correction: int = 0  # see SourceCount
    source_position: str | None = None
    differing_keys: list[str] = field(default_factory=list)  # keys mode: the first keys that differ
    note: str = ""
    checks: list[dict[str, Any]] = field(default_factory=list)  # the user's SodaCL checks (user_checks)

    @property
    def failed_checks(self) -> list[str]:
        """The user's checks that failed or could not run (a warning is not a failure)."""
        return [c["name"] for c in self.checks if c["outcome"] in ("fail", "error")]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def soda_scan_class() -> type:
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


@dataclass(frozen=True)
class SourceCount:
    """A source table's row count, and the rows the Iceberg table should hold given it: the
    count plus *correction*, the net rows of changes the Iceberg table has applied that the
    count did not see (exact mode; 0 in count mode). *position* is where the count was taken."""

    count: int
    correction: int = 0
    position: str | None = None
    note: str = ""

    @property
    def expected(self) -> int:
        return self.count + self.correction


# A source count, or why there is none.
Counted = SourceCount | str


def count_source(
    source: Source, tables: list[TargetRef], counter: Counter = count_documents
) -> dict[str, Counted]:
    """The row counts of *tables* of one source by target name (count mode): PostgreSQL in one
    transaction, a MongoDB collection through *counter* (pymongo by default)."""
    try:
        if isinstance(source, MongoSource):
            counts = counter(source, [t.name for t in tables])
            return {t.target_name: SourceCount(counts[t.name]) for t in tables}
        counts = count_rows(source, tables)
        return {t.target_name: SourceCount(counts[source.source_table(t)]) for t in tables}
    except SourceCountError as exc:
        return dict.fromkeys((t.target_name for t in tables), str(exc))


def check_counts(
    chosen: list[tuple[Source, TargetRef]],
    stored_keys: dict[str, pa.Table | None],
    waiting: dict[str, int],
    counted: dict[str, Counted],
    mode: str = "count",
) -> list[ReconcileResult]:
    """Reconcile the *chosen* tables, one Soda scan per source.

    *stored_keys* holds each Iceberg table's key columns by table name (None: not created yet),
    *waiting* the number of its quarantined events, *counted* its source count (or why there is
    none), taken in *mode*.
    """
    scan_class = soda_scan_class()
    results: list[ReconcileResult] = []
    for source in {id(s): s for s, _ in chosen}.values():
        connection = duckdb.connect()
        ready = []
        for table in (t for s, t in chosen if s is source):
            keys, taken = stored_keys.get(table.target_name), counted[table.target_name]
            if isinstance(taken, str):  # no source count, and why
                results.append(
                    ReconcileResult(table.target_name, source.source_table(table), None, None, None, taken)
                )
                continue
            if keys is None:
                # No change seen for it yet: in step with an empty source table, behind another.
                empty = taken.expected == 0
                results.append(
                    ReconcileResult(
                        table.target_name,
                        source.source_table(table),
                        taken.count,
                        0 if empty else None,
                        empty,
                        None if empty else "Iceberg table not created yet",
                    )
                )
                continue
            # Registered under a plain alias, so that no name needs quoting in SodaCL.
            connection.register(_alias(len(ready)), keys)
            ready.append(table)
        if ready:
            results.extend(_reconcile_source(scan_class, source, connection, ready, counted))
        connection.close()
    for result in results:
        result.quarantined = waiting.get(result.table, 0)
        result.mode = mode
    return results


def _alias(index: int) -> str:
    return f"floe_table_{index}"


def _reconcile_source(
    scan_class: type, source: Source, connection: duckdb.DuckDBPyConnection, tables: list, counted: dict
) -> list[ReconcileResult]:
    """Check each Iceberg table's row count against the rows its source count expects, in one
    Soda scan."""
    results = []
    compared = [(_alias(index), table, counted[table.target_name]) for index, table in enumerate(tables)]
    checks = [
        _TEMPLATES.get_template("row_count.yml").render(
            target=alias, variable=_count_variable(alias), check_name=_check_name(alias)
        )
        for alias, _, _ in compared
    ]
    variables = {_count_variable(alias): str(taken.expected) for alias, _, taken in compared}
    outcome = run_scan(scan_class, source.name, connection, "\n".join(checks), variables)
    by_name = {check["name"]: check for check in outcome.get("checks", [])}
    errors = [entry["message"] for entry in outcome.get("logs", []) if entry.get("level") == "ERROR"]
    for alias, table, taken in compared:
        source_table = source.source_table(table)
        check = by_name.get(_check_name(alias))
        if check is None or check.get("outcome") is None:
            reason = errors[0] if errors else "check did not run"
            results.append(ReconcileResult(table.target_name, source_table, None, None, None, reason))
            continue
        results.append(
            ReconcileResult(
                table=table.target_name,
                source_table=source_table,
                source_count=taken.count,
                iceberg_count=check.get("diagnostics", {}).get("value"),
                passed=check["outcome"] == "pass",
                correction=taken.correction,
                source_position=taken.position,
                note=taken.note,
            )
        )
    return results


def run_scan(
    scan_class: type,
    source_name: str,
    connection: duckdb.DuckDBPyConnection,
    sodacl: str | list[str],
    variables: dict[str, str],
) -> dict[str, Any]:
    """One Soda scan of the tables registered in *connection*, of the checks in *sodacl* (one
    SodaCL document, or several)."""
    scan = scan_class()
    scan.set_scan_definition_name(f"floe_reconcile_{source_name}")
    scan.set_data_source_name(ICEBERG_DATA_SOURCE)
    scan.add_duckdb_connection(connection, data_source_name=ICEBERG_DATA_SOURCE)
    scan.add_variables(variables)
    for document in [sodacl] if isinstance(sodacl, str) else sodacl:
        scan.add_sodacl_yaml_str(document)
    try:
        scan.execute()
    finally:
        # Soda leaves its source connection idle in a transaction, which would hold locks (and
        # block DDL) on the source tables until the process exits: close it here.
        for data_source in scan._data_source_manager.data_sources.values():
            data_source.disconnect()
    return scan.get_scan_results()
