"""The fused epilogue of SimAM nodes, act(SimAM(X) * scale + bias + R), on the Python side: the
contract (what a node may carry, what is refused), folding BatchNormalization / per-channel Mul-Add,
the residual Add and Relu/SiLU into the node (zoo models from both torch exporters and the authors'
checkpoint), the model-local function overloads a plain ONNX Runtime runs, unfuse, fp16 conversion,
OpenVINO's rebuild of the epilogue and TensorRT for RTX's parser handing the node to the plugin."""

from __future__ import annotations

import importlib.util
import itertools
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from simam_deploy.errors import InputError
from simam_deploy.formula import simam_epilogue_reference_numpy, simam_reference_numpy
from simam_deploy.graph import contract
from simam_deploy.graph.epilogue import fold_epilogues
from simam_deploy.graph.function import attach_simam_function
from simam_deploy.graph.unfuse import unfuse_simam
from tests.cli_runner import run_cli

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is needed to run the files")

CONFIGS = [
    (affine, residual, act)
    for affine, residual, act in itertools.product((False, True), (False, True), contract.ACTIVATIONS)
    if affine or residual or act != "none"
]
SHAPE = (2, 4, 5, 7)


def _session(model: onnx.ModelProto | Path):
    """A plain ONNX Runtime session: no SimAM op registered, so SimAM nodes run the local function."""
    options = ort.SessionOptions()
    options.log_severity_level = 3
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


def _run(model: onnx.ModelProto | Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    return _session(model).run(None, feeds)[0]


def _one_node(
    attrs: contract.SimamAttributes, *, elem: int = onnx.TensorProto.FLOAT, function: bool = True
) -> tuple[onnx.ModelProto, dict[str, np.ndarray], np.ndarray]:
    """A model that is one SimAM node with ``attrs``'s epilogue, its feeds and the float64 reference."""
    rng = np.random.default_rng(7)
    np_type = helper.tensor_dtype_to_np_dtype(elem)
    x = (rng.standard_normal(SHAPE) * 2 + rng.standard_normal((*SHAPE[:2], 1, 1))).astype(np_type)
    scale = rng.uniform(-2, 2, SHAPE[1]).astype(np_type)
    bias = rng.standard_normal(SHAPE[1]).astype(np_type)
    r = rng.standard_normal(SHAPE).astype(np_type)
    inputs = [helper.make_tensor_value_info("x", elem, ["N", *SHAPE[1:]])]
    feeds = {"x": x}
    epilogue: list[str] = []
    inits = []
    if attrs.affine:
        inits = [numpy_helper.from_array(scale, "scale"), numpy_helper.from_array(bias, "bias")]
        epilogue += ["scale", "bias"]
    if attrs.residual:
        inputs.append(helper.make_tensor_value_info("r", elem, ["N", *SHAPE[1:]]))
        feeds["r"] = r
        epilogue.append("r")
    node = contract.make_simam_node("x", "y", attrs, "simam", epilogue_inputs=epilogue)
    y = helper.make_tensor_value_info("y", elem, ["N", *SHAPE[1:]])
    graph = helper.make_graph([node], "one", inputs, [y], inits)
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), contract.simam_opset_import()]
    )
    model.ir_version = 10
    if function:
        assert attach_simam_function(model) is None
    want = simam_epilogue_reference_numpy(
        x,
        attrs.e_lambda,
        attrs.unbiased,
        scale=scale if attrs.affine else None,
        bias=bias if attrs.affine else None,
        residual=r if attrs.residual else None,
        activation=attrs.activation,
    )
    return model, feeds, want


# -- the contract ---------------------------------------------------------------------------------


def test_a_plain_node_is_written_byte_for_byte_as_before_the_epilogue():
    attrs = contract.SimamAttributes(1e-4, True)
    old = helper.make_node(
        "SimAM", ["x"], ["y"], name="s", domain=contract.DOMAIN, e_lambda=1e-4, unbiased=1,
        plugin_version="1", plugin_namespace="",
    )  # fmt: skip
    assert contract.make_simam_node("x", "y", attrs, "s").SerializeToString() == old.SerializeToString()
    assert not attrs.has_epilogue and attrs.input_count == 1 and attrs.epilogue_name == ""


