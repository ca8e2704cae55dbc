"""The SimAM op in ONNX Runtime (onnxruntime-extensions Python op backed by the fused CPU kernel)."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from simam_deploy.backends import ort_customop
from simam_deploy.backends.onnxruntime import OnnxRuntimeRunner
from simam_deploy.errors import InputError, MissingDependencyError
from simam_deploy.graph import contract
from simam_deploy.nn import simam_reference_numpy
from simam_deploy.ops import native_available
from tests.onnx_corpus import simam_node_model

pytestmark = pytest.mark.skipif(
    not native_available(), reason="simam_deploy._C (the fused kernel) is not built"
)


def session_for(model: onnx.ModelProto) -> ort.InferenceSession:
    data, options = ort_customop.prepare_session(model)
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(("e_lambda", "unbiased"), [(1e-4, 1), (0.1, 0), (2.5, 1)])
def test_op_matches_reference(e_lambda, unbiased):
    session = session_for(simam_node_model(18, e_lambda, unbiased, dims=("n", 4, "h", "w")))
    rng = np.random.default_rng(3)
    for shape in [(2, 4, 6, 5), (1, 4, 13, 3), (3, 4, 2, 2)]:
        x = (rng.standard_normal(shape) * 4 + 1).astype(np.float32)
        want = simam_reference_numpy(np.maximum(x, 0), e_lambda, bool(unbiased))
        np.testing.assert_allclose(session.run(None, {"X": x})[0], want, rtol=1e-5, atol=1e-6)


def test_retarget_is_in_memory_only():
    model = simam_node_model(17, 0.1, 0, plugin_version="1", plugin_namespace="")
    before = model.SerializeToString()
    target = ort_customop.retarget_for_ort(model)
    assert model.SerializeToString() == before
    node = next(n for n in target.graph.node if n.op_type == "SimAM")
    assert node.domain == "ai.onnx.contrib"
    assert {a.name for a in node.attribute} == {"e_lambda", "unbiased"}
    assert {o.domain for o in target.opset_import} == {"", "ai.onnx.contrib"}
    assert target.ir_version <= 10


def test_high_ir_version_from_new_onnx_helpers_still_loads():
    model = simam_node_model(18)
    model.ir_version = onnx.IR_VERSION  # what onnx 1.23's make_model writes by default
    runner = OnnxRuntimeRunner(model)
    x = np.ones((2, 4, 6, 5), np.float32)
    assert runner.infer({"X": x})["Y"].shape == x.shape


def test_runner_on_a_file_with_simam_nodes(tmp_path):
    path = tmp_path / "plugin.onnx"
    onnx.save(simam_node_model(21, 1e-4, 1), path)
    runner = OnnxRuntimeRunner(path)
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 5)).astype(np.float32)
    want = simam_reference_numpy(np.maximum(x, 0), 1e-4, True)
    np.testing.assert_allclose(runner.infer({"X": x})["Y"], want, rtol=1e-5, atol=1e-6)


def test_bad_nodes_are_refused_before_onnxruntime():
    with pytest.raises(InputError, match=r"simam_0.*e_lambda"):
        ort_customop.prepare_session(simam_node_model(18, -0.5))
    bf16 = simam_node_model(18)
    for vi in [*bf16.graph.input, *bf16.graph.output]:
        vi.type.tensor_type.elem_type = onnx.TensorProto.BFLOAT16
    with pytest.raises(MissingDependencyError, match="float32 and float16 only"):
        ort_customop.prepare_session(bf16)
    assert contract.DOMAIN == "com.simam_deploy"
