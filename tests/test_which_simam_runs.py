"""Which implementation of a fused SimAM node each runtime really executes, read from ONNX Runtime's
own profile: with our op library registered the SimAM kernel runs (the model-local function of the
same name is not used); with nothing registered ONNX Runtime inlines the local function into
standard ops. Both give PyTorch's numbers."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch


@pytest.fixture(scope="module")
def fused_r20(tmp_path_factory):
    from simam_deploy.export import export_onnx
    from simam_deploy.graph.pipeline import fuse_file
    from simam_deploy.zoo import build_model

    model, _ = build_model("cifar-resnet20", None)
    folder = tmp_path_factory.mktemp("which")
    export_onnx(model.eval(), folder / "r20.onnx", opset=18, input_shape=(1, 3, 32, 32), exporter="dynamo")
    fuse_file(folder / "r20.onnx", folder / "r20-fused.onnx")
    return model.eval(), folder / "r20-fused.onnx"


def _profiled_ops(path: Path, options: ort.SessionOptions, x: np.ndarray) -> tuple[Counter, np.ndarray]:
    options.enable_profiling = True
    options.profile_file_prefix = str(path.parent / f"profile-{id(options)}")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {session.get_inputs()[0].name: x})
    with open(session.end_profiling()) as handle:
        events = json.load(handle)
    ops = Counter(
        e["args"]["op_name"] for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")
    )
    return ops, y


def test_registered_kernel_wins_over_the_local_function(fused_r20):
    from simam_deploy import ort as simam_ort

    model, path = fused_r20
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    ops, y = _profiled_ops(path, simam_ort.session_options(), x)
    assert ops["SimAM"] == 9 and ops["Sigmoid"] == 0, ops
    np.testing.assert_allclose(y, ref, atol=1e-4, rtol=1e-3)


def test_plain_onnxruntime_runs_the_local_function(fused_r20):
    model, path = fused_r20
    x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    ops, y = _profiled_ops(path, ort.SessionOptions(), x)
    assert ops["SimAM"] == 0 and ops["Sigmoid"] == 9, ops  # the function body, inlined
    np.testing.assert_allclose(y, ref, atol=1e-4, rtol=1e-3)
