"""Numerical parity: run a target (ONNX Runtime, TensorRT) and a reference (PyTorch) on the same
inputs and compare every output.

Metrics per output: max |a-b|, max relative error |a-b|/|b| over elements with |b| > 1e-6, mean
|a-b|, the fraction of elements outside ``|a-b| <= atol + rtol*|b|`` (numpy.isclose), NaN/Inf
counts on each side, and top-1 agreement for classifier outputs (2-D [N, classes]).
A run passes when no element is outside tolerance and NaN/Inf appear in the same places.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from simam_deploy.backends import Runner
from simam_deploy.errors import InputError

DEFAULT_ATOL = 1e-4
DEFAULT_RTOL = 1e-3
DEFAULT_SEEDS = (0, 1, 2)
REPORT_SCHEMA = "simam-deploy/validate/v1"


@dataclass
class OutputStats:
    max_abs: float
    max_rel: float
    mean_abs: float
    frac_outside: float
    elements: int
    nan_target: int
    nan_reference: int
    inf_target: int
    inf_reference: int
    top1_agreement: float | None
    passed: bool


@dataclass
class RunResult:
    seed: int | None
    input_shapes: dict[str, list[int]]
    outputs: dict[str, OutputStats]

    @property
    def passed(self) -> bool:
        return all(o.passed for o in self.outputs.values())


@dataclass
class ParityReport:
    target: str
    reference: str
    atol: float
    rtol: float
    runs: list[RunResult] = field(default_factory=list)
    target_backend: str = ""
    # extra top-level report sections (per-layer results, the inputs used), in insertion order
    sections: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.runs) and all(r.passed for r in self.runs)

    def worst(self) -> dict[str, float]:
        stats = [o for r in self.runs for o in r.outputs.values()]
        top1 = [o.top1_agreement for o in stats if o.top1_agreement is not None]
        return {
            "max_abs": max((o.max_abs for o in stats), default=0.0),
            "max_rel": max((o.max_rel for o in stats), default=0.0),
            "frac_outside": max((o.frac_outside for o in stats), default=0.0),
            "min_top1_agreement": min(top1) if top1 else None,
        }

    def to_dict(self) -> dict:
        return {
            "schema": REPORT_SCHEMA,
            "passed": self.passed,
            "target": self.target,
            "target_backend": self.target_backend,
            "reference": self.reference,
            "tolerance": {"atol": self.atol, "rtol": self.rtol},
            "summary": self.worst(),
            "runs": [
                {
                    "seed": r.seed,
                    "input_shapes": r.input_shapes,
                    "passed": r.passed,
                    "outputs": {k: _finite(asdict(v)) for k, v in r.outputs.items()},
                }
                for r in self.runs
            ],
            **self.sections,
        }


def _finite(d: dict) -> dict:
    """JSON has no NaN/Inf: report them as strings so the file stays standard JSON."""
    return {k: (str(v) if isinstance(v, float) and not math.isfinite(v) else v) for k, v in d.items()}


def compare_arrays(target: np.ndarray, reference: np.ndarray, atol: float, rtol: float) -> OutputStats:
    if target.shape != reference.shape:
        raise InputError(f"output shapes differ: target {target.shape} vs reference {reference.shape}")
    a = target.astype(np.float64)
    b = reference.astype(np.float64)
    nan_a, nan_b = np.isnan(a), np.isnan(b)
    inf_a, inf_b = np.isinf(a), np.isinf(b)
    special_match = (
        np.array_equal(nan_a, nan_b) and np.array_equal(inf_a, inf_b) and np.array_equal(a[inf_a], b[inf_b])
    )
    finite = np.isfinite(a) & np.isfinite(b)
    diff = np.abs(a - b)[finite]
    ref_abs = np.abs(b)[finite]
    outside = ~np.isclose(a, b, atol=atol, rtol=rtol, equal_nan=True)
    rel_mask = ref_abs > 1e-6
    top1 = None
    if a.ndim == 2 and a.shape[1] > 1:
        top1 = float(np.mean(np.argmax(np.nan_to_num(a), 1) == np.argmax(np.nan_to_num(b), 1)))
    stats = OutputStats(
        max_abs=float(diff.max()) if diff.size else 0.0,
        max_rel=float((diff[rel_mask] / ref_abs[rel_mask]).max()) if rel_mask.any() else 0.0,
        mean_abs=float(diff.mean()) if diff.size else 0.0,
        frac_outside=float(outside.mean()) if a.size else 0.0,
        elements=int(a.size),
        nan_target=int(nan_a.sum()),
        nan_reference=int(nan_b.sum()),
        inf_target=int(inf_a.sum()),
        inf_reference=int(inf_b.sum()),
        top1_agreement=top1,
        passed=False,
    )
    stats.passed = bool(special_match and not outside.any())
    return stats


def load_inputs_npz(path: str | Path, input_names: list[str]) -> dict[str, np.ndarray]:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"inputs file {path} does not exist")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:
        raise InputError(f"cannot read {path} as .npz: {exc}", "save inputs with numpy.savez") from exc
    if len(input_names) == 1 and len(arrays) == 1:
        return {input_names[0]: next(iter(arrays.values()))}
    missing = [n for n in input_names if n not in arrays]
    if missing:
        raise InputError(
            f"{path} has no arrays named {missing} (it has {sorted(arrays)})",
            "name the arrays after the model's inputs: numpy.savez(f, input=x)",
        )
    return {n: arrays[n] for n in input_names}


def input_shapes_to_try(
    spec_shape: tuple[int | str | None, ...], export_shape: tuple[int, ...]
) -> list[tuple[int, ...]]:
    """The export shape, plus other batch/H/W values where the file's axes are dynamic."""
    shapes = [tuple(export_shape)]
    dynamic = [not isinstance(d, int) for d in spec_shape]
    if len(export_shape) == 4 and len(dynamic) == 4:
        n, c, h, w = export_shape
        if dynamic[0]:
            shapes.append((n + 2, c, h, w))
        if dynamic[2] or dynamic[3]:
            h2 = max(8, round(h * 1.25 / 8) * 8) if dynamic[2] else h
            w2 = max(8, round(w * 0.75 / 8) * 8) if dynamic[3] else w
            shapes.append((1 if dynamic[0] else n, c, h2, w2))
    return list(dict.fromkeys(shapes))


