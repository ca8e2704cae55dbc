"""Reduced-precision ONNX (simam_deploy.precision): files written by torch's real exporters, converted,
checked with onnx's checker and run in ONNX Runtime (float16) or onnx's reference evaluator (bfloat16,
which ONNX Runtime's CPU provider has no kernels for)."""

from __future__ import annotations

import io
import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from simam_deploy.backends.onnxruntime.runner import OnnxRuntimeRunner
from simam_deploy.errors import InputError
from simam_deploy.export import export_onnx
from simam_deploy.graph import contract
from simam_deploy.nn import SimAM, simam_reference_numpy
from simam_deploy.ops import native_available
from simam_deploy.precision import (
    DEFAULT_TOLERANCES,
    convert_file,
    convert_precision,
    file_precision,
    model_precision,
    resolve_tolerances,
    typed_onnx_for_build,
)
from simam_deploy.zoo import build_model
from tests.cli_runner import run_cli


@pytest.fixture(scope="module")
def r20():
    torch.manual_seed(0)
    model, _ = build_model("cifar-resnet20", None)
    return model.eval()


@pytest.fixture(scope="module")
def r20_dynamo(tmp_path_factory, r20):
    path = tmp_path_factory.mktemp("p") / "r20.onnx"
    export_onnx(r20, path, input_shape=(1, 3, 32, 32))
    return path


@pytest.fixture(scope="module")
def r20_torchscript17(tmp_path_factory, r20):
    """A plain torch.onnx.export TorchScript opset-17 file, written as a user would (not by us)."""
    path = tmp_path_factory.mktemp("p") / "r20-ts17.onnx"
    torch.onnx.export(
        r20,
        (torch.randn(1, 3, 32, 32),),
        str(path),
        dynamo=False,
        opset_version=17,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch", 2: "h", 3: "w"}, "output": {0: "batch"}},
    )
    return path


def _types(model: onnx.ModelProto) -> dict[str, int]:
    inferred = onnx.shape_inference.infer_shapes(model)
    g = inferred.graph
    types = {v.name: v.type.tensor_type.elem_type for v in [*g.input, *g.value_info, *g.output]}
    types.update({i.name: i.data_type for i in g.initializer})
    return types


def _inputs(n=4, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 3, 32, 32)).astype(np.float32)


