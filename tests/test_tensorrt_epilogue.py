"""The SimAM plugin's fused epilogue (affine, residual, activation) in the real builder of TensorRT for
RTX: the ONNX parser hands the node's attributes over as plugin fields and its extra inputs as plugin
inputs, and a ResNet block's BatchNorm, residual add and ReLU after SimAM then cost no kernel of their
own. No GPU is needed: the plan is decided at build time."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from tests.test_tensorrt_rtx import needs_rtx_plugin

C = 16


def _block(path, *, fused: bool, dtype: int = TensorProto.FLOAT, activation: str = "relu") -> None:
    """conv -> relu -> conv -> SimAM -> BatchNorm-as-affine -> + skip -> activation -> conv, with the
    tail either inside the SimAM node (``fused``) or as the standard ops it stands for."""
    np_type = helper.tensor_dtype_to_np_dtype(dtype)
    rng = np.random.default_rng(0)

    def init(name, array):
        return numpy_helper.from_array(np.asarray(array).astype(np_type), name)

    scale, bias = rng.random(C) + 0.5, rng.standard_normal(C)
    inits = [
        init("w1", rng.standard_normal((C, C, 3, 3)) * 0.1),
        init("w2", rng.standard_normal((C, C, 3, 3)) * 0.1),
        init("w3", rng.standard_normal((C, C, 3, 3)) * 0.1),
        init("scale", scale),
        init("bias", bias),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["skip"], name="relu1"),
        helper.make_node("Conv", ["skip", "w2"], ["c2"], pads=[1, 1, 1, 1], name="conv2"),
    ]
    simam = dict(
        domain="com.simam_deploy", e_lambda=1e-4, unbiased=1, plugin_version="1", plugin_namespace=""
    )
    if fused:
        nodes.append(
            helper.make_node(
                "SimAM", ["c2", "scale", "bias", "skip"], ["z"], name="block/SimAM",
                affine=1, residual=1, activation=activation, **simam,
            )
        )  # fmt: skip
    else:
        inits += [init("scale4", scale.reshape(C, 1, 1)), init("bias4", bias.reshape(C, 1, 1))]
        act = {"relu": "Relu", "none": "Identity"}[activation]
        nodes += [
            helper.make_node("SimAM", ["c2"], ["y"], name="block/SimAM", **simam),
            helper.make_node("Mul", ["y", "scale4"], ["m"], name="bn_mul"),
            helper.make_node("Add", ["m", "bias4"], ["a"], name="bn_add"),
            helper.make_node("Add", ["a", "skip"], ["s"], name="residual_add"),
            helper.make_node(act, ["s"], ["z"], name="act"),
        ]
    nodes.append(helper.make_node("Conv", ["z", "w3"], ["out"], pads=[1, 1, 1, 1], name="conv3"))
    graph = helper.make_graph(
        nodes, "simam_block",
        [helper.make_tensor_value_info("x", dtype, ["N", C, 16, 16])],
        [helper.make_tensor_value_info("out", dtype, ["N", C, 16, 16])],
        inits,
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.simam_deploy", 1)]
    )
    onnx.save(model, path)


def _plan(onnx_path, tmp_path):
    from simam_deploy.backends.tensorrt import build_engine

    result = build_engine(onnx_path, tmp_path / f"{onnx_path.stem}.engine", runtime="tensorrt-rtx")
    assert result.plan is not None
    return result.plan


@needs_rtx_plugin
@pytest.mark.parametrize("dtype", [TensorProto.FLOAT, TensorProto.FLOAT16], ids=["fp32", "fp16"])
def test_the_epilogue_inside_the_node_leaves_one_kernel_for_the_block(tmp_path, dtype):
    fused, unfused = tmp_path / "fused.onnx", tmp_path / "unfused.onnx"
    _block(fused, fused=True, dtype=dtype)
    _block(unfused, fused=False, dtype=dtype)
    (block,) = _plan(fused, tmp_path)["blocks"]
    assert [(k["role"], k["layer_type"]) for k in block["kernels"]] == [("simam", "custom_layer")], block
    # the same block with BatchNorm's affine, the add and the ReLU as standard ops: TensorRT runs them
    # as a kernel of their own after the plugin
    (separate,) = _plan(unfused, tmp_path)["blocks"]
    roles = [k["role"] for k in separate["kernels"]]
    assert roles.count("simam") == 1 and roles.count("epilogue") == 1 and "layout" not in roles, separate


@needs_rtx_plugin
def test_a_node_whose_inputs_disagree_with_its_attributes_is_refused_by_the_plugin(tmp_path):
    """affine=1 residual=1 says four inputs; a node with three (no residual) must not build."""
    from simam_deploy.backends.tensorrt import build_engine
    from simam_deploy.errors import InputError

    path = tmp_path / "short.onnx"
    _block(path, fused=True)
    model = onnx.load(path)
    (node,) = [n for n in model.graph.node if n.op_type == "SimAM"]
    del node.input[3]
    onnx.save(model, path)
    with pytest.raises(InputError) as info:
        build_engine(path, tmp_path / "short.engine", runtime="tensorrt-rtx")
    assert "expected 4 (x, scale, bias, residual" in str(info.value)
    assert not (tmp_path / "short.engine").exists()
