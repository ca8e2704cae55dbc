"""unfuse: SimAM nodes become standard ops for the file's opset; bad SimAM nodes are refused by name."""

from __future__ import annotations

import math

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from simam_deploy.errors import InputError
from simam_deploy.graph import contract
from simam_deploy.graph.fuse import fuse_simam
from simam_deploy.graph.unfuse import unfuse_simam
from simam_deploy.nn import simam_reference_numpy
from tests.cli_runner import exit_code as cli
from tests.onnx_corpus import simam_node_model


def run_plain(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": x})[0]


def reduce_axes_style(model: onnx.ModelProto, op_type: str) -> str:
    node = next(n for n in model.graph.node if n.op_type == op_type)
    return "attribute" if any(a.name == "axes" for a in node.attribute) else "input"


@pytest.mark.parametrize("opset", [11, 12, 13, 17, 18, 21])
@pytest.mark.parametrize(("e_lambda", "unbiased"), [(1e-4, 1), (0.1, 0)])
@pytest.mark.parametrize("dynamic", [False, True])
def test_unfused_graph_matches_reference(opset, e_lambda, unbiased, dynamic):
    dims = (2, 4, "h", "w") if dynamic else (2, 4, 6, 5)
    model = simam_node_model(opset, e_lambda, unbiased, dims=dims)
    plain = unfuse_simam(model)
    assert not any(n.domain == contract.DOMAIN for n in plain.graph.node)
    assert contract.DOMAIN not in {o.domain for o in plain.opset_import}
    onnx.checker.check_model(plain, full_check=True)
    # ReduceMean takes axes as an input only from opset 18, ReduceSum from 13
    assert reduce_axes_style(plain, "ReduceMean") == ("input" if opset >= 18 else "attribute")
    assert reduce_axes_style(plain, "ReduceSum") == ("input" if opset >= 13 else "attribute")
    assert any(n.op_type == "Shape" for n in plain.graph.node) == dynamic
    rng = np.random.default_rng(opset)
    for shape in [(2, 4, 6, 5)] + ([(2, 4, 3, 9)] if dynamic else []):
        x = rng.standard_normal(shape).astype(np.float32) * 3
        want = simam_reference_numpy(np.maximum(x, 0), e_lambda, bool(unbiased))
        np.testing.assert_allclose(run_plain(plain, x), want, rtol=1e-5, atol=1e-6)


def test_unfuse_then_fuse_round_trips_attributes():
    model = simam_node_model(17, 0.1, 0)
    refused, report = fuse_simam(unfuse_simam(model))
    (fused,) = report.fused
    assert fused.e_lambda == pytest.approx(0.1) and fused.unbiased == 0
    assert sum(contract.is_simam_node(n) for n in refused.graph.node) == 1


def test_model_without_simam_comes_back_unchanged():
    model = simam_node_model(18)
    plain = unfuse_simam(model)
    assert unfuse_simam(plain) == plain


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"e_lambda": None}, "no e_lambda"),
        ({"e_lambda": -1e-4}, "e_lambda must be a finite number > 0"),
        ({"e_lambda": 0.0}, "e_lambda must be a finite number > 0"),
        ({"e_lambda": math.nan}, "e_lambda must be a finite number > 0"),
        ({"e_lambda": math.inf}, "e_lambda must be a finite number > 0"),
        ({"e_lambda": 1}, "must be a FLOAT attribute"),
        ({"unbiased": 2}, "unbiased must be an INT 0 or 1"),
        ({"unbiased": 0.5}, "unbiased must be an INT 0 or 1"),
        ({"color": "red"}, "unknown attributes"),
    ],
)
def test_bad_attributes_name_the_node(attrs, message):
    model = simam_node_model(18, **{"e_lambda": 1e-4, "unbiased": 1, **attrs})
    with pytest.raises(InputError, match=message) as info:
        unfuse_simam(model)
    assert "simam_0" in str(info.value)


def test_bad_input_rank_and_type_name_the_node():
    with pytest.raises(InputError, match=r"simam_0.*rank 3"):
        unfuse_simam(simam_node_model(18, dims=(4, 6, 5)))
    model = simam_node_model(18)
    model.graph.node[0].op_type = "Cast"
    model.graph.node[0].attribute.append(onnx.helper.make_attribute("to", onnx.TensorProto.INT32))
    with pytest.raises(InputError, match=r"simam_0.*INT32"):
        unfuse_simam(model)


def test_unknown_opset_and_wrong_domain_are_refused():
    with pytest.raises(InputError, match="opset 10"):
        unfuse_simam(simam_node_model(10))
    model = simam_node_model(18)
    model.graph.node[1].domain = "my.domain"
    with pytest.raises(InputError, match=r"domain 'my\.domain'"):
        unfuse_simam(model)


def test_cli_unfuse(tmp_path, capsys):
    src, out = tmp_path / "plugin.onnx", tmp_path / "plain.onnx"
    onnx.save(simam_node_model(18, 0.1, 1), src)
    assert cli("unfuse", str(src), "-o", str(out)) == 0
    assert "expanded 1 SimAM node" in capsys.readouterr().out
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 5)).astype(np.float32)
    want = simam_reference_numpy(np.maximum(x, 0), 0.1, True)
    np.testing.assert_allclose(run_plain(onnx.load(out), x), want, rtol=1e-5, atol=1e-6)
    # nothing to do: say so and write the model unchanged; --expect turns a surprise into exit 1
    again = tmp_path / "again.onnx"
    assert cli("unfuse", str(out), "-o", str(again)) == 0
    assert "no SimAM node" in capsys.readouterr().out and again.exists()
    assert onnx.load(again).graph == onnx.load(out).graph
    assert cli("unfuse", str(out), "-o", str(again), "--expect", "1") == 1
    assert cli("unfuse", str(src), "-o", str(again), "--expect", "1") == 0
    assert cli("unfuse", str(src), "-o", str(src)) == 2
    bad = tmp_path / "bad.onnx"
    onnx.save(simam_node_model(18, -1.0), bad)
    assert cli("unfuse", str(bad), "-o", str(tmp_path / "x.onnx")) == 2
    assert "simam_0" in capsys.readouterr().err
