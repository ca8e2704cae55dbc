"""Numerical parity: run a target (ONNX Runtime, TensorRT) and a reference (PyTorch) on the same
inputs and compare every output.

Metrics per output: max |a-b|, max relative error |a-b|/|b| over elements with |b| > 1e-6, mean
|a-b|, the fraction of elements outside ``|a-b| <= atol + rtol*|b|`` (numpy.isclose), NaN/Inf
counts on each side, and top-1 agreement for classifier outputs (2-D [N, classes]) over the rows
that are finite on both sides.

NaN policy: a NaN or Inf anywhere in the target's or the reference's outputs fails the run, with
the count and the first positions, unless ``allow_nonfinite`` says the user expects them; then they
must appear in the same places (and Infs with the same sign) on both sides.
A run passes when, in addition, every finite element satisfies ``|t-r| <= atol + rtol*|r|``;
``tolerance_used`` is the largest ``|t-r| / (atol + rtol*|r|)``: at most 1 means pass.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
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
    tolerance_used: float = 0.0
    top1_rows: int = 0
    nonfinite_where: list[str] = field(default_factory=list)
    # quantized targets: agreement where the reference is sure (softmax top > 0.5), and the mean
    # cosine similarity of rows (for embedding outputs, where top-1 means nothing)
    confident_top1: float | None = None
    confident_rows: int = 0
    cosine: float | None = None


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
    allow_nonfinite: bool = False
    precision: str = "fp32"  # the target's computing precision the tolerances were chosen for
    tolerance_source: str = "given"
    # extra top-level report sections (per-layer results, the inputs used), in insertion order
    sections: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.runs) and all(r.passed for r in self.runs)

    def worst(self) -> dict[str, float]:
        stats = [o for r in self.runs for o in r.outputs.values()]
        top1 = [o.top1_agreement for o in stats if o.top1_agreement is not None]
        confident = [o.confident_top1 for o in stats if o.confident_top1 is not None]
        cosine = [o.cosine for o in stats if o.cosine is not None]
        return {
            "tolerance_used": max((o.tolerance_used for o in stats), default=0.0),
            "nonfinite": sum(o.nan_target + o.inf_target + o.nan_reference + o.inf_reference for o in stats),
            "max_abs": max((o.max_abs for o in stats), default=0.0),
            "max_rel": max((o.max_rel for o in stats), default=0.0),
            "frac_outside": max((o.frac_outside for o in stats), default=0.0),
            "min_top1_agreement": min(top1) if top1 else None,
            "min_confident_top1": min(confident) if confident else None,
            "min_cosine": min(cosine) if cosine else None,
        }

    def to_dict(self) -> dict:
        return {
            "schema": REPORT_SCHEMA,
            "passed": self.passed,
            "target": self.target,
            "target_backend": self.target_backend,
            "reference": self.reference,
            "precision": self.precision,
            "tolerance": {
                "atol": self.atol,
                "rtol": self.rtol,
                "allow_nonfinite": self.allow_nonfinite,
                "source": self.tolerance_source,
            },
            "summary": _finite(self.worst()),
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


def _where(mask: np.ndarray, label: str, limit: int = 3) -> str:
    """'5 NaN in target at [0, 3], [0, 7], ...': count and the first positions."""
    idx = np.argwhere(mask)[:limit]
    shown = ", ".join(str(list(map(int, i))) for i in idx)
    more = ", ..." if mask.sum() > limit else ""
    return f"{int(mask.sum())} {label} at {shown}{more}"


def _nonfinite_where(nan_a, inf_a, nan_b, inf_b) -> list[str]:
    parts = []
    for mask, label in (
        (nan_a, "NaN in target"),
        (inf_a, "Inf in target"),
        (nan_b, "NaN in reference"),
        (inf_b, "Inf in reference"),
    ):
        if mask.any():
            parts.append(_where(mask, label))
    return parts


def _top1(a: np.ndarray, b: np.ndarray) -> tuple[float | None, int]:
    """Top-1 agreement over the rows finite on both sides (a NaN row has no argmax)."""
    if a.ndim != 2 or a.shape[1] < 2:
        return None, 0
    rows = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    if not rows.any():
        return None, 0
    agree = np.argmax(a[rows], 1) == np.argmax(b[rows], 1)
    return float(np.mean(agree)), int(rows.sum())


CONFIDENT = 0.5  # a row is "confident" where the reference's top softmax probability exceeds this


def confident_top1(a: np.ndarray, b: np.ndarray) -> tuple[float | None, int]:
    """Top-1 agreement of ``a`` with the reference ``b`` on the finite rows where softmax(b)'s top
    probability is > 0.5: the predictions a user acts on (rows, classes; else (None, 0))."""
    if a.ndim != 2 or a.shape[1] < 2:
        return None, 0
    rows = np.isfinite(a).all(axis=1) & np.isfinite(b).all(axis=1)
    z = b[rows] - b[rows].max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    sure = p.max(axis=1) > CONFIDENT
    if not sure.any():
        return None, 0
    agree = np.argmax(a[rows][sure], 1) == np.argmax(b[rows][sure], 1)
    return float(np.mean(agree)), int(sure.sum())


def mean_cosine(a: np.ndarray, b: np.ndarray) -> float | None:
    """Mean cosine similarity of the finite rows (axis 0 = batch) of ``a`` and ``b``."""
    if a.ndim < 1 or a.shape[0] == 0:
        return None
    x = a.reshape(a.shape[0], -1).astype(np.float64)
    y = b.reshape(b.shape[0], -1).astype(np.float64)
    rows = np.isfinite(x).all(axis=1) & np.isfinite(y).all(axis=1)
    if not rows.any():
        return None
    x, y = x[rows], y[rows]
    norms = np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1)
    both_zero = norms == 0
    cos = np.where(both_zero, 1.0, np.sum(x * y, axis=1) / np.where(both_zero, 1.0, norms))
    return float(np.mean(cos))


def tolerance_used(diff: np.ndarray, ref_abs: np.ndarray, atol: float, rtol: float) -> float:
    """max |t-r| / (atol + rtol*|r|) over finite elements: <= 1 is inside the combined rule."""
    if diff.size == 0:
        return 0.0
    allowed = atol + rtol * ref_abs
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(allowed > 0, diff / np.where(allowed > 0, allowed, 1), np.where(diff > 0, np.inf, 0))
    return float(ratio.max())


def compare_arrays(
    target: np.ndarray, reference: np.ndarray, atol: float, rtol: float, allow_nonfinite: bool = False
) -> OutputStats:
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
    diff = np.abs(a[finite] - b[finite])
    ref_abs = np.abs(b)[finite]
    outside = ~np.isclose(a, b, atol=atol, rtol=rtol, equal_nan=True)
    rel_mask = ref_abs > 1e-6
    top1, top1_rows = _top1(a, b)
    sure_top1, sure_rows = confident_top1(a, b)
    where = _nonfinite_where(nan_a, inf_a, nan_b, inf_b)
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
        tolerance_used=tolerance_used(diff, ref_abs, atol, rtol),
        top1_rows=top1_rows,
        nonfinite_where=where,
        confident_top1=sure_top1,
        confident_rows=sure_rows,
        cosine=mean_cosine(a, b),
    )
    nonfinite_ok = not where or (allow_nonfinite and special_match)
    stats.passed = bool(nonfinite_ok and special_match and not outside.any())
    return stats


def check_feed(
    spec: list[tuple[str, tuple[int | str | None, ...], np.dtype]],
    feed: dict[str, np.ndarray],
    source: str,
) -> None:
    """Refuse inputs the model cannot take (rank, fixed dims, dtype) with the axis named, before any run."""
    for name, dims, dtype in spec:
        if name not in feed:
            continue
        arr = feed[name]
        if arr.ndim != len(dims):
            raise InputError(
                f"{source}: input '{name}' has rank {arr.ndim} (shape {_fmt(arr.shape)}); the model wants "
                f"rank {len(dims)} ({describe_dims(dims)})",
                "give an array of the model's shape, e.g. NxCxHxW",
            )
        for axis, (want, got) in enumerate(zip(dims, arr.shape, strict=True)):
            if isinstance(want, int) and want > 0 and want != got:
                raise InputError(
                    f"{source}: input '{name}' axis {axis_name(axis, len(dims))} is {got}, but the model "
                    f"fixes it to {want} (model input {describe_dims(dims)})",
                    f"use size {want} on that axis, or export the model with that axis dynamic",
                )
        if np.dtype(arr.dtype) != np.dtype(dtype):
            raise InputError(
                f"{source}: input '{name}' is {arr.dtype}; the model wants {np.dtype(dtype).name}",
                f"convert it, e.g. numpy.savez(f, {name}=x.astype(numpy.{np.dtype(dtype).name}))",
            )


def axis_name(axis: int, rank: int) -> str:
    """'1 (C)': NCHW letters for rank-4 inputs, the index otherwise."""
    letters = "NCHW" if rank == 4 else ""
    return f"{axis} ({letters[axis]})" if letters else str(axis)


def describe_dims(dims: tuple[int | str | None, ...]) -> str:
    """'N(dynamic)x3x32x32': fixed sizes as numbers, dynamic axes by letter, never a symbol like s77."""
    letters = "NCHW" if len(dims) == 4 else "?" * len(dims)
    return "x".join(
        str(d) if isinstance(d, int) and d > 0 else f"{letters[i]}(dynamic)" for i, d in enumerate(dims)
    )


def _fmt(shape) -> str:
    return "x".join(map(str, shape))


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
    if export_shape and len(dynamic) == len(export_shape) and dynamic[0]:
        shapes.append((export_shape[0] + 2, *export_shape[1:]))  # any rank: another batch size
    if len(export_shape) == 4 and len(dynamic) == 4:
        n, c, h, w = export_shape
        if dynamic[2] or dynamic[3]:
            h2 = max(8, round(h * 1.25 / 8) * 8) if dynamic[2] else h
            w2 = max(8, round(w * 0.75 / 8) * 8) if dynamic[3] else w
            shapes.append((1 if dynamic[0] else n, c, h2, w2))
    return list(dict.fromkeys(shapes))


def check_parity(
    target: Runner,
    reference: Runner,
    *,
    input_shape: tuple[int, ...] | Mapping[str, tuple[int, ...]],
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    seeds: tuple[int, ...] = DEFAULT_SEEDS,
    inputs: dict[str, np.ndarray] | None = None,
    target_label: str = "",
    reference_label: str = "",
    on_run: Callable[[RunResult], None] | None = None,
    allow_nonfinite: bool = False,
    on_start: Callable[[int, int, str], None] | None = None,
) -> ParityReport:
    """Run both sides on the same inputs and compare every output by position.

    ``input_shape``: one shape (every input; more batch/H/W sizes are tried where the file is
    dynamic) or one per input name (networks with several inputs of any rank).
    ``on_start(i, n, description)`` is called before each of the ``n`` runs (progress)."""
    if atol < 0 or rtol < 0 or not (math.isfinite(atol) and math.isfinite(rtol)):
        raise InputError("--atol and --rtol must be finite and >= 0")
    report = ParityReport(
        target_label, reference_label, atol, rtol, target_backend=target.name, allow_nonfinite=allow_nonfinite
    )
    spec = target.input_spec()
    cases: list[tuple[int | None, dict[str, np.ndarray]]] = []
    if inputs is not None:
        cases.append((None, inputs))
    else:
        if isinstance(input_shape, Mapping):
            variants = [dict(input_shape)]
        else:
            variants = [{n: s for n, _, _ in spec} for s in input_shapes_to_try(spec[0][1], input_shape)]
        for shapes in variants:
            for seed in seeds:
                rng = np.random.default_rng(seed)
                feed = {name: rng.standard_normal(shapes[name]).astype(dtype) for name, _, dtype in spec}
                cases.append((seed, feed))
    for i, (seed, feed) in enumerate(cases):
        check_feed(spec, feed, "inputs file" if seed is None else f"seed {seed}")
        if on_start:
            shape_text = ", ".join(_fmt(v.shape) for v in feed.values())
            on_start(i, len(cases), f"{'file' if seed is None else f'seed {seed}'}, input {shape_text}")
        names = zip(reference.input_names, spec, strict=False)
        ref_feed = {ref_name: feed[name] for ref_name, (name, _, _) in names}
        got = target.infer(feed)
        want = reference.infer(ref_feed)
        outputs = {
            t_name: compare_arrays(got[t_name], want[r_name], atol, rtol, allow_nonfinite)
            for t_name, r_name in zip(target.output_names, reference.output_names, strict=False)
        }
        result = RunResult(seed, {k: list(v.shape) for k, v in feed.items()}, outputs)
        report.runs.append(result)
        if on_run:
            on_run(result)
    return report
