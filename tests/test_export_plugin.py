"""Plugin-mode export: one SimAM node per module, both torch exporters, runnable in ONNX Runtime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch

from simam_deploy.backends.onnxruntime.runner import OnnxRuntimeRunner
from simam_deploy.export import export_onnx
from simam_deploy.graph import contract
from simam_deploy.graph.fuse import fuse_simam
from simam_deploy.graph.unfuse import unfuse_simam
from simam_deploy.ops import native_available
from tests.onnx_corpus import TwoSimamNet

pytestmark = pytest.mark.skipif(not native_available(), reason="simam_deploy._C (the fused op) is not built")

CASES = [
    ("dynamo", 18, "all"),
    ("dynamo", 21, "batch"),
    ("torchscript", 13, "batch"),
    ("torchscript", 17, "all"),
]


def simam_nodes(model: onnx.ModelProto) -> list[tuple[onnx.NodeProto, contract.SimamAttributes]]:
    return contract.validate_simam_nodes(model)


def run(path_or_model, x: np.ndarray) -> np.ndarray:
    runner = OnnxRuntimeRunner(path_or_model)
    return runner.infer({runner.input_names[0]: x})[runner.output_names[0]]


@pytest.mark.parametrize(("exporter", "opset", "dynamic"), CASES)
def test_small_net_plugin_export(tmp_path, exporter, opset, dynamic):
    model = TwoSimamNet().eval()
    out = tmp_path / "plugin.onnx"
    report = export_onnx(model, out, mode="plugin", opset=opset, input_shape=(1, 3, 8, 8), dynamic=dynamic,
                         exporter=exporter)  # fmt: skip
    assert report.simam_nodes == 2
    assert not any(m.fused for m in (model.a1, model.a2))  # the modules are switched back
    proto = onnx.load(out)
    onnx.checker.check_model(proto, full_check=True)
    nodes = simam_nodes(proto)
    assert [(a.e_lambda, a.unbiased) for _, a in nodes] == [
        (pytest.approx(1e-4), True), (pytest.approx(0.1), False)
    ]  # fmt: skip
    assert ("com.simam_deploy", 1) in {(o.domain, o.version) for o in proto.opset_import}
    assert proto.ir_version <= 10
    for node, _ in nodes:
        fields = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        assert fields["plugin_version"] == b"1" and fields["plugin_namespace"] == b""
        assert node.output[0] in contract.value_types(onnx.shape_inference.infer_shapes(proto))
    shapes = [(1, 3, 8, 8)] + ([(2, 3, 6, 10)] if dynamic == "all" else [(3, 3, 8, 8)])
    rng = np.random.default_rng(0)
    for shape in shapes:
        x = rng.standard_normal(shape).astype(np.float32)
        with torch.no_grad():
            want = model(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(run(out, x), want, rtol=1e-4, atol=1e-5)
        # unfused, the file runs in any runtime (plain ONNX Runtime here, no custom op)
        np.testing.assert_allclose(run(unfuse_simam(proto), x), want, rtol=1e-4, atol=1e-5)


def test_plugin_export_equals_fused_decomposed_export(tmp_path):
    model = TwoSimamNet().eval()
    export_onnx(model, tmp_path / "dec.onnx", opset=17, input_shape=(1, 3, 8, 8), exporter="torchscript")
    export_onnx(model, tmp_path / "plug.onnx", mode="plugin", opset=17, input_shape=(1, 3, 8, 8),
                exporter="torchscript")  # fmt: skip
    fused, _ = fuse_simam(onnx.load(tmp_path / "dec.onnx"))
    plugin = onnx.load(tmp_path / "plug.onnx")
    assert [n.op_type for n in fused.graph.node] == [n.op_type for n in plugin.graph.node]
    attrs = [[(a.e_lambda, a.unbiased) for _, a in simam_nodes(m)] for m in (fused, plugin)]
    assert attrs[0] == attrs[1]


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_official_resnet20_plugin_export_matches_pytorch(official_checkpoint, tmp_path, exporter):
    from simam_deploy.zoo import build_model

    model, _ = build_model("cifar-resnet20", official_checkpoint)
    out = tmp_path / "r20-plugin.onnx"
    opset = 18 if exporter == "dynamo" else 17
    report = export_onnx(model, out, mode="plugin", opset=opset, input_shape=(1, 3, 32, 32), dynamic="batch",
                         exporter=exporter)  # fmt: skip
    assert report.simam_nodes == 9
    x = np.random.default_rng(0).standard_normal((4, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    got = run(out, x)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert (got.argmax(1) == want.argmax(1)).all()
