"""Networks whose input is not an image (issue 23): any input rank and any number of inputs for
export, validate and bench; only the tensors SimAM sees are 4-D. The speaker-verification style
test networks live in tests/helpers_models.py; the two-input file is written by torch's own
exporter (export takes single-input networks)."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch

from tests.helpers_models import speaker_frame_weights
from tests.test_cli_contract_support import run

SPEAKER = "tests.helpers_models:speaker_simam"
TWO_INPUTS = "tests.helpers_models:speaker_frame_weights"
FAST = ["--iters", "2", "--warmup", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def speaker_onnx(tmp_path_factory) -> Path:
    from tests import cli_runner

    out = tmp_path_factory.mktemp("speaker") / "speaker.onnx"
    args = [
        "export",
        SPEAKER,
        "--input-shape",
        "2x200x80",
        "--opset",
        "17",
        "--dynamic",
        "all",
        "-o",
        str(out),
    ]
    assert cli_runner.exit_code(*args) == 0
    return out


@pytest.fixture(scope="module")
def two_inputs_onnx(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("two") / "two.onnx"
    example = (torch.randn(2, 200, 80), torch.rand(2, 200))
    torch.onnx.export(
        speaker_frame_weights().eval(),
        example,
        str(out),
        dynamo=False,
        opset_version=17,
        input_names=["feats", "weights"],
        output_names=["embedding"],
        dynamic_axes={"feats": {0: "batch", 1: "frames"}, "weights": {0: "batch", 1: "frames"}},
    )
    return out


def test_export_takes_rank_3_features_and_finds_simam_inside(speaker_onnx, tmp_path, capsys):
    dims = [
        d.dim_param or d.dim_value for d in onnx.load(speaker_onnx).graph.input[0].type.tensor_type.shape.dim
    ]
    assert dims[2] == 80 and len(dims) == 3  # batch and frames dynamic ('--dynamic all'), features fixed
    code, out, err = run(
        ["export", SPEAKER, "--input-shape", "1x120x80", "--opset", "17", "--mode", "plugin",
         "-o", tmp_path / "p.onnx", "--json", "-"],
        capsys,
    )  # fmt: skip
    assert code == 0, out + err
    report = json.loads(out)
    assert report["simam_nodes"] == 2
    assert [m["input_shape"] for m in report["simam_modules"]] == [[1, 8, 120, 80], [1, 8, 60, 40]]


def test_validate_features_any_rank(speaker_onnx, capsys):
    code, out, err = run(
        ["validate", speaker_onnx, "--reference", SPEAKER, "--input-shape", "2x200x80", "--seeds", "0",
         "--json", "-"],
        capsys,
    )  # fmt: skip
    assert code == 0, out + err
    shapes = [run_["input_shapes"]["input"] for run_ in json.loads(out)["runs"]]
    assert shapes == [[2, 200, 80], [4, 200, 80]]  # the given batch, and another (dynamic batch)


def test_bench_features_any_rank(speaker_onnx, capsys):
    code, out, err = run(["bench", speaker_onnx, "--input-shape", "1x100x80", *FAST, "--json", "-"], capsys)
    assert code == 0, out + err
    assert json.loads(out)["input_shape"] == [1, 100, 80]
    code, out, err = run(
        ["bench", SPEAKER, "--input-shape", "1x100x80", "--compare", "eager,fused", *FAST, "--json", "-"],
        capsys,
    )
    assert code == 0, out + err
    assert {r["backend"] for r in json.loads(out)["results"]} == {"eager", "fused"}


def test_validate_and_bench_several_inputs(two_inputs_onnx, capsys):
    shapes = "feats=2x150x80,weights=2x150"
    code, out, err = run(
        ["validate", two_inputs_onnx, "--reference", TWO_INPUTS, "--input-shape", shapes, "--seeds", "0,1",
         "--json", "-"],
        capsys,
    )  # fmt: skip
    assert code == 0, out + err
    runs = json.loads(out)["runs"]
    assert runs[0]["input_shapes"] == {"feats": [2, 150, 80], "weights": [2, 150]} and len(runs) == 2
    code, out, err = run(["bench", two_inputs_onnx, "--input-shape", shapes, *FAST, "--json", "-"], capsys)
    assert code == 0, out + err
    # one unnamed shape cannot fit two inputs: refused, naming them
    code, out, err = run(
        ["validate", two_inputs_onnx, "--reference", TWO_INPUTS, "--input-shape", "2x150x80"], capsys
    )
    assert code == 2 and "feats=" in err and "weights=" in err, out + err
    code, out, err = run(
        [
            "validate",
            two_inputs_onnx,
            "--reference",
            TWO_INPUTS,
            "--input-shape",
            "feats=2x150x80,mask=2x150",
        ],
        capsys,
    )
    assert code == 2 and "mask" in err, out + err


@pytest.mark.parametrize("mode", ["decomposed", "plugin"])
def test_export_several_inputs_then_validate(mode, tmp_path, capsys):
    out = tmp_path / f"two-{mode}.onnx"
    code, _, err = run(
        ["export", TWO_INPUTS, "--input-shape", "feats=2x150x80,weights=2x150", "--opset", "17",
         "--dynamic", "all", "--mode", mode, "-o", out],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    graph = onnx.load(out).graph
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in graph.input}
    assert set(dims) == {"feats", "weights"} and dims["feats"][2] == 80
    assert all(isinstance(d, str) for d in (*dims["feats"][:2], *dims["weights"]))  # batch and frames dynamic
    assert sum(n.op_type == "SimAM" for n in graph.node) == (2 if mode == "plugin" else 0)
    code, out_text, err = run(
        ["validate", out, "--reference", TWO_INPUTS, "--input-shape", "feats=3x90x80,weights=3x90",
         "--seeds", "0", "--json", "-"],
        capsys,
    )  # fmt: skip
    assert code == 0, out_text + err
    assert json.loads(out_text)["runs"][0]["input_shapes"] == {"feats": [3, 90, 80], "weights": [3, 90]}
