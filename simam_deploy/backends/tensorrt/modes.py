"""``build --mode``: which form of a network to hand TensorRT, and ``auto``: build them all, keep the best.

A network with SimAM can reach TensorRT in several forms: the file as given, its fused form (every
SimAM subgraph one SimAM node: our plugin), its decomposed form (every SimAM node expanded into
standard ops, which TensorRT fuses itself). Which engine is fastest depends on the TensorRT version,
the precision and the GPU (BENCHMARKS.md, "TensorRT's plan around SimAM"), so ``auto`` builds each
distinct form, reads each engine's plan (kernels and transposes per SimAM block, estimated bytes
moved; :mod:`simam_deploy.backends.tensorrt.plan`) and, where a GPU is present, times each engine
in this process. It keeps the fastest (measured latency, else fewer bytes, then fewer kernels) and
writes only that engine, atomically, with a line saying why.

The forms are a list (:data:`FORMS`): the file as given, ``plugin``, ``plugin+epilogue`` (``fuse
--epilogue``: the BatchNorm/residual/activation after each SimAM folded into its node) and
``decomposed``; a new way of writing the network is one more entry.
"""

from __future__ import annotations

import os
import statistics
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from simam_deploy.backends.tensorrt.builder import BuildOptions, BuildReport, build_engine
from simam_deploy.backends.tensorrt.runtime import import_runtime
from simam_deploy.errors import InputError, MissingDependencyError, SimamDeployError
from simam_deploy.fileio import atomic_output, check_input_file, check_output_path

BUILD_MODES = ("as-is", "plugin", "plugin+epilogue", "decomposed", "auto")
DEFAULT_RUNS = 100  # timed runs per engine when a GPU is present (median reported)
WARMUP = 20


@dataclass(frozen=True)
class Form:
    """One way of writing the network: ``make(source, dest)`` writes it to ``dest`` and returns
    whether it differs from ``same_as``'s network and how it was made."""

    name: str
    make: Callable[[Path, Path], tuple[bool, str]] | None  # None: the file as given
    same_as: str | None = None  # the form it equals when make changed nothing


def _make_plugin(source: Path, dest: Path) -> tuple[bool, str]:
    from simam_deploy.graph.pipeline import fuse_file

    report, _ = fuse_file(source, dest)
    if report.fused:
        return True, f"fuse: {len(report.fused)} SimAM subgraph(s) -> SimAM nodes"
    return False, "fuse: no SimAM subgraph to fuse"


def _make_decomposed(source: Path, dest: Path) -> tuple[bool, str]:
    from simam_deploy.graph.pipeline import unfuse_file

    report, _ = unfuse_file(source, dest)
    if report.expanded:
        return True, f"unfuse: {len(report.expanded)} SimAM node(s) -> standard ops"
    return False, "unfuse: no SimAM node to expand"


def _make_plugin_epilogue(source: Path, dest: Path) -> tuple[bool, str]:
    from simam_deploy.graph.pipeline import fuse_file

    report, _ = fuse_file(source, dest, epilogue=True)
    if report.epilogue is not None and report.epilogue.folded:
        fused = f"{len(report.fused)} SimAM subgraph(s) fused, " if report.fused else ""
        return True, f"fuse --epilogue: {fused}{report.epilogue.summary().removeprefix('epilogue: ')}"
    return False, "fuse --epilogue: nothing to fold after the SimAM nodes"


FORMS: tuple[Form, ...] = (
    Form("as-is", None),
    Form("plugin", _make_plugin, same_as="as-is"),
    # what follows each SimAM node (BatchNorm or per-channel Mul/Add, residual Add, Relu/SiLU) folded
    # into it: one kernel per block; the same network as the plugin form when nothing folds
    Form("plugin+epilogue", _make_plugin_epilogue, same_as="plugin"),
    Form("decomposed", _make_decomposed, same_as="as-is"),
)


@dataclass
class Candidate:
    """One form, built (or not): what its plan says and, on a GPU, how fast it ran."""

    form: str
    made: str  # how the file was made ("the file as given", "fuse: ...")
    status: str = "pending"  # "built" | "failed" | "skipped" (the same network as another form)
    error: str | None = None
    report: BuildReport | None = None
    latency_ms: float | None = None  # median of ``runs`` timed runs
    runs: int = 0
    onnx: Path | None = field(default=None, repr=False)
    engine: Path | None = field(default=None, repr=False)

    def _plan(self, key: str) -> Any:
        plan = self.report.plan if self.report is not None else None
        return None if plan is None else plan.get(key)

    @property
    def simam_bytes(self) -> int | None:
        return self._plan("simam_bytes")

    @property
    def kernels(self) -> int | None:
        return self._plan("kernels")

    def per_block(self, key: str) -> float | None:
        blocks, value = self._plan("simam_blocks"), self._plan(key)
        return None if not blocks or value is None else value / blocks

    def to_dict(self) -> dict[str, Any]:
        return {
            "form": self.form,
            "made": self.made,
            "status": self.status,
            "error": self.error,
            "latency_ms": self.latency_ms,
            "runs": self.runs,
            "kernels": self.kernels,
            "simam_blocks": self._plan("simam_blocks"),
            "kernels_per_block": self.per_block("simam_kernels"),
            "layout_kernels_per_block": self.per_block("layout_kernels_next_to_simam"),
            "simam_bytes": self.simam_bytes,
            "build": None if self.report is None else self.report.to_dict(),
        }


