"""--per-layer on TensorRT engines: a debug engine built from the source ONNX with every SimAM block's
input and output marked as network outputs. Needs a CUDA device, TensorRT and the built plugin."""

from __future__ import annotations

import importlib.util

import pytest

from simam_deploy.errors import InputError, MissingDependencyError
from tests.test_per_layer import TARGET_BLOCK, TARGET_FOLDER, change_lambda


def _cuda_device() -> bool:
    import torch

    return torch.cuda.is_available()


pytestmark = [
    pytest.mark.trt,
    pytest.mark.skipif(not _cuda_device(), reason="needs a CUDA device (TensorRT engines run on the GPU)"),
    pytest.mark.skipif(importlib.util.find_spec("tensorrt") is None, reason="TensorRT Python package absent"),
]


@pytest.fixture(scope="module")
def plugin_lib():
    from simam_deploy.trt_build import find_plugin_library

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
    from simam_deploy.trt_build import build_engine

    engine = onnx_path.with_suffix(".engine")
    build_engine(
        onnx_path, engine, "fp32", {"input": ((1, 3, 32, 32), (4, 3, 32, 32), (4, 3, 32, 32))}, plugin_lib
    )
    return engine


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


def test_engine_per_layer_needs_the_onnx_source(plugin_onnx, plugin_lib):
    from simam_deploy.validate import validate

    with pytest.raises(InputError, match="--onnx-source"):
        validate(_engine(plugin_onnx, plugin_lib), "cifar-resnet20", per_layer=True, plugin_lib=plugin_lib)
