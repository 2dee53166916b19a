"""The user's own SodaCL checks (``checks.path`` in ``floe.yaml``), run against the Iceberg tables.

Soda users keep checks for their tables in SodaCL files: missing values, valid ranges, duplicates,
freshness, referential checks. Floe runs them with each reconciliation, on the cadence of a
following run and ad hoc (``floe reconcile``), against the Iceberg tables as DuckDB sees them:
each table a ``checks for <table>`` block names is registered in an in-memory DuckDB under its
Iceberg name, so that a check reads exactly as the user wrote it.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import yaml

from floe_cdc.core.errors import ConfigError
from floe_cdc.reconcile.reconcile import run_scan, soda_scan_class

_CHECKS_FOR = re.compile(r"^checks for ([^\s\[]+)")


def sodacl_files(path: str) -> list[Path]:
    """The SodaCL files at *path*: the file, or a folder's ``*.yml`` and ``*.yaml``, in name order."""
    where = Path(path)
    if where.is_file():
        return [where]
    return sorted(p for p in where.iterdir() if p.suffix in (".yml", ".yaml"))


def sodacl_documents(files: list[Path]) -> list[dict[str, Any]]:
    """The SodaCL of *files*, each parsed once for both what it checks and what runs."""
    documents = []
    for file in files:
        try:
            document = yaml.safe_load(file.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"checks.path: {file} is not valid YAML ({exc}); correct it") from None
        if not isinstance(document, dict):
            raise ConfigError(f"checks.path: {file} must hold SodaCL 'checks for <table>:' blocks")
        documents.append(document)
    return documents


def _checked(key: object) -> str | None:
    """The table a top-level SodaCL key's ``checks for <table>`` block names (None: another key)."""
    match = _CHECKS_FOR.match(str(key))
    return match.group(1) if match else None


def checked_tables(documents: list[dict[str, Any]]) -> set[str]:
    """The tables the documents' ``checks for <table>`` blocks name."""
    return {table for document in documents for key in document if (table := _checked(key)) is not None}


def _for_tables(document: dict[str, Any], tables: set[str]) -> str:
    """*document* without the ``checks for`` blocks of tables not checked now (a reconcile of
    some tables only): Soda would fail those for a table it cannot find."""
    kept = {key: value for key, value in document.items() if _checked(key) in (None, *tables)}
    return yaml.safe_dump(kept, sort_keys=False, allow_unicode=True)


def run_user_checks(
    documents: list[dict[str, Any]], tables: dict[str, Callable[[], pa.Table]]
) -> dict[str, list[dict[str, Any]]]:
    """Each of *tables* (name -> its rows, read when the scan starts) with the outcome of every check
    the documents hold for it: name, outcome (``pass``, ``warn``, ``fail``, or ``error`` for a check
    that could not run, with Soda's reason) and the measured value."""
    connection = duckdb.connect()
    try:
        for name, rows in tables.items():
            connection.register(name, rows())
        sodacl = [_for_tables(document, set(tables)) for document in documents]
        outcome = run_scan(soda_scan_class(), "user_checks", connection, sodacl, {})
    finally:
        connection.close()
    errors = [entry["message"] for entry in outcome.get("logs", []) if entry.get("level") == "ERROR"]
    found: dict[str, list[dict[str, Any]]] = {name: [] for name in tables}
    for check in outcome.get("checks", []):
        table = check.get("table")
        if table not in found:
            continue
        result = check.get("outcome") or "error"
        entry = {
            "name": check.get("name"),
            "outcome": result,
            "value": check.get("diagnostics", {}).get("value"),
        }
        if result == "error" and errors:
            entry["reason"] = errors[0]
        found[table].append(entry)
    if errors:  # Soda reports no check of a scan whose query failed: the failure is the outcome
        for checks in found.values():
            if not checks:
                checks.append({"name": "SodaCL scan", "outcome": "error", "value": None, "reason": errors[0]})
    return found
