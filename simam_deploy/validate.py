"""``validate``: prove that an exported artefact computes what the PyTorch model computes."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from simam_deploy.backends import load_runner
from simam_deploy.backends.torch_backend import TorchRunner
from simam_deploy.errors import InputError
from simam_deploy.parity import (
    DEFAULT_SEEDS,
    ParityReport,
    RunResult,
    check_parity,
    load_inputs_npz,
)
from simam_deploy.precision import resolve_tolerances
from simam_deploy.zoo import build_model, default_input_shape


def resolve_input_shape(
    spec_shape: tuple, reference: str, explicit: tuple[int, ...] | None
) -> tuple[int, int, int, int]:
    """The shape to test: explicit, else the file's static dims filled in from the zoo default."""
    if explicit is not None:
        return tuple(explicit)  # type: ignore[return-value]
    fallback = default_input_shape(reference)
    dims = []
    for i, d in enumerate(spec_shape):
        if isinstance(d, int) and d > 0:
            dims.append(d)
        elif fallback is not None and i < len(fallback):
            dims.append(1 if i == 0 else fallback[i])
        else:
            raise InputError(
                f"the model's input has a dynamic dimension {i} ({d!r}) and {reference} is not a zoo model",
                "give the shape to test with --input-shape NxCxHxW",
            )
    return tuple(dims)  # type: ignore[return-value]


def validate(
    target: str | os.PathLike,
    reference: str,
    *,
    checkpoint: str | os.PathLike | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    precision: str = "auto",
    inputs: str | os.PathLike | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    input_shape: tuple[int, ...] | None = None,
    providers: Sequence[str] | None = None,
    plugin_lib: str | None = None,
    on_run: Callable[[RunResult], None] | None = None,
) -> ParityReport:
    """Compare ``target`` (.onnx via ONNX Runtime, .engine via TensorRT) with the PyTorch ``reference``.
    Tolerances not given default per precision (``simam_deploy.precision.resolve_tolerances``)."""
    options = {"plugin_lib": plugin_lib} if plugin_lib else {}
    runner = load_runner(target, providers=providers, **options)
    tol = resolve_tolerances(target, precision, atol, rtol)  # after the loader has vetted the file
    model, _ = build_model(reference, checkpoint)
    torch_runner = TorchRunner(model, runner.input_names[:1], runner.output_names)
    spec_shape = runner.input_spec()[0][1]
    shape = resolve_input_shape(spec_shape, reference, input_shape)
    feed = load_inputs_npz(inputs, runner.input_names) if inputs is not None else None
    ckpt = f" + {Path(checkpoint).name}" if checkpoint else " (seeded weights)"
    report = check_parity(
        runner,
        torch_runner,
        input_shape=shape,
        atol=tol.atol,
        rtol=tol.rtol,
        seeds=tuple(seeds),
        inputs=feed,
        target_label=str(target),
        reference_label=f"{reference}{ckpt}",
        on_run=on_run,
    )
    report.precision, report.tolerance_source = tol.precision, tol.source
    return report
