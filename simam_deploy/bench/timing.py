"""Timing one callable: warm-up, then per-iteration times in milliseconds."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch

from simam_deploy.errors import InputError


@dataclass(frozen=True)
class LatencyStats:
    """Per-iteration latency in milliseconds."""

    iters: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float
    p10_ms: float | None = None  # the lower end of the plots' p10-p90 spread

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def percentile(sorted_values: list[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100]) of already sorted values."""
    if not sorted_values:
        raise ValueError("no values")
    pos = (len(sorted_values) - 1) * q / 100.0
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def summarize(times_ms: list[float]) -> LatencyStats:
    values = sorted(float(t) for t in times_ms)
    if not values:
        raise InputError("no timed iterations", "use --iters >= 1")
    return LatencyStats(
        iters=len(values),
        mean_ms=statistics.fmean(values),
        p10_ms=percentile(values, 10),
        p50_ms=percentile(values, 50),
        p90_ms=percentile(values, 90),
        p99_ms=percentile(values, 99),
        min_ms=values[0],
        max_ms=values[-1],
    )


def check_counts(warmup: int, iters: int) -> None:
    if warmup < 0:
        raise InputError(f"warm-up iterations must be >= 0, got {warmup}", "use --warmup 0 or more")
    if iters < 1:
        raise InputError(f"timed iterations must be >= 1, got {iters}", "use --iters 1 or more")


def time_callable(fn: Callable[[], object], device: str, warmup: int, iters: int) -> list[float]:
    """Run ``fn`` ``warmup`` times untimed, then ``iters`` times; return each iteration's ms.

    On CUDA, a pair of events brackets every iteration on the current stream (no host sync in
    between, so launch overhead overlaps as it would in a real pipeline); on the CPU,
    ``perf_counter`` brackets it.
    """
    check_counts(warmup, iters)
    for _ in range(warmup):
        fn()
    if device == "cuda":
        torch.cuda.synchronize()
        events = [
            (torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(iters)
        ]
        for start, end in events:
            start.record()
            fn()
            end.record()
        torch.cuda.synchronize()
        return [start.elapsed_time(end) for start, end in events]
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return times


def time_interleaved(
    fns: dict[str, Callable[[], object]], warmup: int, iters: int, block: int = 5
) -> dict[str, list[float]]:
    """CPU: time several callables in alternating blocks of ``block`` runs; return each one's ms.

    Alternating makes a comparison fair on a shared machine: a burst of load from elsewhere hits
    every callable alike. Each block starts with one untimed run, because the callable before it may
    leave threads busy for a moment (ONNX Runtime's intra-op workers spin after a run), which would
    bill one callable for another's threads. The order rotates each round.
    """
    check_counts(warmup, iters)
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_index in range(-(-iters // block)):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            fns[name]()  # settle
            for _ in range(min(block, iters - len(times[name]))):
                t0 = time.perf_counter()
                fns[name]()
                times[name].append((time.perf_counter() - t0) * 1e3)
    return times
