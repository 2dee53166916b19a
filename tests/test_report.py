"""The per-table report of a replication cycle: its rows and their plain-text table."""

from __future__ import annotations

from floe_cdc.flows.report import format_rows, table_rows
from floe_cdc.lake.checkpoint import Checkpoint
from floe_cdc.lake.merge import MergeResult
from floe_cdc.pipeline.health import TableHealth
from floe_cdc.reconcile.reconcile import ReconcileResult


def test_rows_join_merges_checkpoints_checks_failures_and_connectors():
    rows = table_rows(
        ["orders", "docs", "idle"],
        {
            "orders": MergeResult(
                "orders", events=5, inserted=3, updated=1, deleted=1, schema_changes=["a", "b"]
            )
        },
        {"orders": Checkpoint(position={"lsn": 42}), "docs": Checkpoint(position={"ts_ms": 7, "ord": 2})},
        [
            ReconcileResult("orders", "public.orders", 10, 10, True, quarantined=2),
            ReconcileResult("docs", "shop.docs", None, None, None, "source down"),
        ],
        {"docs": "table docs was not merged: boom"},
        {"orders": "RUNNING (task 0 RUNNING)"},
    )
    orders, docs, idle = rows
    assert (orders["events"], orders["inserted"], orders["quarantined"]) == (5, 3, 2)
    assert orders["schema_changes"] == "a; b" and orders["source_position"] == 42
    assert orders["reconciliation"] == "pass" and orders["connector"] == "RUNNING (task 0 RUNNING)"
    assert docs["source_position"] == "7:2" and docs["reconciliation"] == "error: source down"
    assert docs["error"] == "table docs was not merged: boom" and docs["events"] == 0
    assert idle["reconciliation"] == "not run" and idle["source_position"] is None


def test_counts_that_differ_while_changes_wait_are_pending_not_failed():
    def outcome(mode: str, waiting: int | None) -> str:
        check = ReconcileResult("t", "public.t", 19_646, 19_650, False, mode=mode)
        health = {"t": TableHealth("t", "topic.t", waiting, 1.0, 0.0)}
        [row] = table_rows(["t"], {}, {}, [check], health=health)
        return row["reconciliation"]

    assert outcome("count", 139) == "pending (139 events waiting)"
    assert outcome("count", 0) == "FAIL"
    assert outcome("count", None) == "FAIL"  # the broker did not say: no excuse
    assert outcome("exact", 139) == "FAIL"  # compared at one source position: timing is ruled out


def test_format_shows_every_value_unwrapped_and_without_markup():
    rows = table_rows(
        ["a_very_long_table_name_indeed"],
        {},
        {},
        [ReconcileResult("a_very_long_table_name_indeed", "public.t", 1, 2, False)],
        {"a_very_long_table_name_indeed": "[bold]not markup[/bold] " + "x" * 300},
    )
    lines = format_rows(rows).splitlines()
    assert lines[0].split() == [
        "table", "events", "inserted", "updated", "deleted", "quarantined", "source_position",
        "lag_events", "lag_seconds", "source_rows", "iceberg_rows", "reconciliation", "connector", "error",
    ]  # fmt: skip
    assert len(lines) == 2 and "FAIL" in lines[1] and "[bold]not markup[/bold] " + "x" * 300 in lines[1]
    assert format_rows([]) == "(no tables)"


def test_the_reconciliation_markdown_shows_the_mode_both_counts_the_correction_and_the_keys():
    from floe_cdc.flows.report import reconciliation_markdown

    failed = ReconcileResult(
        "items", "public.items", 10, 11, False, mode="keys", correction=2, source_position="0/2056B98"
    )
    failed.differing_keys = ["7 (missing in Iceberg)"]
    text = reconciliation_markdown([failed], "keys")
    assert "# Reconciliation: keys mode" in text
    assert "| items | FAIL (1 keys differ) | 10 | 2 | 12 | 11 | 0/2056B98 | 0 |" in text
    assert "- `7 (missing in Iceberg)`" in text


def test_the_cycle_summary_and_the_freshness_chart():
    from floe_cdc.flows.freshness import chart
    from floe_cdc.flows.report import cycle_markdown

    rows = table_rows(
        ["orders"],
        {},
        {},
        [ReconcileResult("orders", "public.orders", 3, 3, True)],
        {"orders": "source down"},
    )
    text = cycle_markdown(rows, "Replication cycle: 0 change events merged into 0 tables")
    assert "| orders | 0 | 0 | 0 |  |  | pass |" in text and "- **orders**: source down" in text
    png = chart({"orders": [(1_700_000_000_000, 1.5), (1_700_000_060_000, 0.7)], "empty": []})
    assert png.startswith(b"\x89PNG") and len(png) > 5_000
