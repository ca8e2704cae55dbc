"""validate --per-layer: every SimAM block compared in network order, the first divergence named.

Real files from torch's exporters (decomposed, plugin mode, and fused by our fuse), run in a real ONNX
Runtime session; corruptions are edits of one block in the ONNX graph.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from simam_deploy.errors import InputError
from simam_deploy.nn import find_simam_modules
from simam_deploy.validate import validate
from simam_deploy.zoo import build_model
from tests.cli_runner import run_cli

REFERENCE = "cifar-resnet20"
TARGET_BLOCK = "layer2.1.conv2.1"  # the fifth of nine SimAM blocks
TARGET_FOLDER = "/layer2/1/conv2/simam"  # its nodes' name prefix in our exports
KINDS = ("decomposed", "plugin", "fused")


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The seeded zoo ResNet-20 as each file kind (dynamo, opset 18, dynamic batch)."""
    from simam_deploy.export import export_onnx
    from simam_deploy.graph.fuse import fuse_simam

    folder = tmp_path_factory.mktemp("per_layer")
    model, _ = build_model(REFERENCE)
    out = {
        "decomposed": folder / "dec.onnx",
        "plugin": folder / "plugin.onnx",
        "fused": folder / "fused.onnx",
    }
    export_onnx(model, out["decomposed"], opset=18, input_shape=(1, 3, 32, 32), exporter="dynamo")
    export_onnx(model, out["plugin"], opset=18, input_shape=(1, 3, 32, 32), exporter="dynamo", mode="plugin")
    fused, report = fuse_simam(onnx.load(str(out["decomposed"])))
    assert len(report.fused) == 9
    onnx.save(fused, str(out["fused"]))
    return out


# -- corruptions -------------------------------------------------------------------------------------


def _constant(model: onnx.ModelProto, name: str) -> np.ndarray | None:
    for init in model.graph.initializer:
        if init.name == name:
            return numpy_helper.to_array(init)
    for node in model.graph.node:
        if node.op_type == "Constant" and node.output[0] == name:
            return numpy_helper.to_array(node.attribute[0].t)
    return None


def change_lambda(
    src: Path, dst: Path, folder: str, new_lambda: float = 1.0, old_lambda: float = 1e-4
) -> None:
    """Give one SimAM block another lambda: the SimAM node's attribute, or (decomposed) its own copy of the
    lambda constant (exporters share one constant between blocks, so it is not edited in place)."""
    model = onnx.load(str(src))
    nodes = [n for n in model.graph.node if n.name.startswith(folder + "/")]
    assert nodes, f"no node under {folder}"
    done = False
    for node in nodes:
        if node.op_type == "SimAM":
            for attr in node.attribute:
                if attr.name == "e_lambda":
                    attr.f = new_lambda
                    done = True
        if node.op_type != "Add":
            continue
        for i, name in enumerate(node.input):
            value = _constant(model, name)
            if value is not None and value.size == 1 and np.isclose(float(value), old_lambda, rtol=1e-3):
                fresh = numpy_helper.from_array(np.full_like(value, new_lambda), f"{name}_corrupted")
                model.graph.initializer.append(fresh)
                node.input[i] = fresh.name
                done = True
    assert done, f"found no lambda to change in {folder}"
    onnx.save(model, str(dst))


def scale_conv_before(src: Path, dst: Path, folder: str, factor: float = 1.05) -> str:
    """Scale the weights of the convolution that feeds one SimAM block; returns the weight's name."""
    model = onnx.load(str(src))
    first = next(n for n in model.graph.node if n.name.startswith(folder + "/"))
    x = first.input[0]
    conv = next(n for n in model.graph.node if x in n.output)
    assert conv.op_type == "Conv"
    weight = next(i for i in model.graph.initializer if i.name == conv.input[1])
    weight.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(weight) * factor, weight.name))
    onnx.save(model, str(dst))
    return weight.name


# -- the contract ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_clean_file_passes_with_no_divergence(files, kind):
    report = validate(files[kind], REFERENCE, per_layer=True)
    d = report.to_dict()
    assert report.passed
    assert d["first_divergence"] is None and d["divergence"] is None
    model, _ = build_model(REFERENCE)
    assert [layer["module"] for layer in d["layers"]] == [name for name, _ in find_simam_modules(model)]
    assert all(layer["status"] == "ok" and layer["passed"] for layer in d["layers"])
    # every run was compared: six runs (3 seeds x 2 batch sizes) of 1x and 3x16x32x32 elements
    assert d["layers"][0]["output"]["elements"] == 3 * (1 + 3) * 16 * 32 * 32
    assert d["schema"] == "simam-deploy/validate/v1"


@pytest.mark.parametrize("kind", KINDS)
def test_corrupted_simam_block_is_named_first_divergence(files, tmp_path, kind):
    bad = tmp_path / f"{kind}-bad.onnx"
    change_lambda(files[kind], bad, TARGET_FOLDER)
    report = validate(bad, REFERENCE, per_layer=True, seeds=(0,))
    d = report.to_dict()
    assert not report.passed
    assert d["first_divergence"] == TARGET_BLOCK
    assert d["divergence"]["where"] == "simam" and d["divergence"]["after"] == "layer2.0.conv2.1"
    status = {layer["module"]: layer["status"] for layer in d["layers"]}
    index = list(status).index(TARGET_BLOCK)
    assert all(s == "ok" for s in list(status.values())[:index])
    target = d["layers"][index]
    assert target["input"]["passed"] and not target["output"]["passed"]
    assert target["output"]["max_abs"] > 1e-3


