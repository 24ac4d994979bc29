"""benchmarks/chunk_frames.py: every chunk size is timed on the same walk, and the size
reaches the pipeline."""

from __future__ import annotations

from conftest import load_script, spy_chunk_sizes

from worldmem.pipeline import WorldPipeline


def test_each_size_is_timed_with_chunks_of_that_size(tiny_pipeline_dir, monkeypatch):
    bench = load_script("benchmarks/chunk_frames.py", "chunk_bench")
    sizes = spy_chunk_sizes(monkeypatch)
    pipe = WorldPipeline.from_pretrained(tiny_pipeline_dir, device="cpu")
    times = bench.seconds_per_size(pipe, [2, 3], frames=6, rounds=2)
    assert set(times) == {2, 3} and all(len(t) == 2 and min(t) > 0 for t in times.values())
    # a warm-up pass and two rounds, each size in turn: 6 frames as 2+2+2 or 3+3
    assert sizes == [2, 2, 2, 3, 3] * 3