def test_epilogue_attributes_are_written_only_when_used_and_read_back():
    attrs = contract.SimamAttributes(0.5, False, affine=False, residual=True, activation="silu")  # 0.5: exact
    node = contract.make_simam_node("x", "y", attrs, "s", epilogue_inputs=["r"])
    assert {a.name for a in node.attribute} >= {"residual", "activation"}
    assert "affine" not in {a.name for a in node.attribute}
    assert contract.read_attributes(node) == attrs
    assert attrs.epilogue_name == "residual_silu" and attrs.input_count == 2


def _bad(how: str) -> onnx.ModelProto:
    attrs = contract.SimamAttributes(1e-4, True, affine=True, residual=True, activation="relu")
    model, _, _ = _one_node(attrs, function=False)
    node = model.graph.node[0]
    by_name = {a.name: a for a in node.attribute}
    if how == "affine 2":
        by_name["affine"].i = 2
    elif how == "affine FLOAT":
        node.attribute.remove(by_name["affine"])
        node.attribute.append(helper.make_attribute("affine", 1.0))
    elif how == "gelu":
        by_name["activation"].s = b"gelu"
    elif how == "activation INT":
        node.attribute.remove(by_name["activation"])
        node.attribute.append(helper.make_attribute("activation", 1))
    elif how == "missing R":
        del node.input[3]
    elif how == "extra input":
        node.input.append("x")
    elif how == "scale of C+1":
        model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.ones(5, np.float32), "scale"))
    elif how == "scale 2-D":
        model.graph.initializer[0].CopyFrom(numpy_helper.from_array(np.ones((1, 4), np.float32), "scale"))
    elif how == "bias fp16":
        model.graph.initializer[1].CopyFrom(numpy_helper.from_array(np.ones(4, np.float16), "bias"))
    elif how == "R broadcast":
        model.graph.input[1].CopyFrom(
            helper.make_tensor_value_info("r", onnx.TensorProto.FLOAT, ["N", 4, 1, 1])
        )
    return model


@pytest.mark.parametrize(
    "how, named",
    [
        ("affine 2", "affine must be an INT 0 or 1, got 2"),
        ("affine FLOAT", "affine must be an INT 0 or 1, got 1.0"),
        ("gelu", "unknown activation 'gelu'"),
        ("activation INT", "activation must be a STRING attribute"),
        ("missing R", "has 3 inputs"),
        ("extra input", "has 5 inputs"),
        ("scale of C+1", "it must be 1-D with C = 4 elements"),
        ("scale 2-D", "it must be 1-D with C = 4 elements"),
        ("bias fp16", "bias (bias) is FLOAT16, X is FLOAT"),
        ("R broadcast", "residual R (r) has shape"),
    ],
)
def test_off_contract_epilogue_nodes_are_refused_naming_the_problem(how, named):
    with pytest.raises(InputError) as info:
        contract.validate_simam_nodes(_bad(how))
    assert named in info.value.message and "SimAM node 'simam'" in info.value.message


def test_the_cli_refuses_an_off_contract_file_with_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    onnx.save(_bad("gelu"), bad)
    code, _, err = run_cli(["unfuse", str(bad), "-o", str(tmp_path / "out.onnx")], capsys)
    assert code == 2 and "unknown activation 'gelu'" in err and "Traceback" not in err
    assert not (tmp_path / "out.onnx").exists()


# -- the function overloads and unfuse, against the float64 reference ------------------------------


@pytest.mark.parametrize("affine, residual, activation", CONFIGS)
def test_function_overload_and_unfuse_match_the_reference(affine, residual, activation):
    attrs = contract.SimamAttributes(1e-4, True, affine=affine, residual=residual, activation=activation)
    model, feeds, want = _one_node(attrs)
    assert [(f.name, f.overload) for f in model.functions] == [("SimAM", attrs.epilogue_name)]
    assert model.graph.node[0].overload == attrs.epilogue_name
    onnx.checker.check_model(model, full_check=True)
    np.testing.assert_allclose(_run(model, feeds), want, rtol=2e-5, atol=2e-5)
    plain = unfuse_simam(model)
    assert not plain.functions and not any(n.domain == contract.DOMAIN for n in plain.graph.node)
    np.testing.assert_allclose(_run(plain, feeds), want, rtol=2e-5, atol=2e-5)


