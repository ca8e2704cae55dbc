"""Parity against outputs saved on another machine (``validate --reference-outputs``), without torch.

A Jetson often has TensorRT's Python bindings and numpy but no torch. The host saves the inputs and
PyTorch's outputs on them (``validate --save-inputs DIR --save-outputs DIR``, or Polygraphy's
``--save-inputs``/``--save-outputs`` JSON); the device runs its artefact on exactly those inputs and
compares with the same metrics, verdict, report and exit codes as a live PyTorch reference.

Pairing is strict: input sets and output sets are matched by position (one per Polygraphy
iteration; one for a saved folder), and their counts, tensor names and output shapes must agree
with each other and with the target, else the run stops with exit 2 naming both files. Nothing here
imports torch (a test runs this path where ``import torch`` fails).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from simam_deploy.backends import Runner, load_runner
from simam_deploy.errors import InputError
from simam_deploy.inputs import InputSet, load_inputs, load_polygraphy_outputs, load_tensors, overall_top1
from simam_deploy.parity import ParityReport, RunResult, check_feed, check_parity
from simam_deploy.precision import resolve_tolerances

SAVE_HINT = (
    "save inputs and outputs together on the host: simam-deploy validate MODEL.onnx --reference MODEL "
    "--save-inputs io/ --save-outputs io/ (or polygraphy run MODEL.onnx --onnxrt --save-inputs in.json "
    "--save-outputs out.json)"
)


@dataclass
class SavedOutputs:
    """Reference outputs read from disk: one dict of named tensors per input set."""

    path: str
    format: str  # "simam-deploy" (a --save-outputs folder) | "polygraphy" (RunResults JSON)
    sets: list[dict[str, np.ndarray]]
    runner: str | None = None  # the Polygraphy runner that produced them

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "sets": len(self.sets), "runner": self.runner}


def load_reference_outputs(source: str | os.PathLike) -> SavedOutputs:
    """A folder written by ``validate --save-outputs`` or Polygraphy's ``--save-outputs`` JSON."""
    path = Path(source)
    if path.is_dir():
        if not (path / "outputs.manifest.json").is_file():
            raise InputError(f"{path} holds no outputs.manifest.json (no saved reference outputs)", SAVE_HINT)
        return SavedOutputs(str(path), "simam-deploy", [load_tensors(path, "outputs")])
    if path.suffix.lower() == ".json" and path.is_file():
        runner, sets = load_polygraphy_outputs(path)
        return SavedOutputs(str(path), "polygraphy", sets, runner)
    what = "does not exist" if not path.exists() else "is neither a folder nor a .json file"
    raise InputError(f"--reference-outputs {path} {what}", SAVE_HINT)


def reference_inputs(inputs: str | os.PathLike | None, outputs: SavedOutputs, spec: Sequence) -> InputSet:
    """The inputs the saved outputs were computed on: ``inputs`` when given, else the inputs saved in
    the same folder as the outputs."""
    if inputs is None:
        folder = Path(outputs.path)
        if not (folder.is_dir() and (folder / "inputs.manifest.json").is_file()):
            raise InputError(
                f"the inputs that {outputs.path} was computed on are not given",
                "add --inputs DIR (the folder of validate --save-inputs) or --inputs inputs.json "
                "(polygraphy run --save-inputs)",
            )
        inputs = folder
    path = Path(inputs)
    saved = path.suffix.lower() in (".json", ".npz") or (path / "inputs.manifest.json").is_file()
    if not saved:  # images or a callable would make new inputs, which the saved outputs do not belong to
        raise InputError(
            f"--inputs {inputs} is not a file of saved tensors; saved reference outputs need the saved "
            "inputs they were computed on",
            "give the --save-inputs folder or Polygraphy --save-inputs JSON written with the outputs",
        )
    return load_inputs(inputs, spec)


def _names(kind: str, got: Sequence[str], want: Sequence[str], where: str) -> None:
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    if missing or extra:
        raise InputError(
            f"{where} has {kind} {sorted(got)}; the target's {kind} are {list(want)} "
            f"(missing {missing}, unexpected {extra})",
            "save the reference from the same model (tensor names must match), " + SAVE_HINT,
        )


def _split_fixed_batch(
    feed: dict[str, np.ndarray], outputs: dict[str, np.ndarray], spec: Sequence
) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """A saved set holds every batch concatenated; a target with a fixed batch B runs it B at a time
    (only when every input and output has the same multiple of B on axis 0, so the split is exact)."""
    fixed = spec[0][1][0] if spec and spec[0][1] else None
    if not (isinstance(fixed, int) and fixed > 0):
        return [(feed, outputs)]
    rows = {a.shape[0] if a.ndim else -1 for a in (*feed.values(), *outputs.values())}
    if len(rows) != 1 or (n := rows.pop()) <= fixed or n % fixed:
        return [(feed, outputs)]
    return [
        ({k: v[i : i + fixed] for k, v in feed.items()}, {k: v[i : i + fixed] for k, v in outputs.items()})
        for i in range(0, n, fixed)
    ]


