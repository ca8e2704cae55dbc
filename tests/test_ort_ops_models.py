"""Whole fused networks through libsimam_ort_ops.so: float32, float16 and bfloat16 files run, and
every SimAM node's output matches the float64 reference within its type's precision."""

from __future__ import annotations

import json
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from onnx import TensorProto, helper

from simam_deploy.backends.onnxruntime import library as simam_ort
from simam_deploy.errors import MissingDependencyError
from simam_deploy.graph import contract
from simam_deploy.graph.fuse import fuse_simam
from simam_deploy.nn import simam_reference_numpy
from simam_deploy.precision import convert_precision


def _built() -> bool:
    try:
        simam_ort.library_path()
    except MissingDependencyError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _built(), reason="libsimam_ort_ops.so is not built (no ONNX Runtime headers: set ONNXRUNTIME_ROOT)"
)

RTOL = {"float32": 1e-5, "float16": 2.0**-10, "bfloat16": 2.0**-7}
NP_TYPE = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16}


@pytest.fixture(scope="module")
def fused_r20(tmp_path_factory) -> onnx.ModelProto:
    from simam_deploy.export import export_onnx
    from simam_deploy.zoo import build_model

    torch.manual_seed(0)
    model, _ = build_model("cifar-resnet20")
    path = tmp_path_factory.mktemp("r20") / "r20.onnx"
    export_onnx(model, path, opset=18, input_shape=(2, 3, 32, 32), dynamic="batch")
    fused, report = fuse_simam(onnx.load(path))
    assert len(report.fused) == 9
    return fused


def with_simam_taps(
    model: onnx.ModelProto, as_float: bool = False
) -> tuple[onnx.ModelProto, list[tuple[str, str, float, bool]]]:
    """The model with every SimAM node's input and output as extra graph outputs (read back through
    an exact Cast to float32 when ``as_float``: numpy has no bfloat16 outputs from ONNX Runtime)."""
    tapped = onnx.ModelProto()
    tapped.CopyFrom(model)
    taps = []
    for node, attrs in contract.validate_simam_nodes(tapped):
        names = [node.input[0], node.output[0]]
        if as_float:
            for name in names:
                tapped.graph.node.append(
                    helper.make_node("Cast", [name], [f"{name}_f32"], to=TensorProto.FLOAT)
                )
            names = [f"{name}_f32" for name in names]
        taps.append((*names, attrs.e_lambda, attrs.unbiased))
        tapped.graph.output.extend(helper.make_empty_tensor_value_info(name) for name in names)
    return tapped, taps


def bf16_simam(model: onnx.ModelProto) -> onnx.ModelProto:
    """Mixed precision as deployed: the network in float32, every SimAM node in bfloat16 between
    Casts (ONNX Runtime's CPU provider has no bfloat16 convolutions)."""
    out = onnx.ModelProto()
    out.CopyFrom(model)
    nodes = []
    for node in out.graph.node:
        if contract.is_simam_node(node):
            x, y = node.input[0], node.output[0]
            nodes.append(helper.make_node("Cast", [x], [f"{x}_bf16"], to=TensorProto.BFLOAT16))
            node.input[0], node.output[0] = f"{x}_bf16", f"{y}_bf16"
            nodes.append(node)
            nodes.append(helper.make_node("Cast", [f"{y}_bf16"], [y], to=TensorProto.FLOAT))
        else:
            nodes.append(node)
    del out.graph.node[:]
    out.graph.node.extend(nodes)
    return out


def fp16_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """The float16 file of the precision issue with float16 inputs and outputs (SimAM nodes in fp16)."""
    converted, _ = convert_precision(model, "fp16", io_types="model")
    return converted


def run(model: onnx.ModelProto, x: np.ndarray) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(
        model.SerializeToString(), simam_ort.session_options(), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, {session.get_inputs()[0].name: x}), strict=True))


@pytest.mark.parametrize("precision", ["float32", "float16", "bfloat16"])
def test_fused_network_runs_and_every_simam_matches_reference(fused_r20, precision):
    if precision == "float16":
        model = fp16_model(fused_r20)
    elif precision == "bfloat16":
        model = bf16_simam(fused_r20)
    else:
        model = fused_r20
    x32 = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    x = x32.astype(np.float16) if precision == "float16" else x32
    tapped, taps = with_simam_taps(model, as_float=precision == "bfloat16")  # what SimAM reads and writes
    outputs = run(tapped, x)
    assert len(taps) == 9
    for x_name, y_name, e_lambda, unbiased in taps:
        seen, got = outputs[x_name], outputs[y_name]
        if precision != "bfloat16":  # bfloat16 taps come back through a Cast
            assert got.dtype == NP_TYPE[precision], (y_name, got.dtype)
        want = simam_reference_numpy(seen.astype(np.float64), e_lambda, unbiased)
        rtol = RTOL[precision]
        np.testing.assert_allclose(got.astype(np.float64), want, rtol=rtol, atol=rtol * 1e-3, err_msg=y_name)
    # and the network's answer agrees with float32
    logits = outputs[model.graph.output[0].name].astype(np.float32)
    reference = run(fused_r20, x32)[fused_r20.graph.output[0].name]
    np.testing.assert_allclose(logits, reference, atol=0.05 if precision != "float32" else 1e-4, rtol=0.05)


@pytest.mark.skipif(
    not torch.cuda.is_available() or "CUDAExecutionProvider" not in ort.get_available_providers(),
    reason="needs a CUDA device and onnxruntime-gpu (the CUDA execution provider kernel)",
)
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["float32", "float16"])
def test_cuda_execution_provider_runs_simam_on_the_gpu(fused_r20, precision):
    model = fp16_model(fused_r20) if precision == "float16" else fused_r20
    tapped, taps = with_simam_taps(model)
    options = simam_ort.session_options()
    options.enable_profiling = True
    session = ort.InferenceSession(
        tapped.SerializeToString(), options, providers=["CUDAExecutionProvider", "CPUExecutionProvider"]
    )
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(NP_TYPE[precision])
    names = [o.name for o in session.get_outputs()]
    outputs = dict(zip(names, session.run(None, {session.get_inputs()[0].name: x}), strict=True))
    for x_name, y_name, e_lambda, unbiased in taps:
        want = simam_reference_numpy(outputs[x_name].astype(np.float64), e_lambda, unbiased)
        rtol = RTOL[precision]
        np.testing.assert_allclose(outputs[y_name].astype(np.float64), want, rtol=rtol, atol=rtol * 1e-3)
    events = json.loads(Path(session.end_profiling()).read_text())
    providers = {e["args"].get("provider") for e in events if e.get("args", {}).get("op_name") == "SimAM"}
    assert providers == {"CUDAExecutionProvider"}