def test_plain_and_epilogue_nodes_get_one_function_each_configuration():
    relu = contract.SimamAttributes(1e-4, True, activation="relu")
    plain = contract.SimamAttributes(1e-4, True)
    x = helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, list(SHAPE))
    out = helper.make_tensor_value_info("c", onnx.TensorProto.FLOAT, list(SHAPE))
    nodes = [
        contract.make_simam_node("x", "a", relu, "one"),
        contract.make_simam_node("a", "b", plain, "two"),
        contract.make_simam_node("b", "c", relu, "three"),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "three", [x], [out]),
        opset_imports=[helper.make_opsetid("", 17), contract.simam_opset_import()],
    )
    assert attach_simam_function(model) is None
    assert sorted(f.overload for f in model.functions) == ["", "relu"]
    assert [n.overload for n in model.graph.node] == ["relu", "", "relu"] and model.ir_version >= 10
    xv = np.random.default_rng(1).standard_normal(SHAPE).astype(np.float32)
    a = np.maximum(simam_reference_numpy(xv, 1e-4), 0)
    want = np.maximum(simam_reference_numpy(simam_reference_numpy(a, 1e-4), 1e-4), 0)
    np.testing.assert_allclose(_run(model, {"x": xv}), want, rtol=1e-4, atol=1e-5)


# -- folding on synthetic graphs --------------------------------------------------------------------


def _chain(after: list[onnx.NodeProto], inits: list[onnx.TensorProto], extra_inputs=(), outputs=("z",)):
    """x -> SimAM -> ``after`` (reading 's'), with the model's inputs and its unfolded ORT output."""
    node = contract.make_simam_node("x", "s", contract.SimamAttributes(1e-4, True), "simam")
    inputs = [
        helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, list(SHAPE)) for n in ("x", *extra_inputs)
    ]
    outs = [helper.make_tensor_value_info(o, onnx.TensorProto.FLOAT, list(SHAPE)) for o in outputs]
    model = helper.make_model(
        helper.make_graph([node, *after], "chain", inputs, outs, inits),
        opset_imports=[helper.make_opsetid("", 17), contract.simam_opset_import()],
    )
    assert attach_simam_function(model) is None
    return model


def _const(name: str, value) -> onnx.TensorProto:
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def _fold_and_compare(model: onnx.ModelProto, feeds_names=("x",)) -> tuple[onnx.ModelProto, list[str]]:
    rng = np.random.default_rng(3)
    feeds = {n: rng.standard_normal(SHAPE).astype(np.float32) for n in feeds_names}
    folded, report = fold_epilogues(model)
    assert attach_simam_function(folded) is None
    np.testing.assert_allclose(_run(folded, feeds), _run(model, feeds), rtol=1e-5, atol=1e-5)
    return folded, report.folded[0].parts if report.folded else []


def test_per_channel_mul_then_add_then_silu_fold():
    c = SHAPE[1]
    after = [
        helper.make_node("Mul", ["m", "s"], ["a"]),  # constant first: either operand order
        helper.make_node("Add", ["a", "b"], ["t"]),
        helper.make_node("Sigmoid", ["t"], ["g"]),
        helper.make_node("Mul", ["t", "g"], ["z"]),
    ]
    inits = [
        _const("m", np.linspace(-1, 2, c).reshape(1, c, 1, 1)),
        _const("b", np.arange(c).reshape(c, 1, 1)),
    ]
    folded, parts = _fold_and_compare(_chain(after, inits))
    assert parts == ["Mul", "Add", "SiLU"] and len(folded.graph.node) == 1
    assert not {"m", "b"} & {t.name for t in folded.graph.initializer}  # the replaced constants are gone


def test_a_1d_c_operand_broadcasts_along_w_and_is_not_folded():
    after = [helper.make_node("Mul", ["s", "m"], ["z"])]
    _, parts = _fold_and_compare(_chain(after, [_const("m", np.ones(SHAPE[3]))]))
    assert parts == []