def _one_line(exc: BaseException) -> str:
    text = exc.message if isinstance(exc, SimamDeployError) else str(exc)
    return " ".join(text.split())


def _make_forms(
    source: Path, names: Sequence[str], workdir: Path, say: Callable[[str], None]
) -> list[Candidate]:
    """The candidates of ``names``: the file as given or a file written in ``workdir``. A form whose
    maker changed nothing is the same network as its ``same_as`` form: skipped when that form is a
    candidate too, built as is otherwise (``--mode plugin`` on a file that is already fused)."""
    candidates = []
    for form in (f for f in FORMS if f.name in names):
        if form.make is None:
            candidates.append(Candidate(form.name, "the file as given", onnx=source))
            continue
        dest = workdir / f"{source.stem}-{form.name}.onnx"  # the name fp16 notices cite
        say(f"writing the {form.name} form of {source.name}")
        try:
            changed, made = form.make(source, dest)
        except SimamDeployError as exc:
            candidates.append(Candidate(form.name, "not made", "failed", _one_line(exc)))
            continue
        if not changed and form.same_as in names:
            candidates.append(Candidate(form.name, made, "skipped", f"the same network as {form.same_as}"))
            continue
        candidates.append(Candidate(form.name, made, onnx=dest))
    return candidates


def _opt_inputs(runner: Any, profiles: dict[str, list[list[int]]]) -> dict[str, np.ndarray]:
    """Random inputs at the profile's opt shape (static inputs at their shape), the same seed for
    every engine so each times the same work."""
    rng = np.random.default_rng(0)
    inputs = {}
    for name, shape, dtype in runner.input_spec():
        dims = profiles[name][1] if name in profiles else list(shape)
        if any(d is None for d in dims):
            raise InputError(f"input {name} has no opt shape to time the engine with", "give --shapes")
        inputs[name] = rng.standard_normal(dims).astype(dtype)
    return inputs


def gpu_present(cuda_python: str | None = None) -> bool:
    """Whether an engine can run here: a CUDA Python package that sees a GPU."""
    from simam_deploy.backends.tensorrt.device import open_device

    try:
        open_device(cuda_python)
    except MissingDependencyError:
        return False
    return True


def _time(built: list[Candidate], options: BuildOptions, runs: int, say: Callable[[str], None]) -> None:
    """Median latency of each engine: all open at once and timed in interleaved rounds, so a clock
    or temperature drift during the measurement does not favour whichever ran first."""
    from simam_deploy.backends.tensorrt.runner import TensorRTRunner

    runners, inputs = [], []
    for c in built:
        assert c.engine is not None and c.report is not None
        # the runtime that built it (runtime "auto" may have fallen through to TensorRT for RTX)
        runner = TensorRTRunner(c.engine, options.plugin_lib, runtime=c.report.runtime)
        runners.append(runner)
        inputs.append(_opt_inputs(runner, c.report.profiles))
    rounds = min(5, runs)
    times: list[list[float]] = [[] for _ in built]
    say(f"timing {len(built)} engines: {runs} runs each, in {rounds} interleaved rounds")
    for r in range(rounds):
        share = runs // rounds + (1 if r < runs % rounds else 0)
        for i, runner in enumerate(runners):
            times[i] += runner.benchmark(inputs[i], warmup=WARMUP if r == 0 else 2, iters=share)
    for c, t, runner in zip(built, times, runners, strict=True):
        c.latency_ms, c.runs = float(statistics.median(t)), len(t)
        runner.close()


def _key(c: Candidate, timed: bool) -> tuple[float, ...]:
    inf = float("inf")
    if timed:
        return (c.latency_ms if c.latency_ms is not None else inf,)
    return (
        float(c.simam_bytes) if c.simam_bytes is not None else inf,
        float(c.kernels) if c.kernels is not None else inf,
    )


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.2f} MB"


