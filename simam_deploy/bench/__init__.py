"""Benchmarks: the SimAM kernel alone (:mod:`.kernel`) and whole models side by side
(:mod:`.targets`), with tables, JSON and plots in :mod:`.report`.

Timing rules everywhere: warm-up iterations first (compilation, allocator, clocks), then many
timed iterations; CUDA work is timed with CUDA events around each iteration, CPU work with
``time.perf_counter``; the median is the headline number.
"""

from simam_deploy.bench.timing import LatencyStats, summarize, time_callable

__all__ = ["LatencyStats", "summarize", "time_callable"]
