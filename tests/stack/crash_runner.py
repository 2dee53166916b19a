"""Run one one-shot replication in this process and SIGKILL it at a chosen stage.

Usage: python -m tests.stack.crash_runner CONFIG STAGE, with STAGE one of
``after-consume`` (events read, nothing written), ``during-write`` (a data file written, no
commit), ``after-history`` (ledger's history table committed, ledger not), ``after-commit``
(the first table's commit landed, the other table's not),
``second-commit`` (commits of 50 changes, 100 read ahead: the second landed, read changes wait) or
``none``.
The kill is a real SIGKILL: no cleanup, no finally blocks, exactly like a crashed worker. A
killed cycle is the pipeline's alone (what it leaves behind is what these tests check); ``none``
runs the replicate flow, whose table locks keep two runs at once from writing a table together.
"""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable

from floe_cdc.core.config import load_config
from floe_cdc.flows.replicate import replicate
from floe_cdc.lake import merge, pyiceberg_adapter
from floe_cdc.pipeline.replication import Replicator
from floe_cdc.pipeline.replication_stream import ReplicationStream
from tests.stack.pipeline import replicate_until_idle


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _after(function: Callable) -> Callable:
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        function(*args, **kwargs)
        _die()

    return wrapper


def _arm(stage: str) -> None:
    if stage == "after-consume":
        Replicator.merge = lambda *args, **kwargs: _die()  # read and decoded, nothing written
    elif stage == "during-write":
        write = pyiceberg_adapter._dataframe_to_data_files

        def write_one_then_die(*args, **kwargs):
            for data_file in write(*args, **kwargs):
                yield data_file
                _die()

        pyiceberg_adapter._dataframe_to_data_files = write_one_then_die
    elif stage == "after-history":  # ledger's history committed, ledger's own commit not
        Replicator._record_history = _after(Replicator._record_history)
    elif stage == "after-commit":
        merge._Merge.run = _after(merge._Merge.run)
    elif stage == "second-commit":  # small commits: the stream holds read changes when it dies
        run, commits = merge._Merge.run, []

        def run_then_die_at_the_second(self):
            result = run(self)
            commits.append(result)
            if len(commits) == 2:
                _die()
            return result

        merge._Merge.run = run_then_die_at_the_second
    elif stage != "none":
        raise SystemExit(f"unknown stage {stage}")


if __name__ == "__main__":
    config_path, stage = sys.argv[1], sys.argv[2]
    _arm(stage)
    if stage == "none":
        replicate(config_path=config_path, reconcile_after=False)
    else:
        config = load_config(config_path)
        if stage == "second-commit":
            small = config.replicate.model_copy(update={"commit_events": 50, "buffer_events": 100})
            config = config.model_copy(update={"replicate": small})
        with Replicator(config) as replicator, ReplicationStream(replicator) as stream:
            replicate_until_idle(stream)