def _reason(best: Candidate, others: list[Candidate], timed: bool, note: str, rest: list[Candidate]) -> str:
    """Why ``best`` was kept, against the runner-up (``rest``: the forms that did not build)."""
    if not others:
        why = ", ".join(f"{c.form} {c.status}" for c in rest)
        return f"{best.form}: the only form that built" + (f" ({why})" if why else "")
    second = others[0]
    if timed:
        assert best.latency_ms is not None and second.latency_ms is not None
        gain = 100 * (1 - best.latency_ms / second.latency_ms) if second.latency_ms else 0.0
        return (
            f"{best.form}: {best.latency_ms:.4f} ms (median of {best.runs} runs), {gain:.1f} % below "
            f"{second.form} ({second.latency_ms:.4f} ms)"
        )
    if best.simam_bytes is not None and best.simam_bytes != second.simam_bytes:
        return (
            f"{best.form}: ~{_mb(best.simam_bytes)} moved by the SimAM blocks, against "
            f"{_mb(second.simam_bytes)} for {second.form} (estimated from the plans){note}"
        )
    if best.kernels is not None and best.kernels != second.kernels:
        return (
            f"{best.form}: {best.kernels} kernels against {second.kernels} for {second.form}, "
            f"the same bytes{note}"
        )
    return f"{best.form}: no plan or timing tells the forms apart; the first form kept{note}"


def build_with_mode(
    onnx_path: str | os.PathLike,
    output: str | os.PathLike,
    mode: str = "as-is",
    options: BuildOptions | None = None,
    *,
    runs: int = DEFAULT_RUNS,
    progress: Callable[[str], None] | None = None,
) -> BuildReport:
    """Build ``onnx_path`` in the form ``mode`` names and write the engine to ``output``.

    ``as-is`` is :func:`build_engine` on the file. ``plugin`` / ``decomposed`` build its fused /
    decomposed form. ``auto`` builds every distinct form, times each engine when a GPU is present
    (``runs`` runs, median; 0 = never time) and keeps the best. The report is the kept engine's, with
    ``mode``, ``form``, ``candidates`` (every form, failed ones with their error) and ``reason``.
    A form that fails is reported and skipped; when every form fails, InputError (exit 2)."""
    options = options or BuildOptions()
    if mode not in BUILD_MODES:
        raise InputError(f"unknown build mode {mode!r}", f"use one of {', '.join(BUILD_MODES)}")
    if runs < 0:
        raise InputError(f"--runs must be >= 0, got {runs}", "e.g. --runs 100, or 0 to never time")
    source = Path(onnx_path)
    if mode == "as-is":
        return build_engine(source, output, **asdict(options))
    check_input_file(source, "model", "check the path of the ONNX file")
    out = check_output_path(output, [source])
    import_runtime(options.runtime)  # TensorRT missing: one clear error, not one per form
    say = progress or (lambda _message: None)
    names = [f.name for f in FORMS] if mode == "auto" else [mode]
    with tempfile.TemporaryDirectory(prefix="simam-build-mode-") as tmp:
        workdir = Path(tmp)
        candidates = _make_forms(source, names, workdir, say)
        todo = [c for c in candidates if c.status == "pending"]
        for i, c in enumerate(todo, 1):
            say(f"[{i}/{len(todo)}] building the {c.form} form ({c.made})")
            c.engine = workdir / f"{source.stem}-{c.form}.engine"
            assert c.onnx is not None  # every pending candidate has its file
            try:
                c.report = build_engine(c.onnx, c.engine, **asdict(options))
                c.status = "built"
            except SimamDeployError as exc:
                c.status, c.error = "failed", _one_line(exc)
                say(f"  {c.form} failed: {c.error}")
        built = [c for c in candidates if c.status == "built"]
        if not built:
            failures = "\n  ".join(f"{c.form}: {c.error}" for c in candidates if c.error)
            raise InputError(
                f"no form of {source.name} built:\n  {failures}",
                "fix the first error above; rerun with --verbose for TensorRT's log",
            )
        timed, note = False, ""
        if len(built) > 1 and runs > 0 and gpu_present():
            try:
                _time(built, options, runs, say)
                timed = True
            except SimamDeployError as exc:  # e.g. an RTX engine on a GPU RTX does not run on
                for c in built:
                    c.latency_ms, c.runs = None, 0
                note = f"; not timed: {_one_line(exc)}"
                say(f"  timing failed, the plans decide{note}")
        elif len(built) > 1:
            note = "; not timed: " + ("--runs 0" if runs == 0 else "no GPU here")
        ranked = sorted(built, key=lambda c: _key(c, timed))  # stable: ties keep the FORMS order
        best = ranked[0]
        assert best.engine is not None and best.report is not None
        with atomic_output(out) as tmp_engine:
            tmp_engine.write_bytes(best.engine.read_bytes())
    report = replace(
        best.report,
        engine=str(out),
        onnx=str(source),
        mode=mode,
        form=best.form,
        reason=(
            _reason(best, ranked[1:], timed, note, [c for c in candidates if c.status != "built"])
            if mode == "auto"
            else f"--mode {mode}"
        ),
    )
    report.candidates = [c.to_dict() for c in candidates]
    for entry in report.candidates:  # the discarded engines (and the temporary files) are gone
        if entry["build"] is not None:
            entry["build"]["engine"] = str(out) if entry["form"] == best.form else None
            entry["build"]["onnx"] = str(source) if entry["form"] == "as-is" else None
    return report
