"""The key index's storage: sorted runs merged like a log-structured merge tree."""

from __future__ import annotations

import itertools

import numpy as np

from floe_cdc.lake import index_runs
from floe_cdc.lake.index_runs import GONE, Run, merged, sorted_run, tidy
from floe_cdc.lake.key_index import IndexState


def _run(codes: list[int], file: int = 0) -> Run:
    values = np.array(codes, np.int64)
    return sorted_run(values, np.full(len(values), file, np.int32), np.arange(len(values), dtype=np.uint32))


def test_a_merge_keeps_code_order_and_leaves_removed_entries_out():
    older, newer = _run([1, 5, 9, 12]), _run([0, 5, 10], file=1)
    older.file[1] = GONE  # code 5 of the older run was removed
    older.removed = 1
    both = merged(older, newer)
    assert both.codes.tolist() == [0, 1, 5, 9, 10, 12] and both.removed == 0
    assert both.file.tolist() == [1, 0, 1, 0, 1, 0]


def test_runs_stay_few_and_geometric_as_commits_add_small_ones():
    rng = np.random.default_rng(3)
    runs: list[Run] = []
    for _ in range(200):
        runs.append(_run(rng.integers(0, 2**40, 100).tolist()))
        tidy(runs)
        sizes = [len(run) for run in runs]
        assert all(a >= 4 * b for a, b in itertools.pairwise(sizes))  # each a quarter of the last
    assert sum(len(run) for run in runs) == 20_000 and len(runs) <= 6
    assert all(np.all(np.diff(run.codes) >= 0) for run in runs)


def test_a_state_of_several_runs_per_shard_gives_each_shard_in_code_order():
    codes = np.arange(0, 4000, 3, dtype=np.int64)
    shards = index_runs.shards_of(codes)
    state = IndexState(["id"], "p", None, ["f"], [None], [[] for _ in range(index_runs.SHARDS)], [None])
    for shard in range(index_runs.SHARDS):
        mine = codes[shards == shard]
        half = len(mine) // 2
        state.shards[shard] = [_run(mine[:half].tolist()), _run(mine[half:].tolist())]
    live_codes, _, _ = state.live()
    assert sorted(live_codes.tolist()) == codes.tolist()
    assert np.all(np.diff(index_runs.shards_of(live_codes)) >= 0)  # by shard, for a restore
