"""The merge benchmark's two engines must end with the same rows (its timings are not tested)."""

from bench.merge_throughput import measure


def test_benchmark_compares_two_correct_results():
    result = measure("local", rows=2_000, batch=200, batches=2, warmup=1, files=2, seed=1)
    assert result["same_result"] is True
    assert set(result["events_per_second"]) == {"floe", "pyiceberg_upsert"}
    floe = result["engines"]["floe"]
    assert floe["bytes_written"] > 0 and floe["peak_rss_mb"] > 0 and len(floe["seconds_per_batch"]) == 2
    assert len(floe["warmup_seconds"]) == 1  # applied (both tables have its rows), not timed
    # A merge writes at least a data file, a delete file, a manifest of each, a list and metadata.
    assert floe["objects_per_batch"] >= 6
    # An index entry holds at least a key code, a file ordinal and a row position (8 + 4 + 4 bytes).
    assert floe["index_bytes_per_live_row"] >= 16
    assert result["engines"]["pyiceberg_upsert"]["index_bytes_per_live_row"] is None
