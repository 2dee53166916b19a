"""A live source for real-stack tests: a writer committing single-row changes every few
milliseconds while a follower runs replication cycles, both until the test is done."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from floe_cdc.core.config import PipelineConfig
from floe_cdc.pipeline.replication import Replicator
from floe_cdc.stack.stack import LocalStack

Statement = tuple[str, tuple]


def cycle(config: PipelineConfig, drop_events: bool = False) -> int:
    """One replication cycle without Prefect; with *drop_events* the events are skipped (the
    offsets advance, the rows do not change): a stand-in for a sink that loses changes."""
    with Replicator(config) as replicator:
        checkpoints = replicator.checkpoints()
        changes, consumed = replicator.consume(checkpoints)
        for name, table_changes in changes.items():
            if drop_events:
                table_changes.batch = table_changes.batch.without_rows()
            replicator.merge(table_changes, checkpoints[name])
        return consumed.count


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