@pytest.mark.parametrize("kind", KINDS)
def test_divergence_in_a_convolution_is_not_pinned_on_a_simam(files, tmp_path, kind):
    bad = tmp_path / f"{kind}-conv.onnx"
    scale_conv_before(files[kind], bad, TARGET_FOLDER)
    d = validate(bad, REFERENCE, per_layer=True, seeds=(0,)).to_dict()
    assert d["first_divergence"] is None
    assert d["divergence"]["where"] == "before_simam"
    assert d["divergence"]["module"] == TARGET_BLOCK and d["divergence"]["after"] == "layer2.0.conv2.1"
    assert "not in a SimAM" in d["divergence"]["message"]
    statuses = [layer["status"] for layer in d["layers"]]
    assert statuses[:4] == ["ok"] * 4 and statuses[4] == "input differs"


def test_external_data_file_is_probed(files, tmp_path):
    model = onnx.load(str(files["decomposed"]))
    out = tmp_path / "ext" / "model.onnx"
    out.parent.mkdir()
    onnx.save(model, str(out), save_as_external_data=True, location="weights.bin", size_threshold=0)
    assert (out.parent / "weights.bin").is_file()
    d = validate(out, REFERENCE, per_layer=True, seeds=(0,)).to_dict()
    assert d["passed"] and d["first_divergence"] is None and len(d["layers"]) == 9


def test_external_data_outside_the_model_folder_is_refused(files, tmp_path):
    model = onnx.load(str(files["decomposed"]))
    (tmp_path / "elsewhere").mkdir()
    inner = tmp_path / "elsewhere" / "m.onnx"
    onnx.save(model, str(inner), save_as_external_data=True, location="w.bin", size_threshold=0)
    escaped = onnx.load(str(inner), load_external_data=False)
    for init in escaped.graph.initializer:
        for entry in init.external_data:
            if entry.key == "location":
                entry.value = "../elsewhere/w.bin"
    (tmp_path / "model").mkdir()
    target = tmp_path / "model" / "m.onnx"
    onnx.save(escaped, str(target))
    with pytest.raises(InputError, match="climbs out of the model's folder"):
        validate(target, REFERENCE, per_layer=True, seeds=(0,))


def test_cli_per_layer_json_table_and_plot(files, tmp_path, capsys):
    bad = tmp_path / "bad.onnx"
    change_lambda(files["fused"], bad, TARGET_FOLDER)
    plot = tmp_path / "layers.png"
    report = tmp_path / "r.json"
    args = ["validate", str(bad), "--reference", REFERENCE, "--per-layer", "--seeds", "0"]
    code, out, _ = run_cli([*args, "--plot", str(plot), "--json", str(report)], capsys)
    assert code == 1
    assert TARGET_BLOCK in out and "diverges" in out
    data = json.loads(report.read_text())
    assert data["first_divergence"] == TARGET_BLOCK and len(data["layers"]) == 9
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and plot.stat().st_size > 10_000
    code, out, _ = run_cli(["validate", str(files["fused"]), "--reference", REFERENCE, "--per-layer"], capsys)
    assert code == 0 and "every SimAM block matches" in out


def test_model_without_simam_is_an_input_error(tmp_path):
    import torch

    from simam_deploy.export import export_onnx

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU()).eval()
    path = tmp_path / "plain.onnx"
    export_onnx(net, path, opset=17, input_shape=(1, 3, 8, 8), exporter="torchscript")
    from simam_deploy import per_layer

    with pytest.raises(InputError, match="found no SimAM block"):
        per_layer.blocks_for(onnx.load(str(path)), net)


def test_plot_refuses_to_overwrite_the_target(files):
    with pytest.raises(InputError):
        validate(files["decomposed"], REFERENCE, per_layer=True, plot=files["decomposed"])


def _stats(ok: bool, nan: bool = False):
    from simam_deploy.parity import compare_arrays

    want = np.zeros((2, 3), np.float32)
    got = want.copy()
    if not ok:
        got[0, 0] = 1.0
    if nan:
        got[1, 1] = np.nan
    return compare_arrays(got, want, 1e-4, 1e-3)


def test_all_blocks_match_but_outputs_differ_points_after_the_last_simam():
    from simam_deploy.per_layer import LayerResult, PerLayerReport, locate_divergence

    layers = [LayerResult(i, f"b{i}", f"n{i}", "node", _stats(True), _stats(True)) for i in range(3)]
    report = PerLayerReport(layers=layers, outputs_passed=False)
    locate_divergence(report)
    assert report.first_divergence is None
    assert report.divergence["where"] == "after_last_simam" and report.divergence["after"] == "b2"


def test_merging_runs_keeps_the_worst_and_adds_counts():
    from simam_deploy.per_layer import merge_stats

    merged = merge_stats(merge_stats(None, _stats(True)), _stats(False, nan=True))
    assert not merged.passed and merged.max_abs == 1.0
    assert merged.elements == 12 and merged.nan_target == 1 and merged.top1_agreement is None
