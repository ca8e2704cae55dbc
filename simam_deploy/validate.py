"""``validate``: prove that an exported artefact computes what the PyTorch model computes.

torch is imported only on the live-reference path: with ``reference_outputs`` (outputs saved on the
host, :mod:`simam_deploy.saved_reference`) this module runs where torch is not installed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from simam_deploy.backends import backend_for
from simam_deploy.errors import InputError, MissingDependencyError
from simam_deploy.inputs import (
    DEFAULT_BATCH,
    check_new_outputs,
    load_inputs,
    overall_top1,
    random_feed,
    save_reference_io,
)
from simam_deploy.parity import (
    DEFAULT_SEEDS,
    ParityReport,
    RunResult,
    axis_name,
    check_feed,
    check_parity,
    describe_dims,
    input_shapes_to_try,
)
from simam_deploy.precision import resolve_tolerances
from simam_deploy.resources import check_input_memory, out_of_memory_is_input

if TYPE_CHECKING:
    import torch


def _is_fixed(d: object) -> bool:
    return isinstance(d, int) and d > 0


def resolve_input_shape(
    spec_shape: tuple, reference: str, explicit: tuple[int, ...] | None
) -> tuple[int, ...]:
    """The shape to test: explicit (checked against the file's fixed axes), else the file's fixed
    axes with batch 1 where the batch is dynamic and the zoo default where H/W are dynamic."""
    if explicit is not None:
        return _check_explicit_shape(tuple(explicit), spec_shape)
    from simam_deploy.zoo import default_input_shape

    fallback = default_input_shape(reference)
    rank = len(spec_shape)
    dims, unknown = [], []
    for i, d in enumerate(spec_shape):
        if _is_fixed(d):
            dims.append(d)
        elif i == 0:
            dims.append(1)  # the batch: any size works, 1 is the cheapest
        elif fallback is not None and rank == len(fallback):
            dims.append(fallback[i])
        else:
            unknown.append(axis_name(i, rank))
            dims.append(0)
    if unknown:
        raise InputError(
            f"the model's input ({describe_dims(spec_shape)}) has dynamic "
            f"{'axes' if len(unknown) > 1 else 'axis'} {' and '.join(unknown)} and "
            f"{reference} is not a zoo model, so the size to test is unknown",
            "give the shape to test with --input-shape NxCxHxW",
        )
    return tuple(dims)


def _explicit_shapes(input_shape, names: Sequence[str]) -> dict[str, tuple[int, ...]]:
    """--input-shape as {input name: shape}: a bare shape (single-input models only) or NAME=SHAPE
    for some or all inputs (the others take the file's fixed sizes, batch 1 where dynamic)."""
    from simam_deploy.shapes import shapes_for_inputs

    if input_shape is None:
        return {}
    if not isinstance(input_shape, Mapping):
        input_shape = {None: tuple(input_shape)}
    if None in input_shape:
        return shapes_for_inputs(input_shape, names)
    unknown = [n for n in input_shape if n not in names]
    if unknown:
        raise InputError(
            f"--input-shape names {unknown}, which the model does not have (its inputs: {list(names)})",
            "give NAME=SHAPE with the model's input names, e.g. --input-shape "
            + ",".join(f"{n}=SHAPE" for n in names),
        )
    return dict(input_shape)


def _check_explicit_shape(shape: tuple[int, ...], spec_shape: tuple) -> tuple[int, ...]:
    if len(shape) != len(spec_shape):
        raise InputError(
            f"--input-shape {'x'.join(map(str, shape))} has rank {len(shape)}; the model's input is "
            f"{describe_dims(spec_shape)} (rank {len(spec_shape)})",
            "give one size per axis",
        )
    for i, (got, want) in enumerate(zip(shape, spec_shape, strict=True)):
        if _is_fixed(want) and got != want:
            raise InputError(
                f"--input-shape {'x'.join(map(str, shape))} does not fit the model: axis "
                f"{axis_name(i, len(shape))} is fixed to {want} in the file ({describe_dims(spec_shape)})",
                f"use {want} on that axis, or export with a dynamic axis (export --dynamic all)",
            )
    return shape


def check_simam_planes(
    model: torch.nn.Module, shapes: Sequence[tuple[int, ...] | Mapping], spec=None
) -> None:
    """Refuse shapes where a SimAM layer would see a 1x1 plane (0/0 variance): exit 2, layer named.

    ``shapes``: one shape per run (single-input models), or per run a {input name: shape} mapping
    (any number of inputs of any rank; ``spec`` gives their order and dtypes)."""
    import torch

    from simam_deploy.export import probe_simam_inputs

    dtypes = {name: np.dtype(dtype) for name, _, dtype in spec or ()}
    for shape in shapes:
        if isinstance(shape, Mapping):
            example = tuple(
                torch.from_numpy(np.zeros(s, dtypes.get(name, np.float32))) for name, s in shape.items()
            )
            probe_simam_inputs(model, example if len(example) > 1 else example[0])
        else:
            probe_simam_inputs(model, torch.zeros(shape))


def validate(
    target: str | os.PathLike,
    reference: str | None = None,
    *,
    reference_outputs: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    atol: float | None = None,
    rtol: float | None = None,
    precision: str = "auto",
    inputs: str | os.PathLike | None = None,
    seeds: Sequence[int] = DEFAULT_SEEDS,
    input_shape: tuple[int, ...] | None = None,
    providers: Sequence[str] | None = None,
    plugin_lib: str | None = None,
    backend: str | None = None,
    on_run: Callable[[RunResult], None] | None = None,
    allow_nonfinite: bool = False,
    on_start: Callable[[int, int, str], None] | None = None,
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
    """Compare ``target`` (.onnx via ONNX Runtime, .engine via TensorRT, or the registry's ``backend``,
    e.g. "openvino") with the PyTorch ``reference``,
    or with ``reference_outputs`` saved on the host (a ``save_outputs`` folder or Polygraphy
    ``--save-outputs`` JSON; ``inputs`` then names the saved inputs, by default those in the same
    folder; see :mod:`simam_deploy.saved_reference`; torch is not needed).

    ``inputs``: an .npz, a folder of images, a folder written by ``save_inputs``, or module:callable
    (see :mod:`simam_deploy.inputs`); random inputs when None. NaN/Inf in either side's outputs fail
    the check unless ``allow_nonfinite`` (see parity). Tolerances not given default per precision
    (``simam_deploy.precision.resolve_tolerances``). ``per_layer`` also compares every SimAM block
    (see :mod:`simam_deploy.per_layer`): the report gains ``layers`` and ``first_divergence``."""
    if reference_outputs is not None:
        torch_only = {
            "--reference": reference,
            "--checkpoint": checkpoint,
            "--per-layer": per_layer,
            "--onnx-source": onnx_source,
            "--input-shape": input_shape,
            "--mean": mean,
            "--std": std,
            "--size": size,
            "--save-inputs": save_inputs,
            "--save-outputs": save_outputs,
            "--plot": plot,
        }
        given = [flag for flag, value in torch_only.items() if value]
        if given:
            raise InputError(
                f"{', '.join(given)} cannot be combined with --reference-outputs: "
                f"{'it needs' if len(given) == 1 else 'they need'} the PyTorch model",
                "compare with the saved outputs alone, or use --reference MODEL instead",
            )
        from simam_deploy.saved_reference import validate_saved

        return validate_saved(
            target,
            reference_outputs,
            inputs=inputs,
            atol=atol,
            rtol=rtol,
            precision=precision,
            providers=providers,
            plugin_lib=plugin_lib,
            backend=backend,
            on_run=on_run,
            allow_nonfinite=allow_nonfinite,
            on_start=on_start,
        )
    if reference is None:
        raise InputError(
            "nothing to compare with",
            "give the PyTorch model (--reference MODEL) or outputs saved on the host "
            "(--reference-outputs DIR|FILE.json)",
        )
    try:
        import torch  # noqa: F401  (the live reference is a PyTorch model)
    except ImportError as exc:
        raise MissingDependencyError(
            f"--reference {reference} runs the PyTorch model, and torch cannot be imported ({exc})",
            "install torch, or compare with outputs saved on the host: --reference-outputs DIR "
            "(validate --save-inputs DIR --save-outputs DIR there; see docs/jetson.md)",
        ) from exc
    from simam_deploy.zoo import check_model_spec, user_code_errors

    if inputs is None and not seeds:
        raise InputError("no seeds given for random inputs", "give e.g. --seeds 0,1,2, or --inputs FILE.npz")
    if any(s < 0 for s in seeds):
        raise InputError(f"seeds must be >= 0, got {list(seeds)}", "e.g. --seeds 0,1,2")
    check_model_spec(reference)  # blame an unknown name before loading anything
    protected = [target, inputs, checkpoint, onnx_source, plugin_lib, reference if ":" in reference else None]
    check_new_outputs([p for p in protected if p is not None], save_inputs, save_outputs, plot)
    # the user's own model runs inside: its exceptions (and sys.exit) are its errors, exit 2
    with user_code_errors(reference), out_of_memory_is_input("--input-shape / --inputs"):
        return _validate(
            target, reference, checkpoint=checkpoint, atol=atol, rtol=rtol, precision=precision,
            inputs=inputs, seeds=seeds, input_shape=input_shape, providers=providers, plugin_lib=plugin_lib,
            backend=backend, on_run=on_run, allow_nonfinite=allow_nonfinite, on_start=on_start,
            per_layer=per_layer, onnx_source=onnx_source, probe_precision=probe_precision, mean=mean, std=std,
            size=size, batch_size=batch_size, save_inputs=save_inputs, save_outputs=save_outputs, plot=plot,
        )  # fmt: skip


def _validate(
    target, reference, *, checkpoint, atol, rtol, precision, inputs, seeds, input_shape, providers,
    plugin_lib, backend, on_run, allow_nonfinite, on_start, per_layer, onnx_source, probe_precision, mean,
    std, size, batch_size, save_inputs, save_outputs, plot,
) -> ParityReport:  # fmt: skip
    from simam_deploy import per_layer as per_layer_mod
    from simam_deploy.backends.torch.runner import TorchRunner
    from simam_deploy.zoo import build_model

    if not Path(target).exists():
        raise InputError(f"{target} does not exist", "check the path")
    chosen = backend_for(target, backend)
    options = {"providers": providers, "plugin_lib": plugin_lib}
    model, _ = build_model(reference, checkpoint)
    runner = chosen.load(target, **options)
    tol = resolve_tolerances(target, precision, atol, rtol)  # after the loader has vetted the file
    torch_runner = TorchRunner(model, runner.input_names, runner.output_names)
    spec = runner.input_spec()
    input_set = None
    if inputs is not None:
        input_set = load_inputs(
            inputs, spec, reference=reference, mean=mean, std=std, size=size, batch_size=batch_size
        )
        for batch in input_set.batches:
            check_feed(spec, batch, f"inputs {inputs}")
        shape = tuple(next(iter(input_set.batches[0].values())).shape)
        shapes = [tuple(next(iter(b.values())).shape) for b in input_set.batches]
    else:
        names = [name for name, _, _ in spec]
        given = _explicit_shapes(input_shape, names)
        if len(spec) == 1:
            shape = resolve_input_shape(spec[0][1], reference, given.get(names[0]))
            shapes = input_shapes_to_try(spec[0][1], shape)
            feeds = [{names[0]: s} for s in shapes]
        else:  # several inputs (any rank): one shape each, checked against the file's fixed axes
            shape = {name: resolve_input_shape(dims, reference, given.get(name)) for name, dims, _ in spec}
            shapes = feeds = [shape]
        for feed_shapes in feeds:  # refuse a batch of 10^9 with its size, before allocating it
            check_input_memory(feed_shapes, "--input-shape", copies=2)
    check_simam_planes(model, shapes, spec)
    if per_layer:
        probe = chosen.per_layer_probe()
        runner, blocks = probe(
            runner, target, model, shapes, backend=chosen, options=options, onnx_source=onnx_source,
            precision=probe_precision,
        )  # fmt: skip
    session = per_layer_mod.PerLayerSession(blocks, runner, torch_runner, model) if per_layer else None
    callback = session.on_run(tol.atol, tol.rtol, on_run) if session else on_run
    ckpt = f" + {Path(checkpoint).name}" if checkpoint else " (seeded weights)"
    common = {
        "input_shape": shape,
        "atol": tol.atol,
        "rtol": tol.rtol,
        "seeds": tuple(seeds),
        "target_label": str(target),
        "reference_label": f"{reference}{ckpt}",
        "on_run": callback,
        "allow_nonfinite": allow_nonfinite,
        "on_start": on_start,
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
    report.precision, report.tolerance_source = tol.precision, tol.source
    if session is not None:
        layers = session.report()
        report.sections.update(layers.to_dict())
        if plot is not None:
            per_layer_mod.plot_layers(layers, plot, tol.atol)
    if save_inputs is not None or save_outputs is not None:
        batches = input_set.batches if input_set else [random_feed(spec, shape, next(iter(seeds), 0))]
        save_reference_io(
            batches, torch_runner, save_inputs, save_outputs, protect=[inputs] if inputs else []
        )
    return report
