"""A following run's count check, off its commit path and aligned to a source position.

Counting "now" on both sides fails for timing whenever the source writes on: Iceberg is always
a second or so behind. So a following run checks in exact mode (``pipeline.exact_reconciliation``):
the source's counts are taken at a source position, and compared once Iceberg has applied
everything they saw, corrected for what it applied beyond. That wait needs the stream to go on
committing, so the check runs in a thread of its own, and the next report picks up its result.
A MongoDB source is compared by count, as ``reconcile`` does in exact mode.
"""

from __future__ import annotations

import logging
import threading

from floe_cdc.core.config import PipelineConfig
from floe_cdc.core.errors import FloeError
from floe_cdc.pipeline.reconciliation import reconcile
from floe_cdc.reconcile.reconcile import ReconcileResult

log = logging.getLogger("floe.reconcile")


class CountCheck:
    """One check of *tables*, started at once; :meth:`take` gives its results once it is done."""

    def __init__(self, config: PipelineConfig, tables: list[str], wait_seconds: float) -> None:
        self._config, self._tables, self._wait_seconds = config, tables, wait_seconds
        self._results: list[ReconcileResult] | None = None
        self._thread = threading.Thread(target=self._run, name="floe-count-check", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._results = reconcile(
                self._config, self._tables, mode="exact", wait_seconds=self._wait_seconds
            )
        except FloeError as exc:  # a source or catalog away: this check is lost, the next one runs
            log.warning("count check of %s not made: %s", ", ".join(self._tables), exc)
            self._results = []

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def take(self) -> list[ReconcileResult] | None:
        """The results once the check has ended (once; None before and after)."""
        if self.running:
            return None
        results, self._results = self._results, None
        return results
