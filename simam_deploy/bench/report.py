"""Presenting benchmark results: rich tables, stable JSON, optional PNG bar plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from simam_deploy.fileio import atomic_output, check_output_path, write_text_atomic

if TYPE_CHECKING:
    from simam_deploy.bench.kernel import KernelBenchmark
    from simam_deploy.bench.targets import TargetBenchmark


def _shape(shape) -> str:
    return "x".join(str(d) for d in shape)


def _opt(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _what(bench: KernelBenchmark) -> str:
    from simam_deploy.bench.kernel import BLOCK_SIMAM

    return "SimAM kernel" if bench.block == BLOCK_SIMAM else f"SimAM block {bench.block}"


def kernel_table(bench: KernelBenchmark) -> Table:
    title = (
        f"{_what(bench)} on {bench.device_name} ({bench.device}), "
        f"median of {bench.iters} after {bench.warmup} warm-up"
    )
    if bench.device == "cpu" and bench.cpu_simd_target:
        title += f"; CPU kernel on {bench.cpu_simd_target}"
    table = Table(title=title)
    for col in ("shape", "dtype", "impl", "median ms", "GB/s", "x eager", "of copy", "max |diff| vs fused"):
        table.add_column(col, justify="left" if col in ("shape", "dtype", "impl") else "right")
    copies = {(_shape(c.shape), c.dtype): c for c in bench.copies}
    for i, row in enumerate(bench.rows):
        table.add_row(
            _shape(row.shape),
            row.dtype,
            row.impl,
            f"{row.median_ms:.3f}",
            f"{row.gb_per_s:.1f}",
            _opt(row.speedup_vs_eager, ".2f"),
            "-" if row.fraction_of_copy is None else f"{100 * row.fraction_of_copy:.0f}%",
            _opt(row.max_abs_diff_vs_fused, ".2e"),
        )
        case = (_shape(row.shape), row.dtype)
        last_of_case = (
            i + 1 == len(bench.rows) or (_shape(bench.rows[i + 1].shape), bench.rows[i + 1].dtype) != case
        )
        if last_of_case and case in copies:
            copy = copies[case]
            table.add_row(*case, copy.method, f"{copy.median_ms:.3f}", f"{copy.gb_per_s:.1f}", "", "100%", "")
    return table


def targets_table(bench: TargetBenchmark) -> Table:
    table = Table(
        title=f"{bench.target} on {bench.device_name}, input {_shape(bench.input_shape)} "
        f"{dtype_label(bench.dtype)}"
    )
    for col in ("backend", "mean ms", "p50 ms", "p90 ms", "p99 ms", "samples/s", "x first"):
        table.add_column(col, justify="left" if col == "backend" else "right")
    first = bench.results[0].stats.p50_ms if bench.results else None
    for res in bench.results:
        s = res.stats
        table.add_row(
            res.backend,
            f"{s.mean_ms:.3f}",
            f"{s.p50_ms:.3f}",
            f"{s.p90_ms:.3f}",
            f"{s.p99_ms:.3f}",
            f"{res.throughput:.1f}",
            f"{first / s.p50_ms:.2f}" if first else "-",
        )
    return table


def to_json_text(payload: dict) -> str:
    """Stable JSON: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def save_json(path: str | Path, payload: dict) -> Path:
    out = check_output_path(path)
    write_text_atomic(out, to_json_text(payload))
    return out


