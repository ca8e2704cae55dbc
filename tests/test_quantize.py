"""``simam-deploy quantize``: Q/DQ files that keep every SimAM in float32, in TensorRT's layout.

Everything runs for real: torch's exporter writes the files, ONNX Runtime's quantizer calibrates on
crops of real photos, ONNX Runtime runs the results, the repository's matcher finds the blocks again.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from simam_deploy.export import export_onnx
from simam_deploy.graph.pipeline import fuse_file
from simam_deploy.onnx_utils import infer_shapes, load_onnx, save_onnx
from simam_deploy.quantize import (
    agreement,
    find_blocks,
    layout_problems,
    quantized_layers,
    split_samples,
)
from simam_deploy.zoo import build_model
from tests.cli_runner import run_cli
from tests.real_images import make_photo_folder

R20_BLOCKS = 9


def _export(model_name: str, out: Path, shape, **kw) -> Path:
    torch.manual_seed(0)
    model, _ = build_model(model_name, None)
    export_onnx(model, out, input_shape=shape, **kw)
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> Path:
    return make_photo_folder(tmp_path_factory.mktemp("photos"), count=48, crop=64)


@pytest.fixture(scope="module")
def r20(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("r20")
    decomposed = _export("cifar-resnet20", folder / "r20.onnx", (1, 3, 32, 32))
    fused = folder / "r20-fused.onnx"
    fuse_file(decomposed, fused)
    return {"decomposed": decomposed, "fused": fused}


def _weight_dq(model: onnx.ModelProto) -> list[onnx.NodeProto]:
    inits = {i.name: i for i in model.graph.initializer}
    return [n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits]


def _check_tensorrt_layout(model: onnx.ModelProto) -> None:
    """Per-channel symmetric int8 weights, symmetric int8 activations, float biases."""
    inits = {i.name: i for i in model.graph.initializer}
    weights = _weight_dq(model)
    assert weights, "no quantized weights"
    for dq in weights:
        w = inits[dq.input[0]]
        assert w.data_type == onnx.TensorProto.INT8, dq.name
        scale = numpy_helper.to_array(inits[dq.input[1]])
        assert (scale.ndim == 1 and scale.size == w.dims[0] > 1) or w.dims[0] == 1, dq.name  # per channel
        zero = numpy_helper.to_array(inits[dq.input[2]])
        assert not zero.any()
    for node in model.graph.node:
        if node.op_type in ("Conv", "Gemm") and len(node.input) > 2:
            assert inits[node.input[2]].data_type == onnx.TensorProto.FLOAT, f"{node.name}: bias quantized"


@pytest.mark.parametrize("kind", ["decomposed", "fused"])
def test_quantize_keeps_every_simam_float32(kind, r20, photos, tmp_path, capsys):
    out = tmp_path / "int8.onnx"
    code, stdout, err = run_cli(
        ["quantize", str(r20[kind]), "-o", str(out), "--calibrate", str(photos), "--reference",
         "cifar-resnet20", "--samples", "32", "--method", "minmax", "--json", "-"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "calibrating" in err  # progress on stderr
    report = json.loads(stdout)
    assert report["schema"] == "simam-deploy/quantize/v1"
    assert report["outputs"]["onnx"] == str(out)
    simam = [k for k in report["kept"] if k["op_type"] == "SimAM"]
    assert len(simam) == R20_BLOCKS and all("SimAM block" in k["reason"] for k in simam)
    assert report["simam_blocks" if kind == "decomposed" else "simam_nodes"] == R20_BLOCKS
    assert len(report["quantized"]) == 22  # 21 convolutions + the classifier
    assert report["conv_weight_share"] == 1.0
    assert report["calibration_samples"] == 32 and report["held_out_samples"] == 16

    model = load_onnx(out)
    _check_tensorrt_layout(model)
    blocks = find_blocks(infer_shapes(model))
    assert len(blocks.names) == R20_BLOCKS  # the matcher still finds every block, untouched
    assert layout_problems(model, blocks) == []
    # runs in ONNX Runtime and stays close to float32 on the held-out photos
    a = report["agreement"]
    assert a["samples"] == 16 and a["cosine"] > 0.9


def test_naive_quantization_puts_qdq_inside_simam(r20, photos):
    """The baseline: ONNX Runtime's defaults quantize SimAM's own ops (what the default avoids)."""
    from simam_deploy.inputs import load_inputs
    from simam_deploy.quantize import _input_spec, quantize_model

    model = load_onnx(r20["decomposed"])
    batches = load_inputs(photos, _input_spec(model), reference="cifar-resnet20").batches
    naive, report = quantize_model(model, batches, keep_simam=False, method="minmax")
    blocks = find_blocks(infer_shapes(model))
    assert layout_problems(naive, blocks), "naive quantization left SimAM alone: the baseline is wrong"
    assert not [k for k in report.kept if k.op_type == "SimAM"]


def test_quantize_external_data(r20, tmp_path, photos, capsys):
    src = tmp_path / "ext.onnx"
    save_onnx(load_onnx(r20["decomposed"]), src, external_data="always")
    assert (tmp_path / "ext.onnx.data").is_file()
    out = tmp_path / "ext-int8.onnx"
    code, _, err = run_cli(
        ["quantize", str(src), "-o", str(out), "--calibrate", str(photos), "--reference", "cifar-resnet20",
         "--samples", "16", "--method", "minmax"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "ext-int8.onnx.data").is_file()  # external in, external out
    assert quantized_layers(load_onnx(out))


def test_bad_input_is_refused_before_any_work(r20, photos, tmp_path, capsys):
    src = str(r20["decomposed"])
    base = ["quantize", src, "--calibrate", str(photos), "--reference", "cifar-resnet20"]
    # the output may not overwrite the input
    code, _, err = run_cli([*base, "-o", src], capsys)
    assert code == 2 and "overwrite" in err
    # more calibration samples than there are
    code, _, err = run_cli([*base, "-o", str(tmp_path / "a.onnx"), "--samples", "1000"], capsys)
    assert code == 2 and "--samples" in err and not (tmp_path / "a.onnx").exists()
    # accuracy-driven mode with nothing held out
    code, _, err = run_cli(
        [*base, "-o", str(tmp_path / "b.onnx"), "--samples", "48", "--target-agreement", "0.99"], capsys
    )
    assert code == 2 and "held out" in err
    code, _, err = run_cli([*base, "-o", str(tmp_path / "c.onnx"), "--target-agreement", "1.5"], capsys)
    assert code == 2 and "--target-agreement" in err
    code, _, err = run_cli(
        [*base, "-o", str(tmp_path / "d.onnx"), "--samples", "16", "--exclude", "nope"], capsys
    )
    assert code == 2 and "nope" in err
    # calibration data of the wrong shape
    bad = tmp_path / "bad.npz"
    np.savez(bad, input=np.zeros((2, 3, 31, 31), np.float32))
    code, _, err = run_cli(["quantize", src, "-o", str(tmp_path / "e.onnx"), "--calibrate", str(bad)], capsys)
    assert code == 2 and "input" in err
    assert not list(tmp_path.glob("*.onnx"))


def test_already_quantized_and_missing_modelopt_are_input_errors(r20, photos, tmp_path, capsys):
    first = tmp_path / "q.onnx"
    base = [
        "--calibrate",
        str(photos),
        "--reference",
        "cifar-resnet20",
        "--samples",
        "16",
        "--method",
        "minmax",
    ]
    assert run_cli(["quantize", str(r20["decomposed"]), "-o", str(first), *base], capsys)[0] == 0
    code, _, err = run_cli(["quantize", str(first), "-o", str(tmp_path / "qq.onnx"), *base], capsys)
    assert code == 2 and "already quantized" in err
    try:
        import modelopt.onnx.quantization  # noqa: F401
    except ImportError:
        code, _, err = run_cli(
            [
                "quantize",
                str(r20["decomposed"]),
                "-o",
                str(tmp_path / "m.onnx"),
                *base,
                "--quantizer",
                "modelopt",
            ],
            capsys,
        )
        assert code == 2 and "ModelOpt" in err and not (tmp_path / "m.onnx").exists()


def test_split_and_agreement_metrics():
    batches = [{"x": np.arange(8, dtype=np.float32).reshape(4, 2)} for _ in range(3)]
    first, rest = split_samples(batches, 6, batch_fixed=False)
    assert [b["x"].shape[0] for b in first] == [4, 2] and [b["x"].shape[0] for b in rest] == [2, 4]
    first, rest = split_samples(batches, 6, batch_fixed=True)  # a fixed batch is never cut
    assert [b["x"].shape[0] for b in first] == [4, 4] and len(rest) == 1
    ref = np.array([[5.0, 0.0, 0.0], [0.1, 0.0, 0.2], [0.0, 4.0, 0.0]])
    q = np.array([[4.0, 0.0, 0.0], [0.3, 0.0, 0.2], [0.0, 0.0, 4.5]])
    a = agreement(q, ref)
    assert a.top1 == pytest.approx(1 / 3) and a.confident_rows == 2 and a.confident_top1 == 0.5
