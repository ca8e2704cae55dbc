"""``validate``: prove that an exported artefact computes what the PyTorch model computes."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from simam_deploy import per_layer as per_layer_mod
from simam_deploy.backends import ONNX_SUFFIXES, load_runner
from simam_deploy.backends.torch_backend import TorchRunner
from simam_deploy.errors import InputError
from simam_deploy.inputs import (
    DEFAULT_BATCH,
    check_new_outputs,
    load_inputs,
    overall_top1,
    random_feed,
    save_reference_io,
)
from simam_deploy.parity import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    DEFAULT_SEEDS,
    ParityReport,
    RunResult,
    check_parity,
    input_shapes_to_try,
)
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
    atol: float = DEFAULT_ATOL,
    rtol: float = DEFAULT_RTOL,
    inputs: str | os.PathLike | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    input_shape: tuple[int, ...] | None = None,
    providers: Sequence[str] | None = None,
    plugin_lib: str | None = None,
    on_run: Callable[[RunResult], None] | None = None,
    per_layer: bool = False,
    onnx_source: str | os.PathLike | None = None,
    probe_precision: str = "fp32",
    mean: str | Sequence[float] | None = None,
    std: str | Sequence[float] | None = None,
    size: str | Sequence[int] | None = None,
    batch_size: int = DEFAULT_BATCH,
    save_inputs: str | os.PathLike | None = None,
    save_outputs: str | os.PathLike | None = None,
    plot: str | os.PathLike | None = None,
) -> ParityReport:
    """Compare ``target`` (.onnx via ONNX Runtime, .engine via TensorRT) with the PyTorch ``reference``.

    ``inputs``: an .npz, a folder of images, a folder written by ``save_inputs``, or module:callable
    (see :mod:`simam_deploy.inputs`); random inputs when None. ``per_layer`` also compares every SimAM
    block (see :mod:`simam_deploy.per_layer`): the report gains ``layers`` and ``first_divergence``."""
    check_new_outputs([p for p in (target, inputs) if p is not None], save_inputs, save_outputs, plot)
    options = {"plugin_lib": plugin_lib} if plugin_lib else {}
    model, _ = build_model(reference, checkpoint)
    probe_proto = None
    if per_layer and Path(target).suffix.lower() in ONNX_SUFFIXES:
        probe_proto = per_layer_mod.load_onnx_with_data(target)
        blocks = per_layer_mod.blocks_for(probe_proto, model)
        runner = per_layer_mod.onnx_probe_runner(probe_proto, blocks, providers)
    else:
        runner = load_runner(target, providers=providers, **options)
    torch_runner = TorchRunner(model, runner.input_names[:1], runner.output_names)
    spec = runner.input_spec()
    shape = resolve_input_shape(spec[0][1], reference, input_shape)
    input_set = None
    if inputs is not None:
        input_set = load_inputs(
            inputs, spec, reference=reference, mean=mean, std=std, size=size, batch_size=batch_size
        )
    if per_layer and probe_proto is None:
        shapes = input_set.shapes() if input_set else input_shapes_to_try(spec[0][1], shape)
        runner, blocks = per_layer_mod.engine_probe_runner(
            runner, model, onnx_source, shapes, precision=probe_precision, plugin_lib=plugin_lib
        )
    session = per_layer_mod.PerLayerSession(blocks, runner, torch_runner, model) if per_layer else None
    callback = session.on_run(atol, rtol, on_run) if session else on_run
    ckpt = f" + {Path(checkpoint).name}" if checkpoint else " (seeded weights)"
    common = {
        "input_shape": shape,
        "atol": atol,
        "rtol": rtol,
        "seeds": tuple(seeds),
        "target_label": str(target),
        "reference_label": f"{reference}{ckpt}",
        "on_run": callback,
    }
    target_r = session.target if session else runner
    ref_r = session.reference if session else torch_runner
    if input_set is None:
        report = check_parity(target_r, ref_r, **common)
    else:
        report = None
        for batch in input_set.batches:
            part = check_parity(target_r, ref_r, inputs=batch, **common)
            if report is None:
                report = part
            else:
                report.runs.extend(part.runs)
        report.sections["inputs"] = {**input_set.to_dict(), "top1_agreement": overall_top1(report)}
    if session is not None:
        layers = session.report()
        report.sections.update(layers.to_dict())
        if plot is not None:
            per_layer_mod.plot_layers(layers, plot, atol)
    if save_inputs is not None or save_outputs is not None:
        batches = input_set.batches if input_set else [random_feed(spec, shape, next(iter(seeds), 0))]
        save_reference_io(
            batches, torch_runner, save_inputs, save_outputs, protect=[inputs] if inputs else []
        )
    return report