def bar_figure(
    groups: list[str],
    series: dict[str, list[float]],
    ylabel: str,
    title: str,
    spread: dict[str, list[tuple[float, float]]] | None = None,
):
    """Grouped bars with their value printed on top and, where given, a (low, high) spread whisker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 1.4 * len(groups) + 2), 4.4))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        yerr = None
        if spread and spread.get(name):
            lows, highs = zip(*spread[name], strict=True)
            yerr = [
                [max(0.0, v - lo) for v, lo in zip(values, lows, strict=True)],
                [max(0.0, hi - v) for v, hi in zip(values, highs, strict=True)],
            ]
        bars = ax.bar(
            [g + i * width for g in range(len(groups))], values, width, label=name, yerr=yerr, capsize=3
        )
        ax.bar_label(bars, fmt="%.3g", fontsize=7, padding=2)
    ax.set_xticks(
        [g + width * (len(series) - 1) / 2 for g in range(len(groups))], groups, rotation=20, ha="right"
    )
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.margins(y=0.15)  # room for the value labels
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _bar_plot(
    path: str | Path,
    groups: list[str],
    series: dict[str, list[float]],
    ylabel: str,
    title: str,
    spread: dict[str, list[tuple[float, float]]] | None = None,
) -> Path:
    import matplotlib.pyplot as plt

    out = check_output_path(path)
    fig = bar_figure(groups, series, ylabel, title, spread)
    try:
        with atomic_output(out, suffix=".png") as tmp:
            fig.savefig(tmp, format="png", dpi=120)
    finally:
        plt.close(fig)
    return out


def kernel_plot_data(bench: KernelBenchmark) -> tuple[list[str], dict, dict]:
    """(groups, series of GB/s, p10-p90 spread) of the kernel plot."""
    cases = list(dict.fromkeys((_shape(r.shape), r.dtype) for r in bench.rows))
    impls = list(dict.fromkeys(r.impl for r in bench.rows))
    rows = {(_shape(r.shape), r.dtype, r.impl): r for r in bench.rows}
    series: dict[str, list[float]] = {}
    spread: dict[str, list[tuple[float, float]]] = {}
    for impl in impls:
        found = [rows.get((s, d, impl)) for s, d in cases]
        series[impl] = [r.gb_per_s if r else 0.0 for r in found]
        spread[impl] = [_bandwidth_spread(r) for r in found]
    if bench.copies:
        copies = {(_shape(c.shape), c.dtype): c.gb_per_s for c in bench.copies}
        series[bench.copies[0].method] = [copies.get(case, 0.0) for case in cases]
    return [f"{s}\n{d}" for s, d in cases], series, spread


def target_plot_data(bench: TargetBenchmark) -> tuple[list[str], dict, dict]:
    """(backends, series of median ms, p10-p90 spread) of the target plot."""
    series = {"p50 ms": [r.stats.p50_ms for r in bench.results]}
    spread = {"p50 ms": [(_or(r.stats.p10_ms, r.stats.p50_ms), r.stats.p90_ms) for r in bench.results]}
    return [r.backend for r in bench.results], series, spread


def _batches(shapes) -> str:
    return ",".join(str(b) for b in dict.fromkeys(int(s[0]) for s in shapes)) or "-"


def kernel_plot_title(bench: KernelBenchmark) -> str:
    dtypes = ",".join(dict.fromkeys(r.dtype for r in bench.rows))
    batch = _batches(r.shape for r in bench.rows)
    return (
        f"{_what(bench)} on {bench.device_name} ({bench.device}), batch {batch}, "
        f"{dtypes}\nbars: median of {bench.iters}; whiskers: p10-p90"
    )


def target_plot_title(bench: TargetBenchmark) -> str:
    batch = bench.input_shape[0] if bench.input_shape else "-"
    return (
        f"{bench.target} on {bench.device_name} ({bench.device}), batch {batch}, {dtype_label(bench.dtype)}"
        f"\nbars: median of {bench.iters}; whiskers: p10-p90"
    )


def dtype_label(dtype: str) -> str:
    """One spelling of dtypes: fp32/fp16/bf16 (numpy names as a file target records them are mapped)."""
    return {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64"}.get(dtype, dtype)


def plot_kernel(bench: KernelBenchmark, path: str | Path) -> Path:
    """Bars of effective bandwidth (GB/s) per case and implementation (plus the same-run copy);
    whiskers from the p90 time (lower bandwidth) to the p10 time (higher bandwidth)."""
    groups, series, spread = kernel_plot_data(bench)
    from simam_deploy.bench.kernel import BLOCK_SIMAM

    moved = "read x + write y" if bench.block == BLOCK_SIMAM else "read x, r + write z"
    ylabel = f"effective GB/s ({moved})"
    return _bar_plot(path, groups, series, ylabel, kernel_plot_title(bench), spread)


def _or(value: float | None, fallback: float) -> float:
    return fallback if value is None else value


def _bandwidth_spread(row) -> tuple[float, float]:
    if row is None:
        return (0.0, 0.0)
    p10 = row.p10_ms if row.p10_ms else row.median_ms
    return (row.bytes_moved / row.p90_ms / 1e6, row.bytes_moved / p10 / 1e6)


def plot_targets(bench: TargetBenchmark, path: str | Path) -> Path:
    """Bars of median latency per backend, whiskers from p10 to p90."""
    groups, series, spread = target_plot_data(bench)
    return _bar_plot(path, groups, series, "latency (ms)", target_plot_title(bench), spread)