def pair_sets(
    input_set: InputSet, outputs: SavedOutputs, target: Runner
) -> list[tuple[dict[str, np.ndarray], dict[str, np.ndarray]]]:
    """(feed, reference outputs) pairs, checked against each other and the target before any run."""
    feeds, sets = input_set.batches, outputs.sets
    if len(feeds) != len(sets):
        raise InputError(
            f"{input_set.source} holds {len(feeds)} input set(s) but {outputs.path} holds {len(sets)} "
            "output set(s): they are not from the same run",
            SAVE_HINT,
        )
    spec = target.input_spec()
    pairs = []
    for i, (feed, out) in enumerate(zip(feeds, sets, strict=True)):
        label = f" (set {i})" if len(feeds) > 1 else ""
        _names("inputs", list(feed), target.input_names, f"{input_set.source}{label}")
        _names("outputs", list(out), target.output_names, f"{outputs.path}{label}")
        feed = {name: feed[name] for name in target.input_names}
        for part, part_out in _split_fixed_batch(feed, out, spec):
            check_feed(spec, part, f"inputs {input_set.source}{label}")
            pairs.append((part, part_out))
    return pairs


class SavedRunner:
    """The reference side of a parity check: returns the saved outputs of one input set."""

    name = "saved"

    def __init__(self, outputs: Mapping[str, np.ndarray], input_names: list[str], output_names: list[str]):
        self._outputs = dict(outputs)
        self._input_names = list(input_names)
        self._output_names = list(output_names)

    @property
    def input_names(self) -> list[str]:
        return list(self._input_names)

    @property
    def output_names(self) -> list[str]:
        return list(self._output_names)

    def input_spec(self) -> list[tuple[str, tuple[int | str | None, ...], np.dtype]]:
        return [(n, tuple(), np.dtype(np.float32)) for n in self._input_names]

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {n: self._outputs[n] for n in self._output_names}


class _ShapeChecked:
    """The target, whose outputs must have the saved outputs' shapes: a mismatch means the files came
    from another model or other inputs (exit 2 naming the output), not a parity failure."""

    def __init__(self, target: Runner, expected: Mapping[str, np.ndarray], where: str) -> None:
        self._target, self._expected, self._where = target, expected, where
        self.name = target.name
        self.input_names, self.output_names = target.input_names, target.output_names
        self.input_spec = target.input_spec

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        got = self._target.infer(inputs)
        for name, want in self._expected.items():
            if name in got and got[name].shape != want.shape:
                raise InputError(
                    f"output '{name}': the target gives shape {list(got[name].shape)}, {self._where} holds "
                    f"{list(want.shape)} for these inputs",
                    "the outputs were saved from another model or other inputs; " + SAVE_HINT,
                )
        return got


def validate_saved(
    target: str | os.PathLike,
    reference_outputs: str | os.PathLike,
    *,
    inputs: str | os.PathLike | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    precision: str = "auto",
    providers: Sequence[str] | None = None,
    plugin_lib: str | None = None,
    backend: str | None = None,
    on_run: Callable[[RunResult], None] | None = None,
    allow_nonfinite: bool = False,
    on_start: Callable[[int, int, str], None] | None = None,
) -> ParityReport:
    """Compare ``target`` with reference outputs saved on another machine, on the inputs they were
    computed on. Same metrics and report as :func:`simam_deploy.validate.validate`; the report's
    ``reference_outputs`` section says which file and format the reference came from."""
    saved = load_reference_outputs(reference_outputs)  # a bad file fails before the target loads
    runner = load_runner(target, backend=backend, providers=providers, plugin_lib=plugin_lib)
    tol = resolve_tolerances(target, precision, atol, rtol)
    input_set = reference_inputs(inputs, saved, runner.input_spec())
    pairs = pair_sets(input_set, saved, runner)
    label = f"saved outputs {saved.path}" + (f" (Polygraphy runner {saved.runner})" if saved.runner else "")
    report = ParityReport(
        str(target), label, tol.atol, tol.rtol, target_backend=runner.name, allow_nonfinite=allow_nonfinite
    )
    for k, (feed, out) in enumerate(pairs):
        part = check_parity(
            _ShapeChecked(runner, out, saved.path),
            SavedRunner(out, runner.input_names, runner.output_names),
            input_shape=tuple(next(iter(feed.values())).shape) if feed else (),
            atol=tol.atol,
            rtol=tol.rtol,
            inputs=feed,
            target_label=str(target),
            reference_label=label,
            on_run=on_run,
            allow_nonfinite=allow_nonfinite,
            on_start=(lambda _i, _n, what, k=k: on_start(k, len(pairs), what)) if on_start else None,
        )
        report.runs.extend(part.runs)
    report.precision, report.tolerance_source = tol.precision, tol.source
    report.sections["inputs"] = {**input_set.to_dict(), "top1_agreement": overall_top1(report)}
    report.sections["reference_outputs"] = saved.to_dict()
    return report