def test_residual_add_needs_x_shape_and_folding_stops_at_the_first_mismatch():
    after = [
        helper.make_node("Add", ["r", "s"], ["t"]),
        helper.make_node("Relu", ["t"], ["u"]),
        helper.make_node("Mul", ["u", "k"], ["z"]),  # after the activation: nothing more folds
    ]
    folded, parts = _fold_and_compare(_chain(after, [_const("k", 2.0)], extra_inputs=("r",)), ("x", "r"))
    assert parts == ["residual Add", "Relu"]
    assert [n.op_type for n in folded.graph.node] == ["SimAM", "Mul"]
    broadcast = [helper.make_node("Add", ["s", "q"], ["z"])]
    model = _chain(broadcast, [])
    model.graph.input.append(helper.make_tensor_value_info("q", onnx.TensorProto.FLOAT, [*SHAPE[:2], 1, 1]))
    assert fold_epilogues(model)[1].folded == []


def test_a_value_read_twice_or_a_graph_output_is_not_folded():
    twice = [helper.make_node("Relu", ["s"], ["z"]), helper.make_node("Neg", ["s"], ["w"])]
    assert fold_epilogues(_chain(twice, [], outputs=("z", "w")))[1].folded == []
    exposed = [helper.make_node("Relu", ["s"], ["z"])]
    assert fold_epilogues(_chain(exposed, [], outputs=("z", "s")))[1].folded == []


# -- zoo models, both exporters, the authors' checkpoint -------------------------------------------


def _random_batch_norms(net) -> None:
    """Freshly built networks have gamma=1, beta=0, mean=0, var=1: a folded BatchNorm would be nearly
    the identity. Real-looking statistics make the folded scale/bias matter."""
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                c = module.num_features
                module.weight.copy_(torch.rand(c, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(c, generator=generator) * 0.5)
                module.running_mean.copy_(torch.randn(c, generator=generator) * 0.5)
                module.running_var.copy_(torch.rand(c, generator=generator) + 0.5)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    from simam_deploy.export import export_onnx
    from simam_deploy.zoo import build_model

    folder = tmp_path_factory.mktemp("epilogue")
    cache: dict[tuple[str, int], Path] = {}

    def get(model: str, opset: int) -> Path:
        key = (model, opset)
        if key not in cache:
            net, _ = build_model(model)
            _random_batch_norms(net)
            path = folder / f"{model}-{opset}-{len(cache)}.onnx"
            shape = (1, 3, 32, 32) if model.startswith("cifar") else (1, 3, 224, 224)
            export_onnx(net, path, opset=opset, input_shape=shape, dynamic="batch")
            cache[key] = path
        return cache[key]

    return get


EXPECTED = {
    "cifar-resnet20": (9, {"BatchNormalization": 9, "residual Add": 9, "Relu": 9}),
    "resnet50": (16, {"BatchNormalization": 16, "Relu": 16}),
}


@pytest.mark.parametrize("opset", [18, 17], ids=["dynamo", "torchscript"])
@pytest.mark.parametrize("name", ["cifar-resnet20", "resnet50"])
def test_zoo_models_fold_and_match_the_unfolded_file(exported, zoo_onnx, tmp_path, capsys, name, opset):
    # resnet50's torchscript export (default BatchNorm statistics) is the session's shared one: the
    # export is the slow part; r20 and r50's dynamo export carry random statistics
    source = zoo_onnx(name, "decomposed") if (name, opset) == ("resnet50", 17) else exported(name, opset)
    out, report = tmp_path / "ep.onnx", tmp_path / "ep.json"
    code, stdout, err = run_cli(
        ["fuse", str(source), "-o", str(out), "--epilogue", "--json", str(report)], capsys
    )
    assert code == 0, err
    blocks, parts = EXPECTED[name]
    data = json.loads(report.read_text())["epilogue"]
    assert data["blocks_folded"] == data["simam_nodes"] == blocks and data["parts"] == parts
    summary = ", ".join(f"{k} {v}" for k, v in parts.items())
    assert f"epilogue: folded into {blocks} of {blocks} SimAM node(s) ({summary})" in stdout + err
    shape = (2, 3, 32, 32) if name.startswith("cifar") else (1, 3, 224, 224)
    x = {"input": np.random.default_rng(5).standard_normal(shape).astype(np.float32)}
    want = _run(source, x)
    got = _run(out, x)  # plain ONNX Runtime: the local function overloads
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    plain = tmp_path / "plain.onnx"
    code, _, err = run_cli(["unfuse", str(out), "-o", str(plain), "--expect", str(blocks)], capsys)
    assert code == 0, err
    np.testing.assert_allclose(_run(plain, x), want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))


