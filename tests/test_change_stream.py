"""The stream's buffer: how long a table's waiting changes count as waiting (no broker: a
consumer that hands over one poll of records)."""

from __future__ import annotations

import time
from types import SimpleNamespace

from floe_cdc.capture.change_stream import ChangeStream
from floe_cdc.capture.envelope import KafkaRecord


class _OnePoll:
    def __init__(self, records: list[KafkaRecord]) -> None:
        self.records = records

    def poll(self, probes: object, room: int) -> list[KafkaRecord] | None:
        records, self.records = self.records, []
        if not records:
            time.sleep(0.01)
        return records or None

    def behind(self) -> bool:
        return False

    def commit_for_monitoring(self, committed: dict) -> None:
        pass

    def unassign(self) -> None:
        pass


def test_changes_wait_since_kafka_took_them_so_a_backlog_is_due_at_once():
    """After a restart, changes Kafka took seconds ago are due now; a change just written waits
    its ``commit_seconds`` from now, and a broker clock ahead of ours never makes one wait less."""
    now_ms = int(time.time() * 1000)
    records = [
        KafkaRecord("backlog", 0, 0, None, None, now_ms - 5000),
        KafkaRecord("backlog", 0, 1, None, None, now_ms - 100),
        KafkaRecord("fresh", 0, 0, None, None, now_ms),
        KafkaRecord("ahead", 0, 0, None, None, now_ms + 60_000),
        KafkaRecord("unstamped", 0, 0, None, None, None),
    ]
    stream = ChangeStream(_OnePoll(records), SimpleNamespace(waiting={}, topics=[]), 100, 3.0)
    try:
        deadline = time.monotonic() + 5
        while len(stream.sizes()) < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        sizes, now = stream.sizes(), time.monotonic()
    finally:
        stream.stop()
    waited = {topic: now - since for topic, (_, since) in sizes.items()}
    assert sizes["backlog"][0] == 2 and 4.9 <= waited["backlog"] < 6
    assert all(0 <= waited[topic] < 1 for topic in ("fresh", "ahead", "unstamped"))


def test_a_table_that_fell_behind_is_taken_in_batches_of_the_limit_in_order():
    records = [KafkaRecord("t", offset % 2, offset, None, None, None) for offset in range(10)]
    stream = ChangeStream(_OnePoll(records), SimpleNamespace(waiting={}, topics=[]), 100, 3.0)
    try:
        deadline = time.monotonic() + 5
        while not stream.sizes() and time.monotonic() < deadline:
            time.sleep(0.01)
        since = stream.sizes()["t"][1]
        batches = [[r.offset for r in stream.take("t", 4)]]
        assert stream.sizes() == {"t": (6, since)}  # the rest waits on, as old as it was
        batches += [[r.offset for r in stream.take("t", 4)] for _ in range(2)]
        assert stream.sizes() == {} and stream.take("t", 4) == []
    finally:
        stream.stop()
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


class _SlowFetch(_OnePoll):
    """A broker whose fetch answers nothing for a while although it said it holds records."""

    def __init__(self) -> None:
        super().__init__([])
        self.holding = True

    def behind(self) -> bool:
        return self.holding


def test_a_backlog_whose_fetch_is_slow_is_not_idle():
    consumer = _SlowFetch()
    stream = ChangeStream(consumer, SimpleNamespace(waiting={}, topics=[]), 100, 3.0)
    try:
        time.sleep(0.3)
        assert stream.idle_for == 0.0  # nothing came, but the broker said records wait
        consumer.holding = False
        deadline = time.monotonic() + 5
        while stream.idle_for == 0.0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert stream.idle_for > 0.0  # read to the end: quiet from now on
    finally:
        stream.stop()
