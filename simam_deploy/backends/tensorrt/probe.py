"""--per-layer on a TensorRT engine: a probe engine built from the ONNX file the engine came from, with
every SimAM block's input and output marked as network outputs (TensorRT's parser marks ONNX graph
outputs; the SimAM layers are plugins, so marking their tensors breaks no fusion across them).

Building the probe engine needs TensorRT but no GPU (TensorRT for RTX builds ahead of time), so CI
reaches :func:`build_probe_engine`; running it needs the GPU the user's engine needs anyway.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import onnx
from torch import nn

from simam_deploy.backends.tensorrt.builder import BuildReport, build_engine
from simam_deploy.errors import InputError
from simam_deploy.onnx_utils import load_onnx, save_onnx
from simam_deploy.per_layer import Block, ProbedRunner, block_tensors, blocks_for, probe_model


def build_probe_engine(
    model: onnx.ModelProto,
    blocks: Sequence[Block],
    shapes: Sequence[Sequence[int]],
    folder: str | os.PathLike,
    *,
    precision: str = "fp32",
    plugin_lib: str | os.PathLike | None = None,
    runtime: str = "auto",
    compute_capabilities: Sequence[str] = (),
) -> BuildReport:
    """Write ``folder``/probe.onnx (``model`` with the blocks' tensors as graph outputs) and build
    ``folder``/probe.engine from it. ``shapes`` are the input shapes that will be fed: the profile
    spans them."""
    probed = probe_model(model, [b.onnx for b in blocks])
    name = model.graph.input[0].name
    low = tuple(min(s[i] for s in shapes) for i in range(len(shapes[0])))
    high = tuple(max(s[i] for s in shapes) for i in range(len(shapes[0])))
    onnx_path, engine_path = Path(folder) / "probe.onnx", Path(folder) / "probe.engine"
    save_onnx(probed, onnx_path)
    return build_engine(
        onnx_path,
        engine_path,
        precision,
        {name: (low, high, high)},
        plugin_lib=plugin_lib,
        runtime=runtime,
        compute_capabilities=compute_capabilities,
    )


def engine_probe(
    runner: Any,
    target: str | os.PathLike,
    model: nn.Module,
    shapes: Sequence[Sequence[int]],
    *,
    backend: Any,
    options: dict[str, Any],
    onnx_source: str | os.PathLike | None = None,
    precision: str = "fp32",
    workdir: str | os.PathLike | None = None,
) -> tuple[ProbedRunner, list[Block]]:
    """The registry's per-layer probe for engines: ``runner`` (the user's engine) for the outputs, the
    probe engine for the blocks (found in ``onnx_source``, the file the engine was built from). ``backend``
    is the registry entry (this one); ``options`` the runner options the user's engine was opened with."""
    from simam_deploy.backends.tensorrt.runner import TensorRTRunner

    if onnx_source is None:
        raise InputError(
            "--per-layer on a TensorRT engine needs the ONNX file it was built from",
            "add --onnx-source MODEL.onnx (a debug engine is built from it, SimAM tensors as outputs)",
        )
    proto = load_onnx(onnx_source, check=False)
    blocks = blocks_for(proto, model)
    plugin_lib = options.get("plugin_lib")
    folder = Path(tempfile.mkdtemp(prefix="simam-probe-", dir=workdir))
    report = build_probe_engine(
        proto,
        blocks,
        shapes,
        folder,
        precision=precision,
        plugin_lib=plugin_lib,
        runtime=options.get("runtime") or "auto",
    )
    probe = TensorRTRunner(report.engine, plugin_lib=plugin_lib, runtime=report.runtime)
    return ProbedRunner(runner, runner.output_names, block_tensors(blocks), probe=probe), blocks
