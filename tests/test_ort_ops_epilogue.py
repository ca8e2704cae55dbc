"""The fused epilogue in libsimam_ort_ops.so, in a real ONNX Runtime session: Y = act(SimAM(X) * scale + bias
+ R) against a numpy float64 reference for every element type and each part of the epilogue, and nodes
whose inputs disagree with their attributes refused with an error naming the node."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from simam_deploy.backends.onnxruntime import library as simam_ort
from simam_deploy.errors import MissingDependencyError
from simam_deploy.nn import simam_reference_numpy


def _library_built() -> bool:
    try:
        simam_ort.library_path()
    except MissingDependencyError:
        return False
    return True


pytestmark = pytest.mark.skipif(
    not _library_built(),
    reason="libsimam_ort_ops.so is not built (no ONNX Runtime headers: set ONNXRUNTIME_ROOT and reinstall)",
)

# One rounding of the result to the storage type (half an ulp, relative) plus the fp32 arithmetic before it.
TYPE_RTOL = {TensorProto.FLOAT: 1e-5, TensorProto.FLOAT16: 2.0**-10, TensorProto.BFLOAT16: 2.0**-7}
TYPES = {"fp32": TensorProto.FLOAT, "fp16": TensorProto.FLOAT16, "bf16": TensorProto.BFLOAT16}
# (affine, residual, activation): each part alone, then together
EPILOGUES = [(1, 0, "none"), (0, 1, "none"), (0, 0, "relu"), (0, 0, "silu"), (1, 1, "relu"), (1, 1, "silu")]


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(
        model.SerializeToString(), simam_ort.session_options(), providers=["CPUExecutionProvider"]
    )


def epilogue_model(
    elem_type: int, affine: int, residual: int, activation: str, overrides: dict | None = None
) -> onnx.ModelProto:
    """float feeds -> Cast(elem_type) -> SimAM with the epilogue -> Cast(float), and every cast input read
    back (the exact values the op saw), so numpy needs no 16-bit feeds. ``overrides`` replaces attributes."""
    names = ["X"] + (["S", "B"] if affine else []) + (["R"] if residual else [])
    nodes = [helper.make_node("Cast", [n], [f"{n}c"], to=elem_type) for n in names]
    nodes += [helper.make_node("Cast", [f"{n}c"], [f"{n}seen"], to=TensorProto.FLOAT) for n in names]
    fields = {
        "e_lambda": 1e-4,
        "unbiased": 1,
        "affine": affine,
        "residual": residual,
        "activation": activation,
    }
    nodes.append(
        helper.make_node(
            "SimAM", [f"{n}c" for n in names], ["Yc"], name="block", domain="com.simam_deploy",
            **{**fields, **(overrides or {})},
        )
    )  # fmt: skip
    nodes.append(helper.make_node("Cast", ["Yc"], ["Y"], to=TensorProto.FLOAT))
    dims = {"X": ["n", "c", "h", "w"], "S": ["c"], "B": ["c"], "R": ["n", "c", "h", "w"]}
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims[n]) for n in names]
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, dims["X"])]
    outputs += [helper.make_tensor_value_info(f"{n}seen", TensorProto.FLOAT, dims[n]) for n in names]
    graph = helper.make_graph(nodes, "epilogue", inputs, outputs)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.simam_deploy", 1)]
    )
    model.ir_version = 9
    return model


def reference(x, scale, bias, residual, activation: str) -> np.ndarray:
    z = simam_reference_numpy(np.asarray(x, np.float64), 1e-4, True)
    if scale is not None:
        z = (
            z * np.asarray(scale, np.float64)[None, :, None, None]
            + np.asarray(bias, np.float64)[None, :, None, None]
        )
    if residual is not None:
        z = z + np.asarray(residual, np.float64)
    if activation == "relu":
        z = np.maximum(z, 0.0)
    elif activation == "silu":
        z = z / (1.0 + np.exp(-z))
    return z


def feeds(affine: int, residual: int, shape, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    out = {"X": (rng.standard_normal(shape) * 3 + 0.5).astype(np.float32)}
    if affine:
        out["S"] = (rng.random(shape[1]) * 2 - 0.5).astype(np.float32)
        out["B"] = rng.standard_normal(shape[1]).astype(np.float32)
    if residual:
        out["R"] = rng.standard_normal(shape).astype(np.float32)
    return out


@pytest.mark.parametrize("type_name", TYPES)
@pytest.mark.parametrize(("affine", "residual", "activation"), EPILOGUES)
def test_the_epilogue_matches_a_float64_reference(type_name, affine, residual, activation):
    elem_type = TYPES[type_name]
    s = session(epilogue_model(elem_type, affine, residual, activation))
    for shape in [(2, 8, 7, 9), (1, 3, 56, 56)]:
        values = feeds(affine, residual, shape, seed=sum(shape))
        got, *seen = s.run(None, values)
        seen_by_name = dict(zip(values, seen, strict=True))
        want = reference(
            seen_by_name["X"], seen_by_name.get("S"), seen_by_name.get("B"), seen_by_name.get("R"), activation
        )
        rtol = TYPE_RTOL[elem_type]
        # the terms are summed in fp32 before the one rounding: their size bounds that error
        terms = np.abs(want) + (np.abs(seen_by_name["R"]) if residual else 0) + 4.0
        error = np.abs(np.asarray(got, np.float64) - want)
        assert np.all(error <= rtol * np.abs(want) + 1e-6 * terms), (type_name, float(error.max()))


def _drop_input(model: onnx.ModelProto, name: str) -> onnx.ModelProto:
    """The SimAM node without its input ``name`` (the attributes still promise it)."""
    (node,) = [n for n in model.graph.node if n.op_type == "SimAM"]
    kept = [i for i in node.input if i != name]
    del node.input[:]
    node.input.extend(kept)
    return model


@pytest.mark.parametrize(
    ("model", "words"),
    [
        (lambda: epilogue_model(TensorProto.FLOAT, 1, 0, "none", {"activation": "gelu"}),
         "activation must be none, relu or silu, got 'gelu'"),
        (lambda: epilogue_model(TensorProto.FLOAT, 1, 0, "none", {"affine": 2}), "affine must be 0 or 1"),
        (lambda: epilogue_model(TensorProto.FLOAT, 0, 1, "none", {"residual": 0.5}),
         "attribute residual must be an INT 0 or 1"),
        (lambda: epilogue_model(TensorProto.FLOAT, 0, 0, "none", {"activation": 1}),
         "activation must be a STRING"),
        (lambda: _drop_input(epilogue_model(TensorProto.FLOAT, 1, 1, "relu"), "Rc"),
         "has 3 inputs; with affine=1 residual=1 it takes 4 (X, scale, bias, R)"),
        (lambda: _drop_input(epilogue_model(TensorProto.FLOAT, 0, 1, "none"), "Rc"),
         "has 1 inputs; with affine=0 residual=1 it takes 2 (X, R)"),
        (lambda: epilogue_model(TensorProto.FLOAT, 0, 1, "none", {"affine": 1}),
         "has 2 inputs; with affine=1 residual=1 it takes 4"),
    ],
)  # fmt: skip
def test_a_node_off_the_contract_is_refused_naming_the_node(model, words):
    with pytest.raises(Exception, match="SimAM node 'block'") as info:
        session(model())
    assert words in str(info.value)


def _retype_feed(model: onnx.ModelProto, name: str, dims: list) -> onnx.ModelProto:
    for value in model.graph.input:
        if value.name == name:
            value.CopyFrom(helper.make_tensor_value_info(name, TensorProto.FLOAT, dims))
    return model


def test_inputs_of_the_wrong_shape_are_refused_at_run_time_naming_the_node():
    s = session(_retype_feed(epilogue_model(TensorProto.FLOAT, 1, 1, "none"), "S", ["k"]))
    good = feeds(1, 1, (2, 4, 5, 5), seed=0)
    with pytest.raises(Exception, match=r"SimAM node 'block': scale has shape \[3\]; expected \[4\]"):
        s.run(None, {**good, "S": good["S"][:3]})
    s = session(_retype_feed(epilogue_model(TensorProto.FLOAT, 1, 1, "none"), "R", ["a", "b", "c", "d"]))
    with pytest.raises(Exception, match=r"SimAM node 'block': R has shape \[2,4,5,4\]; expected \[2,4,5,5\]"):
        s.run(None, {**good, "R": good["R"][..., :4]})


def test_a_scale_of_another_type_is_refused():
    model = epilogue_model(TensorProto.FLOAT16, 1, 0, "none")
    for node in model.graph.node:
        if node.op_type == "Cast" and node.input[0] == "S":
            node.attribute[0].i = TensorProto.FLOAT
    with pytest.raises(Exception, match="block"):
        session(model).run(None, feeds(1, 0, (1, 4, 5, 5), seed=1))


def test_without_the_new_attributes_the_node_is_plain_simam():
    plain = epilogue_model(TensorProto.FLOAT, 0, 0, "none")
    (node,) = [n for n in plain.graph.node if n.op_type == "SimAM"]
    kept = [a for a in node.attribute if a.name in ("e_lambda", "unbiased")]
    del node.attribute[:]
    node.attribute.extend(kept)
    x = feeds(0, 0, (2, 4, 6, 5), seed=2)
    got = session(plain).run(None, x)[0]
    np.testing.assert_allclose(
        got, simam_reference_numpy(x["X"].astype(np.float64), 1e-4, True), rtol=1e-5, atol=1e-6
    )