def test_the_authors_checkpoint_folds_and_keeps_its_predictions(official_r20_onnx, tmp_path):
    """Dynamic batch, H and W: the residual's shape is matched symbolically."""
    from simam_deploy.graph.pipeline import fuse_file

    source = official_r20_onnx
    out = tmp_path / "ep.onnx"
    report, _ = fuse_file(source, out, epilogue=True, expect=9)
    assert report.epilogue is not None and len(report.epilogue.folded) == 9
    assert report.epilogue.parts() == EXPECTED["cifar-resnet20"][1]
    x = {"input": np.random.default_rng(11).standard_normal((8, 3, 40, 48)).astype(np.float32)}
    want, got = _run(source, x), _run(out, x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    assert (got.argmax(1) == want.argmax(1)).all()


def test_export_plugin_epilogue_and_its_refusal_in_decomposed_mode(exported, tmp_path, capsys):
    out = tmp_path / "p.onnx"
    code, stdout, err = run_cli(
        ["export", "cifar-resnet20", "--mode", "plugin", "--epilogue", "-o", str(out)], capsys
    )
    assert code == 0, err
    assert "epilogue: folded into 9 of 9 SimAM node(s)" in stdout + err
    model = onnx.load(out)
    assert {n.overload for n in model.graph.node if contract.is_simam_node(n)} == {"affine_residual_relu"}
    simam_out = {n.output[0] for n in model.graph.node if contract.is_simam_node(n)}
    readers = {n.op_type for n in model.graph.node if simam_out & set(n.input)}
    assert readers and not readers & {"BatchNormalization", "Add", "Relu"}  # the blocks' own are folded
    code, _, err = run_cli(["export", "cifar-resnet20", "--epilogue", "-o", str(tmp_path / "d.onnx")], capsys)
    assert code == 2 and "--mode plugin" in err and not (tmp_path / "d.onnx").exists()


def test_fp16_conversion_converts_scale_and_bias_with_x(exported, tmp_path):
    from simam_deploy.graph.pipeline import fuse_file
    from simam_deploy.precision import convert_precision

    folded = tmp_path / "ep.onnx"
    fuse_file(exported("cifar-resnet20", 18), folded, epilogue=True)
    half, _ = convert_precision(onnx.load(folded), "fp16")
    contract.validate_simam_nodes(half)  # scale/bias now have X's type
    types = {t.name: t.data_type for t in half.graph.initializer}
    scales = [n.input[1] for n in half.graph.node if contract.is_simam_node(n)]
    assert scales and all(types[s] == onnx.TensorProto.FLOAT16 for s in scales)
    assert {f.overload for f in half.functions} == {"affine_residual_relu"}
    x = {"input": np.random.default_rng(2).standard_normal((2, 3, 32, 32)).astype(np.float32)}
    want = _run(folded, x)
    np.testing.assert_allclose(_run(half, x), want, atol=2e-2 * float(np.abs(want).max()))


@pytest.mark.skipif(importlib.util.find_spec("openvino") is None, reason="OpenVINO not installed")
@pytest.mark.parametrize(
    "affine, residual, activation", [(True, True, "relu"), (False, True, "silu"), (True, False, "none")]
)
def test_openvino_rebuilds_the_epilogue(tmp_path, affine, residual, activation):
    from simam_deploy.backends import load_runner

    attrs = contract.SimamAttributes(0.1, False, affine=affine, residual=residual, activation=activation)
    model, feeds, want = _one_node(attrs, function=False)
    path = tmp_path / "one.onnx"
    onnx.save(model, path)
    got = load_runner(path, backend="openvino").infer(feeds)["y"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_tensorrt_rtx_parser_hands_epilogue_nodes_to_the_plugin_not_the_function(exported, tmp_path):
    """TensorRT for RTX's parser on a file carrying the function overloads: every SimAM node (with its
    scale, bias and residual inputs) becomes a plugin layer; expanding the local function instead
    would build 0 plugin layers."""
    from simam_deploy.backends import tensorrt as simam_trt
    from simam_deploy.graph.pipeline import fuse_file
    from tests.test_tensorrt_rtx import HAVE_RTX, PLUGIN, WHY_NO_PLUGIN

    if not HAVE_RTX or PLUGIN is None:
        pytest.skip(WHY_NO_PLUGIN or "TensorRT for RTX wheels not installed")
    folded = tmp_path / "ep.onnx"
    fuse_file(exported("cifar-resnet20", 18), folded, epilogue=True, expect=9)
    assert {f.overload for f in onnx.load(folded).functions} == {"affine_residual_relu"}
    for precision in ("fp32", "fp16"):  # fp16: converted on the way (scale/bias with X)
        engine = tmp_path / f"ep-{precision}.engine"
        report = simam_trt.build_engine(folded, engine, precision=precision, runtime="tensorrt-rtx")
        assert report.simam_nodes == report.simam_plugin_layers == 9


def test_per_layer_refuses_epilogue_nodes_whose_output_is_not_the_modules(exported, tmp_path):
    from simam_deploy.graph.pipeline import fuse_file
    from simam_deploy.per_layer import find_blocks

    folded = tmp_path / "ep.onnx"
    fuse_file(exported("cifar-resnet20", 18), folded, epilogue=True)
    with pytest.raises(InputError, match="carries a fused epilogue") as info:
        find_blocks(onnx.load(folded))
    assert "unfuse" in (info.value.hint or "")


def test_fuse_epilogue_on_a_file_that_already_has_simam_nodes(tmp_path, capsys):
    source, out = tmp_path / "chain.onnx", tmp_path / "out.onnx"
    onnx.save(_chain([helper.make_node("Relu", ["s"], ["z"])], []), source)
    code, stdout, err = run_cli(["fuse", str(source), "-o", str(out), "--epilogue", "--expect", "1"], capsys)
    assert code == 0, err
    assert "folded the epilogue into 1 existing SimAM node(s)" in stdout + err
    model = onnx.load(out)
    assert [n.op_type for n in model.graph.node] == ["SimAM"] and model.graph.node[0].overload == "relu"
    x = {"x": np.random.default_rng(4).standard_normal(SHAPE).astype(np.float32)}
    np.testing.assert_allclose(_run(out, x), np.maximum(simam_reference_numpy(x["x"], 1e-4), 0), atol=1e-5)


def _library_session(model: onnx.ModelProto | Path):
    from simam_deploy.backends.onnxruntime import library

    options = ort.SessionOptions()
    options.log_severity_level = 3
    library.register(options)
    source = str(model) if isinstance(model, Path) else model.SerializeToString()
    return ort.InferenceSession(source, options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("affine, residual, activation", CONFIGS)
def test_the_op_library_runs_every_epilogue_configuration(affine, residual, activation):
    attrs = contract.SimamAttributes(1e-4, True, affine=affine, residual=residual, activation=activation)
    model, feeds, want = _one_node(attrs, function=False)  # no function to fall back on: the op runs
    np.testing.assert_allclose(_library_session(model).run(None, feeds)[0], want, rtol=2e-5, atol=2e-5)


def test_the_op_library_runs_the_folded_zoo_file(exported, tmp_path):
    from simam_deploy.backends import load_runner
    from simam_deploy.graph.pipeline import fuse_file

    source = exported("cifar-resnet20", 18)
    folded = tmp_path / "ep.onnx"
    fuse_file(source, folded, epilogue=True, expect=9)
    x = {"input": np.random.default_rng(9).standard_normal((2, 3, 32, 32)).astype(np.float32)}
    want = _run(source, x)
    got = load_runner(folded, backend="onnxruntime").infer(x)
    np.testing.assert_allclose(
        next(iter(got.values())), want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max())
    )