def _torch(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def _assert_close_logits(y, ref, precision):
    atol, rtol = DEFAULT_TOLERANCES[precision]
    assert np.isfinite(y).all()
    np.testing.assert_allclose(y, ref, atol=atol, rtol=rtol)
    assert np.mean(y.argmax(1) == ref.argmax(1)) >= 0.75


def test_fp16_decomposed_keeps_statistics_float32_and_runs_in_onnxruntime(r20, r20_dynamo, tmp_path):
    out = tmp_path / "r20-fp16.onnx"
    report = convert_file(r20_dynamo, out, "fp16")
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    types = _types(model)
    assert report.simam_subgraphs == 9
    producer = {o: n for n in model.graph.node for o in n.output}
    simam_nodes = [n for n in model.graph.node if "/simam/" in n.name]
    for node in simam_nodes:
        # mean, deviation, square, their sum and the variance = sum / (H*W-1); nothing else
        is_variance = node.op_type == "Div" and producer[node.input[0]].op_type == "ReduceSum"
        is_statistic = node.op_type in ("ReduceMean", "Sub", "Pow", "ReduceSum") or is_variance
        want = TensorProto.FLOAT if is_statistic else TensorProto.FLOAT16
        assert types[node.output[0]] == want, (node.name, node.op_type)
    assert len(report.float32_nodes) == 9 * 5
    assert all(i.data_type != TensorProto.FLOAT for i in model.graph.initializer if i.name.endswith("weight"))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    assert model_precision(_types_model(model)) == "fp16"
    x = _inputs()
    _assert_close_logits(OnnxRuntimeRunner(out).infer({"input": x})["output"], _torch(r20, x), "fp16")
    # roughly half the bytes of the float32 file
    assert out.stat().st_size < 0.6 * r20_dynamo.stat().st_size


def _types_model(model: onnx.ModelProto) -> onnx.ModelProto:
    return onnx.shape_inference.infer_shapes(model)


def test_torchscript_cast_to_float_of_hw_minus_1_stays_exact(r20, r20_torchscript17, tmp_path):
    """TorchScript writes H*W-1 as Cast(to=FLOAT) of integer shape arithmetic; a generic converter
    fails there ('DIV must have same input types'). Here it stays float32 and feeds the float32 Div."""
    src = onnx.load(str(r20_torchscript17))
    casts = [n for n in src.graph.node if n.op_type == "Cast" and n.attribute[0].i == TensorProto.FLOAT]
    assert casts, "the TorchScript file should compute H*W-1 through Cast(to=FLOAT)"
    out = tmp_path / "ts17-fp16.onnx"
    convert_file(r20_torchscript17, out, "fp16")
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    names = {n.name for n in casts}
    kept = [n for n in model.graph.node if n.name in names]
    assert kept and all(n.attribute[0].i == TensorProto.FLOAT for n in kept)
    runner = OnnxRuntimeRunner(out)
    for shape in ((3, 3, 32, 32), (2, 3, 40, 24)):
        x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
        _assert_close_logits(runner.infer({"input": x})["output"], _torch(r20, x), "fp16")


def test_io_types_model_keeps_reduced_inputs_and_outputs(r20, r20_dynamo, tmp_path):
    out = tmp_path / "io.onnx"
    report = convert_file(r20_dynamo, out, "fp16", io_types="model")
    model = onnx.load(str(out))
    assert model.graph.input[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT16
    assert report.io_types == "model"
    x = _inputs()
    y = OnnxRuntimeRunner(out).infer({"input": x.astype(np.float16)})["output"]
    assert y.dtype == np.float16
    _assert_close_logits(y.astype(np.float32), _torch(r20, x), "fp16")


@pytest.mark.skipif(not native_available(), reason="simam_deploy._C (the fused kernel) is not built")
def test_plugin_mode_simam_nodes_carry_the_reduced_type(r20, tmp_path):
    src = tmp_path / "plugin.onnx"
    export_onnx(r20, src, mode="plugin", input_shape=(1, 3, 32, 32))
    for precision, elem in (("fp16", TensorProto.FLOAT16), ("bf16", TensorProto.BFLOAT16)):
        out = tmp_path / f"plugin-{precision}.onnx"
        report = convert_file(src, out, precision)
        model = onnx.load(str(out))
        onnx.checker.check_model(model, full_check=True)
        types = _types(model)
        simam = [n for n in model.graph.node if contract.is_simam_node(n)]
        assert len(simam) == report.simam_nodes == 9
        assert all(types[n.input[0]] == elem and types[n.output[0]] == elem for n in simam)
    x = _inputs()
    y = OnnxRuntimeRunner(tmp_path / "plugin-fp16.onnx").infer({"input": x})["output"]
    _assert_close_logits(y, _torch(r20, x), "fp16")


def test_bf16_upgrades_to_opset_22_and_computes_in_bfloat16(r20, r20_dynamo, tmp_path):
    out = tmp_path / "bf16.onnx"
    report = convert_file(r20_dynamo, out, "bf16")
    assert report.opset_before == 18 and report.opset_after == 22
    assert any("opset 22" in n for n in report.notices)
    model = onnx.load(str(out))
    onnx.checker.check_model(model, full_check=True)
    assert model_precision(_types_model(model)) == "bf16"
    # ONNX Runtime's CPU provider has no bfloat16 kernels; onnx's reference evaluator runs it
    x = _inputs(2)
    y = np.asarray(ReferenceEvaluator(model).run(None, {"input": x})[0], np.float32)
    _assert_close_logits(y, _torch(r20, x), "bf16")


def _one_simam_model(plane: int) -> onnx.ModelProto:
    buffer = io.BytesIO()
    torch.onnx.export(
        SimAM(1e-4),
        (torch.randn(1, 4, plane, plane),),
        buffer,
        dynamo=False,
        opset_version=17,
        input_names=["x"],
        output_names=["y"],
    )
    return onnx.load_from_string(buffer.getvalue())


def test_float32_statistics_survive_where_float16_sums_overflow():
    """On a 64x64 plane with std 10 the sum of squared deviations is ~4e5, beyond float16's 65504:
    computed in float16 (onnx's reference evaluator) the variance is inf and SimAM degenerates to
    x*sigmoid(0.5); with the statistics in float32 the result matches the float64 reference."""
    model = _one_simam_model(64)
    x = (10 * np.random.default_rng(0).standard_normal((1, 4, 64, 64))).astype(np.float32)
    want = simam_reference_numpy(x, 1e-4, True)
    ours, _ = convert_precision(model, "fp16")
    naive, _ = convert_precision(model, "fp16", keep_statistics_fp32=False)
    y_ours = np.asarray(ReferenceEvaluator(ours).run(None, {"x": x})[0], np.float32)
    with np.errstate(over="ignore"):
        y_naive = np.asarray(ReferenceEvaluator(naive).run(None, {"x": x})[0], np.float32)
    np.testing.assert_allclose(y_ours, want, atol=0.05, rtol=1e-2)
    assert np.abs(y_naive - want).max() > 1.0
    np.testing.assert_allclose(y_naive, x / (1 + np.exp(-0.5)), rtol=2e-3, atol=1e-2)


def test_refusals(r20_dynamo, tmp_path):
    model = onnx.load(str(r20_dynamo))
    half, _ = convert_precision(model, "fp16")
    with pytest.raises(InputError, match="already computes in fp16"):
        convert_precision(half, "bf16")
    with pytest.raises(InputError, match="fp16 or bf16"):
        convert_precision(model, "int8")
    with pytest.raises(InputError, match="io-types"):
        convert_precision(model, "fp16", io_types="float64")
    with pytest.raises(InputError, match="same file"):
        convert_file(r20_dynamo, r20_dynamo, "fp16")


def test_external_data_is_read_and_checked(r20_dynamo, tmp_path):
    folder = tmp_path / "ext"
    folder.mkdir()
    model = onnx.load(str(r20_dynamo))
    onnx.save(model, str(folder / "m.onnx"), save_as_external_data=True, location="m.bin", size_threshold=0)
    report = convert_file(folder / "m.onnx", tmp_path / "m-fp16.onnx", "fp16")
    assert report.weights_converted > 0
    # external in, external out (save_onnx's auto rule), and the file size counts both files
    written = [tmp_path / "m-fp16.onnx", tmp_path / "m-fp16.onnx.data"]
    assert report.file_bytes == sum(p.stat().st_size for p in written)
    onnx.checker.check_model(str(tmp_path / "m-fp16.onnx"), full_check=True)
    # a location outside the model's folder is refused, and nothing is written
    bad = onnx.load(str(folder / "m.onnx"), load_external_data=False)
    for init in bad.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                entry.value = "../m.bin"
    onnx.save(bad, str(folder / "bad.onnx"))
    with pytest.raises(InputError, match="climbs out of the model's folder"):
        convert_file(folder / "bad.onnx", tmp_path / "bad-fp16.onnx", "fp16")
    assert not (tmp_path / "bad-fp16.onnx").exists()


def test_tolerances_follow_the_precision(r20_dynamo, tmp_path):
    convert_file(r20_dynamo, tmp_path / "h.onnx", "fp16")
    choice = resolve_tolerances(tmp_path / "h.onnx")
    assert (choice.precision, choice.atol, choice.rtol) == ("fp16", *DEFAULT_TOLERANCES["fp16"])
    assert "fp16 defaults" in choice.source and "tensor types" in choice.source
    assert resolve_tolerances(r20_dynamo).precision == "fp32"
    given = resolve_tolerances(tmp_path / "h.onnx", atol=1.0, rtol=0.5)
    assert (given.atol, given.rtol) == (1.0, 0.5) and given.source.startswith("given")
    assert resolve_tolerances("x.engine", "bf16").atol == DEFAULT_TOLERANCES["bf16"][0]


def test_cli_convert_export_and_validate(tmp_path, capsys, r20_dynamo):
    out = tmp_path / "c.onnx"
    code, stdout, _ = run_cli(
        ["convert", str(r20_dynamo), "--precision", "fp16", "-o", str(out), "--json", "-"], capsys
    )
    assert code == 0
    payload = json.loads(stdout)
    assert payload["schema"] == "simam-deploy/convert/v1" and payload["simam_subgraphs"] == 9
    code, _, err = run_cli(
        ["convert", str(tmp_path / "missing.onnx"), "--precision", "fp16", "-o", str(tmp_path / "x.onnx")],
        capsys,
    )
    assert code == 2 and "does not exist" in err
    code, _, err = run_cli(
        ["convert", str(out), "--precision", "bf16", "-o", str(tmp_path / "y.onnx")], capsys
    )
    assert code == 2 and "already computes in fp16" in err
    exported = tmp_path / "e.onnx"
    code, _, _ = run_cli(["export", "cifar-resnet20", "--precision", "fp16", "-o", str(exported)], capsys)
    assert code == 0
    assert model_precision(_types_model(onnx.load(str(exported)))) == "fp16"
    code, stdout, _ = run_cli(
        ["validate", str(exported), "--reference", "cifar-resnet20", "--json", "-"], capsys
    )
    report = json.loads(stdout)
    assert code == 0 and report["passed"]
    assert report["precision"] == "fp16" and report["tolerance"]["atol"] == DEFAULT_TOLERANCES["fp16"][0]
    assert report["summary"]["min_top1_agreement"] is not None
    code, stdout, _ = run_cli(["validate", str(exported), "--reference", "cifar-resnet20"], capsys)
    assert code == 0 and "fp16 defaults" in stdout and "top-1 agreement" in stdout


def test_official_checkpoint_fp16_agrees_with_pytorch(official_checkpoint, tmp_path):
    model, _ = build_model("cifar-resnet20", official_checkpoint)
    src = tmp_path / "r20.onnx"
    export_onnx(model, src, input_shape=(1, 3, 32, 32), precision="fp16")
    x = _inputs(16, seed=3)
    y = OnnxRuntimeRunner(src).infer({"input": x})["output"]
    ref = _torch(model.eval(), x)
    _assert_close_logits(y, ref, "fp16")
    assert np.mean(y.argmax(1) == ref.argmax(1)) >= 0.9


def test_unknown_custom_op_stays_float32(tmp_path):
    """Ops without a schema (other custom domains) are kept float32 with casts around them."""
    nodes = [
        helper.make_node("Relu", ["X"], ["a"], name="r"),
        helper.make_node("Foo", ["a"], ["b"], name="foo", domain="com.other"),
        helper.make_node("Relu", ["b"], ["Y"], name="r2"),
    ]
    vi = [helper.make_tensor_value_info("b", TensorProto.FLOAT, [1, 4])]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, 4])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, 4])],
        value_info=vi,
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.other", 1)]
    )
    model.ir_version = 8
    out, report = convert_precision(model, "fp16")
    assert "foo" in report.float32_nodes
    foo = next(n for n in out.graph.node if n.name == "foo")
    assert foo.input[0].endswith("__fp32")


def test_typed_onnx_for_a_strongly_typed_build(r20_dynamo, tmp_path):
    path, notice = typed_onnx_for_build(r20_dynamo, "bf16", tmp_path)
    assert path.parent == tmp_path and "no bf16 builder flag" in notice and "opset 22" in notice
    assert file_precision(path) == "bf16"
    same, none = typed_onnx_for_build(path, "bf16", tmp_path)  # already bf16: used as it is
    assert same == path and none is None
    with pytest.raises(InputError, match="computes in bf16, but fp16"):
        typed_onnx_for_build(path, "fp16", tmp_path)


def test_validate_says_why_onnxruntime_cannot_run_bf16(r20_dynamo, tmp_path, capsys):
    convert_file(r20_dynamo, tmp_path / "b.onnx", "bf16")
    code, _, err = run_cli(["validate", str(tmp_path / "b.onnx"), "--reference", "cifar-resnet20"], capsys)
    assert code == 2 and "no bfloat16 kernels" in err
