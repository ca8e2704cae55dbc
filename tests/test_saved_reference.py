"""validate --reference-outputs: parity against outputs saved on the host (our --save-outputs folder and
Polygraphy's JSON, also as real Polygraphy writes it), the same verdict, report and exit codes as a live
PyTorch reference, and exit 2 for saved files that do not belong together or to the target.

The torch-free half (the same commands where ``import torch`` fails) is tests/test_torch_free.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from simam_deploy import inputs as inp
from simam_deploy.errors import InputError
from simam_deploy.saved_reference import load_reference_outputs, validate_saved
from tests.cli_runner import run_cli


def _perturbed_copy(io, tmp_path, scale: float = 1.01):
    """A copy of the saved folder whose raw outputs are off by a factor (the reference is then wrong)."""
    bad = tmp_path / "bad"
    shutil.copytree(io, bad)
    manifest = json.loads((bad / "outputs.manifest.json").read_text())
    entry = manifest["tensors"][0]
    data = np.fromfile(bad / entry["file"], dtype=entry["dtype"]) * np.float32(scale)
    data.astype(entry["dtype"]).tofile(bad / entry["file"])
    return bad


def test_saved_folder_passes_with_the_report_of_a_live_reference(saved_r20, tmp_path, capsys):
    onnx_path, io = saved_r20
    report = tmp_path / "report.json"
    code, out, _ = run_cli(
        ["validate", str(onnx_path), "--reference-outputs", str(io), "--json", str(report)], capsys
    )
    assert code == 0, out
    data = json.loads(report.read_text())
    assert data["schema"] == "simam-deploy/validate/v1" and data["passed"] is True
    assert data["target_backend"] == "onnxruntime"
    assert data["reference"].startswith(f"saved outputs {io}")
    assert data["reference_outputs"] == {"path": str(io), "format": "simam-deploy", "sets": 1, "runner": None}
    assert data["inputs"]["kind"] == "saved" and data["inputs"]["samples"] == 2
    assert data["summary"]["tolerance_used"] <= 1.0
    assert data["runs"][0]["outputs"]["output"]["elements"] == 200
    assert "PASS" in out


def test_perturbed_saved_outputs_fail_with_exit_1(saved_r20, tmp_path, capsys):
    onnx_path, io = saved_r20
    bad = _perturbed_copy(io, tmp_path)
    args = ["validate", str(onnx_path), "--reference-outputs", str(bad), "--json", "-"]
    code, out, _ = run_cli(args, capsys)
    assert code == 1
    data = json.loads(out)
    assert data["passed"] is False and data["summary"]["tolerance_used"] > 1.0


def test_polygraphy_json_pair_from_the_saved_folder(saved_r20, tmp_path, capsys):
    """The folder's inputs.json/outputs.json are Polygraphy's format: the same verdict from them."""
    onnx_path, io = saved_r20
    args = ["validate", str(onnx_path), "--reference-outputs", str(io / "outputs.json")]
    code, _, err = run_cli(args, capsys)
    assert code == 2 and "--inputs" in err  # outputs alone: which inputs is not guessed
    code, out, _ = run_cli([*args, "--load-inputs", str(io / "inputs.json"), "--json", "-"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["reference_outputs"]["format"] == "polygraphy"
    assert data["reference_outputs"]["runner"] == "pytorch"
    assert data["inputs"]["kind"] == "polygraphy"


def test_real_polygraphy_run_outputs_are_a_reference(saved_r20, tmp_path, capsys):
    """What `polygraphy run --onnxrt --save-inputs --save-outputs` writes, several iterations included."""
    pytest.importorskip("polygraphy", reason="polygraphy is not installed (pip install 'simam-deploy[dev]')")
    polygraphy = Path(sys.executable).with_name("polygraphy")  # its console script, beside this Python
    if not polygraphy.is_file():
        pytest.skip(f"the polygraphy command is not installed beside {sys.executable}")
    onnx_path, _ = saved_r20
    saved_in, saved_out = tmp_path / "in.json", tmp_path / "out.json"
    cmd = [
        str(polygraphy), "run", str(onnx_path), "--onnxrt",
        "--input-shapes", "input:[2,3,32,32]", "--iterations", "2",
        "--save-inputs", str(saved_in), "--save-outputs", str(saved_out),
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    args = ["validate", str(onnx_path), "--reference-outputs", str(saved_out), "--inputs", str(saved_in)]
    code, out, _ = run_cli([*args, "--json", "-"], capsys)
    assert code == 0
    data = json.loads(out)
    assert data["reference_outputs"]["runner"].startswith("onnxrt")
    assert len(data["runs"]) == 2 and data["inputs"]["samples"] == 4
    assert data["summary"]["max_abs"] == 0.0  # the same ONNX Runtime on the same inputs


def _polygraphy_pair(io, tmp_path, *, feeds=1, outputs=None):
    tmp_path.mkdir(exist_ok=True)
    feed = inp.load_tensors(io, "inputs")
    out = inp.load_tensors(io, "outputs") if outputs is None else outputs
    (tmp_path / "in.json").write_text(json.dumps(inp.polygraphy_inputs([feed] * feeds)))
    (tmp_path / "out.json").write_text(json.dumps(inp.polygraphy_outputs([out], runner="host")))
    return tmp_path / "in.json", tmp_path / "out.json"


def test_counts_names_and_shapes_that_do_not_belong_together_exit_2(saved_r20, tmp_path):
    onnx_path, io = saved_r20
    feeds, outs = _polygraphy_pair(io, tmp_path / "a", feeds=2)
    with pytest.raises(InputError, match=r"holds 2 input set\(s\) but .* holds 1 output set"):
        validate_saved(onnx_path, outs, inputs=feeds)

    renamed = {"logits": inp.load_tensors(io, "outputs")["output"]}
    feeds, outs = _polygraphy_pair(io, tmp_path / "b", outputs=renamed)
    with pytest.raises(InputError, match=r"outputs \['logits'\]; the target's outputs are \['output'\]"):
        validate_saved(onnx_path, outs, inputs=feeds)

    half = {"output": inp.load_tensors(io, "outputs")["output"][:, :50]}
    feeds, outs = _polygraphy_pair(io, tmp_path / "c", outputs=half)
    with pytest.raises(InputError, match=r"output 'output': the target gives shape \[2, 100\].*\[2, 50\]"):
        validate_saved(onnx_path, outs, inputs=feeds)


def test_several_runners_and_foreign_files_are_refused(saved_r20, tmp_path):
    _, io = saved_r20
    two = inp.polygraphy_outputs([inp.load_tensors(io, "outputs")], runner="a")
    two["lst"].append(["b", two["lst"][0][1]])
    (tmp_path / "two.json").write_text(json.dumps(two))
    with pytest.raises(InputError, match=r"2 runners \(a, b\)"):
        load_reference_outputs(tmp_path / "two.json")
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="not Polygraphy RunResults"):
        load_reference_outputs(tmp_path / "list.json")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no outputs\.manifest\.json"):
        load_reference_outputs(tmp_path / "empty")
    with pytest.raises(InputError, match="does not exist"):
        load_reference_outputs(tmp_path / "absent.json")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--reference", "cifar-resnet20"], "--reference cannot be combined with --reference-outputs"),
        (["--checkpoint", "x.pth"], "--checkpoint cannot be combined"),
        (["--per-layer"], "--per-layer cannot be combined"),
        (["--seeds", "4"], "--seeds cannot be combined"),
        (["--save-outputs", "elsewhere"], "--save-outputs cannot be combined"),
    ],
)
def test_options_that_need_pytorch_are_refused_with_saved_outputs(saved_r20, extra, message, capsys):
    onnx_path, io = saved_r20
    code, _, err = run_cli(["validate", str(onnx_path), "--reference-outputs", str(io), *extra], capsys)
    assert code == 2 and message in err


def test_no_reference_at_all_is_a_usage_error(saved_r20, capsys):
    onnx_path, _ = saved_r20
    code, _, err = run_cli(["validate", str(onnx_path)], capsys)
    assert code == 2 and "--reference MODEL" in err and "--reference-outputs" in err


def test_the_json_report_never_overwrites_the_saved_outputs(saved_r20, tmp_path, capsys):
    onnx_path, io = saved_r20
    feeds, outs = _polygraphy_pair(io, tmp_path)
    before = outs.read_bytes()
    args = ["validate", str(onnx_path), "--reference-outputs", str(outs), "--inputs", str(feeds)]
    code, _, _ = run_cli([*args, "--json", str(outs)], capsys)
    assert code == 2 and outs.read_bytes() == before


def test_image_inputs_are_refused_with_saved_outputs(saved_r20, tmp_path):
    from tests.real_images import make_photo_folder

    onnx_path, io = saved_r20
    photos = make_photo_folder(tmp_path / "photos", count=2, crop=32)
    with pytest.raises(InputError, match="not a file of saved tensors"):
        validate_saved(onnx_path, io, inputs=photos)


def test_a_fixed_batch_target_runs_a_saved_set_batch_by_batch(saved_r20, tmp_path):
    """Saved sets hold every batch concatenated; a fixed-batch file takes them a batch at a time."""
    onnx_path, io = saved_r20
    proto = onnx.load(onnx_path)
    for value in (*proto.graph.input, *proto.graph.output):
        value.type.tensor_type.shape.dim[0].dim_value = 1
    fixed = tmp_path / "fixed.onnx"
    onnx.save(proto, fixed)
    report = validate_saved(fixed, io)
    assert report.passed and [r.input_shapes["input"][0] for r in report.runs] == [1, 1]