def check_parity(
    target: Runner,
    reference: Runner,
    *,
    input_shape: tuple[int, ...],
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    seeds: tuple[int, ...] = DEFAULT_SEEDS,
    inputs: dict[str, np.ndarray] | None = None,
    target_label: str = "",
    reference_label: str = "",
    on_run: Callable[[RunResult], None] | None = None,
) -> ParityReport:
    """Run both sides on the same inputs and compare every output by position."""
    if atol < 0 or rtol < 0 or not (math.isfinite(atol) and math.isfinite(rtol)):
        raise InputError("--atol and --rtol must be finite and >= 0")
    report = ParityReport(target_label, reference_label, atol, rtol, target_backend=target.name)
    spec = target.input_spec()
    cases: list[tuple[int | None, dict[str, np.ndarray]]] = []
    if inputs is not None:
        cases.append((None, inputs))
    else:
        for shape in input_shapes_to_try(spec[0][1], input_shape):
            for seed in seeds:
                rng = np.random.default_rng(seed)
                feed = {name: rng.standard_normal(shape).astype(dtype) for name, _, dtype in spec}
                cases.append((seed, feed))
    for seed, feed in cases:
        names = zip(reference.input_names, spec, strict=False)
        ref_feed = {ref_name: feed[name] for ref_name, (name, _, _) in names}
        got = target.infer(feed)
        want = reference.infer(ref_feed)
        outputs = {
            t_name: compare_arrays(got[t_name], want[r_name], atol, rtol)
            for t_name, r_name in zip(target.output_names, reference.output_names, strict=False)
        }
        result = RunResult(seed, {k: list(v.shape) for k, v in feed.items()}, outputs)
        report.runs.append(result)
        if on_run:
            on_run(result)
    return report
