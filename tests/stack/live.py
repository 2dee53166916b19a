"""A live source for real-stack tests: a writer committing single-row changes every few
milliseconds while a follower runs one-shot replication runs, both until the test is done."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from floe_cdc.core.changes import ChangeBatch
from floe_cdc.core.config import PipelineConfig
from floe_cdc.pipeline.replication import Replicator
from floe_cdc.pipeline.replication_stream import ReplicationStream
from floe_cdc.stack.stack import LocalStack
from tests.stack.pipeline import replicate_until_idle

Statement = tuple[str, tuple]


def cycle(config: PipelineConfig, drop_events: bool = False) -> int:
    """One one-shot run without Prefect, and the number of change events it read; with
    *drop_events* they are skipped (the offsets advance, the rows do not change): a stand-in for
    a sink that loses changes."""
    read = []
    with Replicator(config) as replicator, ReplicationStream(replicator) as stream:
        decode = replicator.decode_table

        def counted(name: str, records: list, properties: dict | None = None) -> ChangeBatch:
            read.append(len(records))
            batch = decode(name, records, properties)
            return batch.without_rows() if drop_events else batch

        replicator.decode_table = counted
        replicate_until_idle(stream)
    return sum(read)


def _write(stack: LocalStack, database: str, statements: Iterator[Statement], stop: threading.Event) -> None:
    conn = stack.postgres.connect(database)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement, args in statements:
                if stop.is_set():
                    return
                cur.execute(statement, args)
                stop.wait(0.004)
    finally:
        conn.close()


def _follow(config: PipelineConfig, stop: threading.Event) -> None:
    while not stop.is_set():
        cycle(config)


@contextmanager
def live_source(
    stack: LocalStack, database: str, config: PipelineConfig, statements: Iterator[Statement]
) -> Iterator[None]:
    """Run *statements* (each in its own transaction, every 4 ms) against *database* and
    replication cycles of *config*, from entering the block until leaving it."""
    stop = threading.Event()
    threads = [
        threading.Thread(target=_write, args=(stack, database, statements, stop)),
        threading.Thread(target=_follow, args=(config, stop)),
    ]
    for thread in threads:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
