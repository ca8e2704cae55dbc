"""``validate``: prove that an exported artefact computes what the PyTorch model computes."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from simam_deploy.backends import load_runner
from simam_deploy.backends.torch_backend import TorchRunner
from simam_deploy.errors import InputError
from simam_deploy.parity import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    DEFAULT_SEEDS,
    ParityReport,
    RunResult,
    axis_name,
    check_feed,
    check_parity,
    describe_dims,
    input_shapes_to_try,
    load_inputs_npz,
)
from simam_deploy.zoo import build_model, check_model_spec, default_input_shape


def _is_fixed(d: object) -> bool:
    return isinstance(d, int) and d > 0


def resolve_input_shape(
    spec_shape: tuple, reference: str, explicit: tuple[int, ...] | None
) -> tuple[int, ...]:
    """The shape to test: explicit (checked against the file's fixed axes), else the file's fixed
    axes with batch 1 where the batch is dynamic and the zoo default where H/W are dynamic."""
    if explicit is not None:
        return _check_explicit_shape(tuple(explicit), spec_shape)
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


def check_simam_planes(model: torch.nn.Module, shapes: Sequence[tuple[int, ...]]) -> None:
    """Refuse shapes where a SimAM layer would see a 1x1 plane (0/0 variance): exit 2, layer named."""
    from simam_deploy.export import probe_simam_inputs

    for shape in dict.fromkeys(tuple(s) for s in shapes):
        if len(shape) == 4:
            probe_simam_inputs(model, torch.zeros(shape))


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
    allow_nonfinite: bool = False,
    on_start: Callable[[int, int, str], None] | None = None,
) -> ParityReport:
    """Compare ``target`` (.onnx via ONNX Runtime, .engine via TensorRT) with the PyTorch ``reference``.

    NaN/Inf in either side's outputs fail the check unless ``allow_nonfinite`` (see parity)."""
    if inputs is None and not seeds:
        raise InputError("no seeds given for random inputs", "give e.g. --seeds 0,1,2, or --inputs FILE.npz")
    if any(s < 0 for s in seeds):
        raise InputError(f"seeds must be >= 0, got {list(seeds)}", "e.g. --seeds 0,1,2")
    check_model_spec(reference)  # blame an unknown name before loading anything
    options = {"plugin_lib": plugin_lib} if plugin_lib else {}
    runner = load_runner(target, providers=providers, **options)
    model, _ = build_model(reference, checkpoint)
    torch_runner = TorchRunner(model, runner.input_names[:1], runner.output_names)
    spec_shape = runner.input_spec()[0][1]
    feed = load_inputs_npz(inputs, runner.input_names) if inputs is not None else None
    if feed is not None:
        check_feed(runner.input_spec(), feed, f"inputs file {inputs}")
        shape = tuple(next(iter(feed.values())).shape)
        shapes = [shape]
    else:
        shape = resolve_input_shape(spec_shape, reference, input_shape)
        shapes = input_shapes_to_try(spec_shape, shape)
    check_simam_planes(model, shapes)
    ckpt = f" + {Path(checkpoint).name}" if checkpoint else " (seeded weights)"
    return check_parity(
        runner,
        torch_runner,
        input_shape=shape,
        atol=atol,
        rtol=rtol,
        seeds=tuple(seeds),
        inputs=feed,
        target_label=str(target),
        reference_label=f"{reference}{ckpt}",
        on_run=on_run,
        allow_nonfinite=allow_nonfinite,
        on_start=on_start,
    )
