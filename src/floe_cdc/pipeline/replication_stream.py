"""Replication as a stream: one object, alive as long as its process, that keeps reading Kafka
and commits each table when its changes are many enough or old enough.

It owns what is costly to make: the catalog, the decoders and the key indexes (through its
:class:`Replicator`), and a Kafka consumer assigned once, whose thread reads on while a table is
merged and committed (see :class:`ChangeStream`). A table commits when its waiting changes reach
``replicate.commit_events`` or have waited ``replicate.commit_seconds``, not when a window over
every table ends. Nothing else is on this path: connector states, health, alerts,
reconciliation and reports are the caller's business, on cadences of their own.

Exactly-once as before: each commit carries the table's offsets and source position, and a
stream that stops (a crash, a failed table, a new topic) is opened again from the tables'
checkpoints. A table that fails is not committed to again before that, so that no later batch
can commit over the changes of the failed one.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from floe_cdc.capture.change_stream import ChangeStream
from floe_cdc.capture.consumer import ChangeConsumer
from floe_cdc.core.errors import FloeError
from floe_cdc.lake.checkpoint import Checkpoint, read_checkpoint
from floe_cdc.lake.merge import MergeResult
from floe_cdc.lake.resnapshot_branch import BRANCH as RESNAPSHOT_BRANCH
from floe_cdc.pipeline.replication import Replicator, TableChanges
from floe_cdc.pipeline.snapshot_completion import Completion, finished_snapshots

log = logging.getLogger("floe.replication")

# How often a stream expires and thins the snapshots of the tables it commits to.
_EXPIRY_SECONDS = 60.0


@dataclass
class Step:
    """What one step of the stream did: each table's merges told as one, the tables that failed
    (not committed to again until the stream reopens), and why the step ended."""

    merges: dict[str, MergeResult] = field(default_factory=dict)
    failures: dict[str, FloeError] = field(default_factory=dict)
    ended_because: str = ""

    @property
    def events(self) -> int:
        return sum(result.events for result in self.merges.values())

    def add(self, result: MergeResult) -> None:
        earlier = self.merges.get(result.table)
        self.merges[result.table] = earlier.then(result) if earlier else result


class ReplicationStream:
    """The configured tables' changes, read continuously and committed per table."""

    def __init__(self, replicator: Replicator) -> None:
        self.replicator = replicator
        self.settings = replicator.config.replicate
        self._consumer = ChangeConsumer(replicator.config.kafka)
        self._stream: ChangeStream | None = None
        self._checkpoints: dict[str, Checkpoint] = {}
        self._completions: dict[str, Completion] = {}
        self._failed: dict[str, FloeError] = {}
        self._table_of = {target.topic: name for name, target in replicator.targets.items()}
        self._opened_at = self._refreshed = 0.0
        self._expired_at = self._indexes_saved_at = time.monotonic()
        self._merged: set[str] = set()  # tables this stream has committed to
        self.held: list[str] = []  # tables being re-snapshotted directly: their changes wait in Kafka

    def close(self) -> None:
        self._stop_stream()
        self._consumer.close()

    def __enter__(self) -> ReplicationStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def checkpoints(self) -> dict[str, Checkpoint]:
        """Each table's checkpoint as of its last commit (or of the stream's opening)."""
        return dict(self._checkpoints)

    def _open(self) -> None:
        """Read from each table's checkpoint on; a table re-snapshotted directly is left out until
        its branch is gone, and re-snapshots whose scan finished are noted for their tables."""
        checkpoints = self.replicator.checkpoints()
        self._checkpoints = checkpoints
        self._failed = {}
        self.replicator.prefetch_indexes()
        self.held = self._held(checkpoints)
        for name in self.held:
            log.info("%s is being re-snapshotted directly; its changes wait in Kafka until it is read", name)
        active = {n: t for n, t in self.replicator.targets.items() if n not in self.held}
        self._completions = finished_snapshots(
            self.replicator.consumer, {n: (t.source, t.table) for n, t in active.items()}, checkpoints
        )
        start = {t.topic: checkpoints[n].offsets.get(t.topic, {}) for n, t in active.items()}
        stamps = {t.topic: checkpoints[n].stamps.get(t.topic, {}) for n, t in active.items()}
        probes = self._consumer.assign(start, list(start), stamps)
        self._opened_at = self._refreshed = time.monotonic()
        log.info(
            "reading %d of %d tables' topics from their checkpoints",
            len(probes.topics) if probes else 0,
            len(active),
        )
        if probes is not None:
            self._stream = ChangeStream(
                self._consumer, probes, self.settings.buffer_events, self.settings.idle_seconds
            )

    def _held(self, checkpoints: dict[str, Checkpoint]) -> list[str]:
        """The tables being re-snapshotted directly (their branch exists)."""
        return sorted(n for n in self.replicator.targets if RESNAPSHOT_BRANCH in checkpoints[n].refs)

    def _stop_stream(self) -> None:
        if self._stream is not None:
            self._stream.stop()
            self._stream = None

    def _refresh(self) -> bool:
        """Every ``replicate.refresh_seconds``: note the incremental re-snapshots whose scan has
        finished since, and say whether the stream reads the wrong topics (a table's first topic
        appeared, a direct re-snapshot's branch came or went) and must open again."""
        checkpoints = self.replicator.checkpoints()
        held = self._held(checkpoints)
        active = {n: t for n, t in self.replicator.targets.items() if n not in held}
        waiting = {n: (t.source, t.table) for n, t in active.items() if n not in self._completions}
        self._completions.update(finished_snapshots(self.replicator.consumer, waiting, checkpoints))
        reading = set(self._stream.topics) if self._stream else set()
        wanted = sorted({t.topic for t in active.values()})
        return held != self.held or set(self.replicator.consumer.partitions(wanted)) != reading

    def step(self, seconds: float, stop: threading.Event | None = None, until_idle: bool = False) -> Step:
        """Commit tables as their changes come, for up to *seconds*, or until *stop* is set, or
        (*until_idle*) until nothing has come for ``replicate.idle_seconds`` and nothing waits.

        Changes still waiting when it ends stay in the buffer for the next step, except after
        *stop* or in an *until_idle* step, which commit them first.
        """
        step = Step()
        began = time.monotonic()
        if self._stream is None or self._failed or (until_idle and self._refresh()):
            self._reopen()  # a one-shot step reads every topic there is when it starts
        while True:
            now = time.monotonic()
            if self._stream is not None:
                for topic, (count, since) in self._stream.sizes().items():
                    if count >= self.settings.commit_events or now - since >= self.settings.commit_seconds:
                        self._commit(topic, step)
            if stop is not None and stop.is_set():
                step.ended_because = "stopped"
                break
            if self._failed:
                step.ended_because = f"{', '.join(sorted(self._failed))} failed"
                break
            if until_idle and self._idle(began):
                step.ended_because = f"idle for {self.settings.idle_seconds:g}s"
                break
            if until_idle and step.events >= self.settings.max_events:
                step.ended_because = f"max_events ({self.settings.max_events})"
                break
            if now - began >= seconds:
                step.ended_because = f"{seconds:g}s"
                break
            if now - self._expired_at >= _EXPIRY_SECONDS:
                self._expired_at = now
                for name in sorted(self._merged - set(self._failed)):
                    self.replicator.expire_snapshots(name)
            if now - self._indexes_saved_at >= self.settings.index_save_seconds:
                self._indexes_saved_at = now
                self.replicator.save_indexes()
            if now - self._refreshed >= self.settings.refresh_seconds:
                self._refreshed = now
                self._complete_quiet_tables(step)
                if self._refresh():
                    self._commit_all(step)
                    self._reopen()
                    continue
            self._wait()
        if until_idle or (stop is not None and stop.is_set()):
            self._commit_all(step)
        step.failures = dict(self._failed)
        return step

    def _reopen(self) -> None:
        self._stop_stream()
        self._open()

    def reset(self) -> None:
        """Stop reading; the next step reads again from the tables' checkpoints (after an error)."""
        self._stop_stream()

    def _idle(self, began: float) -> bool:
        """Nothing waits, and nothing has come for ``idle_seconds`` since *began* (a step's start)."""
        quiet_since = max(began, self._opened_at)
        if self._stream is None:
            return time.monotonic() - quiet_since >= self.settings.idle_seconds
        if self._stream.sizes() or self._stream.idle_for < self.settings.idle_seconds:
            return False
        return time.monotonic() - quiet_since >= self.settings.idle_seconds

    def _wait(self) -> None:
        """Until a table is due, or a little while (the loop asks again)."""
        if self._stream is None:
            time.sleep(0.25)
            return
        sizes = self._stream.sizes()
        oldest = min((since for _, since in sizes.values()), default=None)
        due_in = 0.25 if oldest is None else oldest + self.settings.commit_seconds - time.monotonic()
        self._stream.wait(
            max(min(due_in, 0.25), 0.01),
            ready=lambda: any(c >= self.settings.commit_events for c, _ in self._stream.sizes().values()),
        )

    def _commit_all(self, step: Step) -> None:
        """Commit every change waiting now (in batches of ``commit_events``; not the ones that
        keep coming meanwhile, or a stop under load would never end)."""
        if self._stream is not None:
            for topic, (count, _) in self._stream.sizes().items():
                for _ in range(-(-count // self.settings.commit_events)):
                    self._commit(topic, step)
        self._complete_quiet_tables(step)

    def _commit(self, topic: str, step: Step) -> None:
        """Merge the topic's waiting changes into its table, in one commit with their offsets."""
        name = self._table_of[topic]
        records = self._stream.take(topic, self.settings.commit_events) if self._stream else []
        if name in self._failed or not records:
            return  # a failed table's changes are read again when the stream reopens
        changes = TableChanges(records, self.replicator.decode_table(name, records, self._properties(name)))
        self._merge(name, changes, step)

    def _properties(self, name: str) -> dict[str, str]:
        return self._checkpoints[name].table_properties

    def _merge(self, name: str, changes: TableChanges, step: Step) -> None:
        # The checkpoint of this stream's last commit: the merge is refused if another replicator
        # has committed since, and the stream then reads again from the table.
        checkpoint = self._checkpoints[name]
        try:
            completion = self._completions.get(name)
            if completion is not None:
                self.replicator.complete({name: changes}, checkpoint, completion)
                if changes.batch.snapshot_completed is not None:
                    del self._completions[name]
            result = self.replicator.merge(changes, checkpoint)
        except FloeError as exc:
            log.error("table %s was not merged: %s", name, exc)
            self._failed[name] = exc
            return
        self._checkpoints[name] = read_checkpoint(self.replicator.table(name))
        self._merged.add(name)
        if self._stream is not None:
            self._stream.committed(changes.batch.offsets)
        step.add(result)

    def _complete_quiet_tables(self, step: Step) -> None:
        """A table whose finished re-snapshot waits for no more changes gets an empty commit for it."""
        for name, completion in list(self._completions.items()):
            if name in self._failed:
                continue
            checkpoint = self._checkpoints[name]
            topic = self.replicator.targets[name].topic
            if completion.reached(checkpoint.offsets.get(topic, {})):
                changes: dict[str, TableChanges] = {}
                self.replicator.complete(changes, checkpoint, completion)
                del self._completions[name]
                if name in changes:
                    self._merge(name, changes[name], step)
