"""How fresh each table has been over the recent hours, read from its own commits.

Every Floe commit records the source time of the newest change it applied, so the table's
snapshots already hold its freshness history: no store of Floe's own is needed.
"""

from __future__ import annotations

import time

from floe_cdc.core.config import PipelineConfig
from floe_cdc.lake.catalog import load_table, open_catalog
from floe_cdc.lake.checkpoint import commit_lags
from floe_cdc.lake.reports import publish

HOURS = 6.0


def history(
    config: PipelineConfig, names: list[str], hours: float = HOURS
) -> dict[str, list[tuple[int, float]]]:
    """Per table, (commit time in ms, seconds it lagged its source) over the last *hours*."""
    catalog = open_catalog(config.iceberg)
    since = int((time.time() - hours * 3600) * 1000)
    series = {}
    for name in names:
        table = load_table(catalog, config.iceberg.namespace, name)
        if table is not None:
            series[name] = commit_lags(table, since)
    return series


def publish_chart(config: PipelineConfig, png: bytes) -> str | None:
    """Store the chart under ``iceberg.reports_location``; the URL a browser opens it with (None
    without a location, or on a local disk)."""
    location = config.iceberg.reports_location
    if location is None:
        return None
    path = f"{location.rstrip('/')}/{config.iceberg.namespace}/freshness.png"
    return publish(config.iceberg.catalog_properties(), path, png)
