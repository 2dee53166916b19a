"""The freshness picture of a replicate run: lag per table over the recent hours, as a chart
(an image artifact, and the same chart inside a markdown artifact with the figures)."""

from __future__ import annotations

import io
from datetime import UTC, datetime

from prefect.artifacts import create_image_artifact, create_markdown_artifact

from floe_cdc.core.config import PipelineConfig
from floe_cdc.pipeline.freshness import HOURS, history, publish_chart


def chart(series: dict[str, list[tuple[int, float]]]) -> bytes:
    # Imported here: matplotlib takes half a second to import, which every replicate run's start
    # would pay long before its first chart. Without pyplot: no display backend, PNG only.
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9, 3.6), dpi=100)
    axes = figure.subplots()
    for table, points in sorted(series.items()):
        if points:
            times = [datetime.fromtimestamp(ms / 1000, UTC) for ms, _ in points]
            axes.plot(times, [lag for _, lag in points], marker=".", linewidth=1, label=table)
    axes.set_ylabel("lag at commit (s)")
    axes.set_title(f"Freshness of each table, last {HOURS:g} hours (UTC)")
    axes.grid(alpha=0.3)
    if any(series.values()):
        axes.legend(loc="upper left", fontsize="small")
    figure.autofmt_xdate()
    figure.tight_layout()
    out = io.BytesIO()
    figure.savefig(out, format="png")
    return out.getvalue()


def _figures(series: dict[str, list[tuple[int, float]]]) -> list[str]:
    lines = ["| table | commits | latest lag (s) | worst lag (s) |", "|---|---:|---:|---:|"]
    for table, points in sorted(series.items()):
        lags = [lag for _, lag in points]
        latest = f"{lags[-1]:.1f}" if lags else ""
        worst = f"{max(lags):.1f}" if lags else ""
        lines.append(f"| {table} | {len(points)} | {latest} | {worst} |")
    return lines


def publish_freshness(config: PipelineConfig, names: list[str]) -> None:
    """Draw and publish the freshness chart of *names* (artifacts ``floe-freshness``)."""
    series = history(config, names)
    url = publish_chart(config, chart(series))
    lines = [f"# Freshness, last {HOURS:g} hours", ""]
    if url:
        create_image_artifact(
            image_url=url, key="floe-freshness-chart", description="Lag per table at each commit"
        )
        lines += [f"![lag per table at each commit]({url})", ""]
    else:
        lines += ["*(no chart: set iceberg.reports_location to an S3 location to have one)*", ""]
    lines += _figures(series)
    create_markdown_artifact(key="floe-freshness", markdown="\n".join(lines), description="Lag per table")
