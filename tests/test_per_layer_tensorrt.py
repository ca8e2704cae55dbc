"""--per-layer on TensorRT engines: a debug engine built from the source ONNX with every SimAM block's
input and output marked as network outputs. Building it needs TensorRT and the plugin (TensorRT for RTX
builds without a GPU, so CI builds the probe engine); running it needs a CUDA device."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import onnx
import pytest

from simam_deploy.errors import InputError, MissingDependencyError
from tests.test_per_layer import TARGET_BLOCK, TARGET_FOLDER, change_lambda
from tests.test_tensorrt_rtx import needs_rtx_plugin


def _cuda_device() -> bool:
    import torch

    return torch.cuda.is_available()


needs_gpu_trt = [
    pytest.mark.trt,
    pytest.mark.skipif(not _cuda_device(), reason="needs a CUDA device (TensorRT engines run on the GPU)"),
    pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="TensorRT Python package absent"),
]


def on_gpu(test):
    for mark in needs_gpu_trt:
        test = mark(test)
    return test


@pytest.fixture(scope="module")
def plugin_lib():
    from simam_deploy.backends.tensorrt.plugin import find_plugin_library

    try:
        return str(find_plugin_library())
    except MissingDependencyError as exc:
        pytest.skip(f"the SimAM TensorRT plugin is not built ({exc.message})")


@pytest.fixture(scope="module")
def plugin_onnx(tmp_path_factory):
    from simam_deploy.export import export_onnx
    from simam_deploy.zoo import build_model

    model, _ = build_model("cifar-resnet20")
    out = tmp_path_factory.mktemp("trt_per_layer") / "r20-plugin.onnx"
    export_onnx(model, out, opset=18, input_shape=(1, 3, 32, 32), mode="plugin", dynamic="batch")
    return out


def _engine(onnx_path, plugin_lib):
    from simam_deploy.backends.tensorrt.builder import build_engine

    engine = onnx_path.with_suffix(".engine")
    build_engine(
        onnx_path, engine, "fp32", {"input": ((1, 3, 32, 32), (4, 3, 32, 32), (4, 3, 32, 32))}, plugin_lib
    )
    return engine


@on_gpu
def test_engine_per_layer_clean_and_corrupted(plugin_onnx, plugin_lib, tmp_path):
    from simam_deploy.validate import validate

    clean = validate(
        _engine(plugin_onnx, plugin_lib), "cifar-resnet20", per_layer=True, onnx_source=plugin_onnx,
        plugin_lib=plugin_lib, seeds=(0,),
    ).to_dict()  # fmt: skip
    assert clean["passed"] and clean["first_divergence"] is None and len(clean["layers"]) == 9

    bad = tmp_path / "bad.onnx"
    change_lambda(plugin_onnx, bad, TARGET_FOLDER)
    broken = validate(
        _engine(bad, plugin_lib), "cifar-resnet20", per_layer=True, onnx_source=bad, plugin_lib=plugin_lib,
        seeds=(0,),
    ).to_dict()  # fmt: skip
    assert not broken["passed"] and broken["first_divergence"] == TARGET_BLOCK


@on_gpu
def test_engine_per_layer_needs_the_onnx_source(plugin_onnx, plugin_lib):
    from simam_deploy.validate import validate

    with pytest.raises(InputError, match="--onnx-source"):
        validate(_engine(plugin_onnx, plugin_lib), "cifar-resnet20", per_layer=True, plugin_lib=plugin_lib)


@needs_rtx_plugin
def test_probe_engine_is_built_with_every_block_tensor_as_an_output(plugin_onnx, tmp_path):
    """The GPU-free half of --per-layer on an engine: blocks found, probe file written, engine built."""
    from simam_deploy.backends.tensorrt.probe import build_probe_engine
    from simam_deploy.onnx_utils import load_onnx
    from simam_deploy.per_layer import block_tensors, blocks_for
    from simam_deploy.zoo import build_model

    model, _ = build_model("cifar-resnet20")
    proto = load_onnx(plugin_onnx)
    blocks = blocks_for(proto, model)
    assert len(blocks) == 9
    report = build_probe_engine(
        proto, blocks, [(1, 3, 32, 32), (3, 3, 32, 32)], tmp_path, runtime="tensorrt-rtx"
    )
    assert Path(report.engine) == tmp_path / "probe.engine"
    assert report.engine_bytes == (tmp_path / "probe.engine").stat().st_size > 0
    assert report.simam_nodes == report.simam_plugin_layers == 9
    assert report.profiles == {"input": [[1, 3, 32, 32], [3, 3, 32, 32], [3, 3, 32, 32]]}
    # every block's input and output is a graph output of the file the engine was parsed from
    outputs = [o.name for o in onnx.load(tmp_path / "probe.onnx").graph.output]
    assert outputs[0] == proto.graph.output[0].name
    assert set(block_tensors(blocks)) <= set(outputs) and len(block_tensors(blocks)) == 18
