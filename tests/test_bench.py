"""The merge benchmark's two engines must end with the same rows (its timings are not tested)."""

from bench.merge_throughput import run


def test_benchmark_compares_two_correct_results():
    result = run(rows=2_000, batch_size=200, batches=2, files=2, seed=1)
    assert result["same_result"] is True
    assert set(result["events_per_second"]) == {"floe", "pyiceberg_upsert"}
