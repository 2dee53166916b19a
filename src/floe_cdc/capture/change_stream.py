"""Change events fetched without pause: a thread reads Kafka while the caller merges and commits.

A replicator that consumed, then merged, then consumed again left Kafka unread while it merged
and committed. Here one thread keeps reading the assigned partitions into a buffer per topic,
and the caller takes a topic's records when it is ready to commit them. The buffer is bounded:
when it holds ``capacity`` records the thread stops reading, librdkafka's own prefetch queue
fills to its bound and the fetching stops too, so memory stays bounded and back-pressure
reaches the broker.

Nothing here is a checkpoint: the offsets that count travel in each table's Iceberg commit, and
a stream that dies with records in its buffer loses nothing (the next one reads them again).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from floe_cdc.capture.consumer import ChangeConsumer, Probes
from floe_cdc.capture.envelope import KafkaRecord

log = logging.getLogger("floe.stream")


@dataclass
class Pending:
    """A topic's records waiting to be committed, and since when the oldest of them waits
    (monotonic): since Kafka took it (its timestamp), or since it arrived if that is earlier (a
    clock behind the broker's). A backlog read after a restart is due at once, not a
    ``commit_seconds`` after it was read."""

    records: list[KafkaRecord] = field(default_factory=list)
    since: float = 0.0


class ChangeStream:
    """The assigned topics' records, read by a thread of its own into a bounded buffer."""

    def __init__(self, consumer: ChangeConsumer, probes: Probes, capacity: int, idle_seconds: float) -> None:
        """*consumer* is assigned already (see :meth:`ChangeConsumer.assign`); *idle_seconds* is
        how long a partition that should return its table's last record may stay silent before it
        is read again from its beginning."""
        self._consumer = consumer
        self._probes = probes
        self._capacity = capacity
        self._idle_seconds = idle_seconds
        self._pending: dict[str, Pending] = {}
        self._buffered = 0
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._failure: BaseException | None = None
        self._committed: dict[str, dict[int, int]] = {}  # for the group, by this thread (see committed)
        self.last_record = time.monotonic()  # when a record last arrived (monotonic)
        # Whether the broker's last answer showed records not read yet (set by the thread when a
        # poll returns nothing): a slow fetch is not a quiet topic.
        self._behind = True
        self._thread = threading.Thread(target=self._run, name="floe-change-stream", daemon=True)
        self._thread.start()

    @property
    def topics(self) -> list[str]:
        return self._probes.topics

    @property
    def resets(self) -> list[tuple[str, int, int]]:
        """(topic, partition, offset) of each partition read again from its beginning."""
        return self._probes.resets

    def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                with self._changed:
                    if self._buffered >= self._capacity:
                        self._changed.wait(0.2)  # full: the caller commits, then notifies
                        continue
                    room = self._capacity - self._buffered
                    committed, self._committed = self._committed, {}
                if committed:
                    self._consumer.commit_for_monitoring(committed)
                records = self._consumer.poll(self._probes, room)
                if records is None:
                    self._behind = self._consumer.behind()
                    if self._probes.waiting and time.monotonic() - self.last_record >= self._idle_seconds:
                        self._probes.rewind_silent()
                        self.last_record = time.monotonic()
                    continue
                self._add(records)
        except BaseException as exc:  # reported to the caller, who decides what it means
            self._failure = exc
            with self._changed:
                self._changed.notify_all()

    def _add(self, records: list[KafkaRecord]) -> None:
        now, wall = time.monotonic(), time.time()
        with self._changed:
            for record in records:
                pending = self._pending.get(record.topic)
                if pending is None or not pending.records:
                    waited = max(0.0, wall - record.timestamp / 1000) if record.timestamp else 0.0
                    pending = self._pending[record.topic] = Pending([], now - waited)
                pending.records.append(record)
            self._buffered += len(records)
            self.last_record = now
            self._changed.notify_all()

    def _check(self) -> None:
        if self._failure is not None:
            raise self._failure

    def sizes(self) -> dict[str, tuple[int, float]]:
        """Per topic with records waiting: how many, and since when they wait (monotonic)."""
        self._check()
        with self._changed:
            return {topic: (len(p.records), p.since) for topic, p in self._pending.items() if p.records}

    def take(self, topic: str, limit: int) -> list[KafkaRecord]:
        """The topic's first *limit* waiting records (in offset order per partition, as they
        came), out of the buffer; the rest wait on, as old as they were. A table that fell
        behind is committed in batches of *limit*, not of everything the buffer holds."""
        self._check()
        with self._changed:
            pending = self._pending.get(topic)
            records = pending.records[:limit] if pending else []
            if pending is not None:
                del pending.records[:limit]
                if not pending.records:
                    del self._pending[topic]
            self._buffered -= len(records)
            self._changed.notify_all()
        return records

    def committed(self, offsets: dict[str, dict[int, int]]) -> None:
        """Note offsets committed to Iceberg, for the consumer group (lag dashboards). They are
        written by this stream's thread between two polls: the client must not be called from two
        threads at once."""
        with self._changed:
            for topic, parts in offsets.items():
                self._committed.setdefault(topic, {}).update(parts)

    def wait(self, seconds: float, ready: Callable[[], bool] | None = None) -> None:
        """Return after *seconds*, or sooner when records arrive (and *ready* says so, if given)."""
        deadline = time.monotonic() + seconds
        with self._changed:
            while self._failure is None:
                left = deadline - time.monotonic()
                if left <= 0 or not self._changed.wait(left) or ready is None or ready():
                    break
        self._check()

    @property
    def idle_for(self) -> float:
        """Seconds since the last record arrived; 0 while a partition's history is unconfirmed,
        or while the broker's last answer showed records not read yet (a backlog whose fetch is
        slow, on a loaded broker, is not a topic gone quiet: a one-shot run that ended then would
        merge nothing of it and say it was idle)."""
        if self._probes.waiting or self._behind:
            return 0.0
        return time.monotonic() - self.last_record

    def stop(self) -> None:
        """Stop reading and release the assignment; the records still buffered are dropped (the
        next stream reads them again from the tables' checkpoints)."""
        self._stopping.set()
        with self._changed:
            self._changed.notify_all()
        self._thread.join()
        if self._committed:
            self._consumer.commit_for_monitoring(self._committed)
        self._consumer.unassign()
