"""Which lag and stall figures become alerts, and what the alerts say."""

from __future__ import annotations

from floe_cdc.core.config import load_config
from floe_cdc.pipeline.health import LAGGING, STALLED, TableHealth, reconciliation_alerts, table_alerts
from floe_cdc.reconcile.reconcile import ReconcileResult


def test_lag_and_stalls_over_the_limits_are_alerts_that_name_the_table_and_the_fix(shop_config):
    config = load_config(shop_config("fail"))  # defaults: 300 s of lag, 15 minutes without a commit
    health = [
        TableHealth("fresh", "t.fresh", 0, 0.0, 120.0),  # idle for long, but nothing waits
        TableHealth("behind", "t.behind", 500, 900.0, 2.0),
        TableHealth("stuck", "t.stuck", 12, 100.0, 45.0),
        TableHealth("unknown", "t.unknown", None, None, None),
    ]
    alerts = table_alerts(config, health)
    assert [(a.event, a.subject) for a in alerts] == [(LAGGING, "ns.behind"), (STALLED, "ns.stuck")]
    assert "900s behind" in alerts[0].message and "replicate.max_events" in alerts[0].message
    assert "no commit for 45 min" in alerts[1].message and "floe replicate --table stuck" in alerts[1].message


def test_only_failed_reconciliations_are_alerts(shop_config):
    config = load_config(shop_config("fail"))
    results = [
        ReconcileResult("a", "public.a", 10, 10, True),
        ReconcileResult("b", "public.b", None, None, None, "source down"),
        ReconcileResult("c", "public.c", 10, 9, False, mode="exact", correction=1),
    ]
    [alert] = reconciliation_alerts(config, results)
    assert alert.subject == "ns.c" and alert.payload["correction"] == 1
    assert "failed exact reconciliation" in alert.message and "floe resnapshot --table c" in alert.message
