"""The command line as a user meets it: exit codes 0/1/2, messages naming the fix, JSON for CI."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from simam_deploy.cli.main import main
from tests import cli_runner


def run_cli(args: list[str], capsys) -> tuple[int, str]:
    """(exit code, stdout and stderr together): the tests here look for a message on either."""
    code, out, err = cli_runner.run_cli(args, capsys)
    return code, out + err


@pytest.fixture(scope="module")
def r20_onnx(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "r20.onnx"
    with pytest.raises(SystemExit) as exc:
        main(["export", "cifar-resnet20", "-o", str(out), "--opset", "17", "--dynamic", "all"])
    assert exc.value.code == 0 and out.is_file()
    return out


def test_help_lists_commands_and_exit_codes(capsys):
    code, out = run_cli(["--help"], capsys)
    assert code == 0
    for cmd in ("models", "export", "validate", "fuse", "unfuse", "build", "bench"):
        assert cmd in out
    assert "Exit codes" in out


def test_models_json(capsys):
    code, out, _ = cli_runner.run_cli(["models", "--json", "-"], capsys)  # stdout holds only the JSON
    assert code == 0
    names = [m["name"] for m in json.loads(out)["models"]]
    assert names == ["cifar-resnet20", "cifar-resnet56", "resnet18", "resnet50", "mobilenetv2"]


def test_export_then_validate_passes_with_json(r20_onnx, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    code, out = run_cli(
        ["validate", str(r20_onnx), "--reference", "cifar-resnet20", "--json", str(report_path)], capsys
    )
    assert code == 0, out
    report = json.loads(report_path.read_text())
    assert report["schema"] == "simam-deploy/validate/v1" and report["passed"] is True
    shapes = {tuple(r["input_shapes"]["input"]) for r in report["runs"]}
    assert {(1, 3, 32, 32), (3, 3, 32, 32), (1, 3, 40, 24)} <= shapes  # dynamic batch and H/W exercised
    assert report["summary"]["min_top1_agreement"] == 1.0


def test_validate_against_wrong_weights_exits_1(r20_onnx, capsys):
    # Same weights, but a SimAM with another lambda: parity must fail with exit code 1.
    ref = "tests.helpers_models:r20_other_lambda"
    code, out = run_cli(["validate", str(r20_onnx), "--reference", ref, "--json", "-"], capsys)
    assert code == 2 and "--input-shape" in out  # dynamic H/W and not a zoo model: say which shape to use
    code, out, _ = cli_runner.run_cli(
        ["validate", str(r20_onnx), "--reference", ref, "--input-shape", "2x3x32x32", "--json", "-"], capsys
    )
    assert code == 1
    assert json.loads(out)["passed"] is False


def test_validate_with_npz_inputs(r20_onnx, tmp_path, capsys):
    npz = tmp_path / "batch.npz"
    np.savez(npz, input=np.random.default_rng(1).standard_normal((5, 3, 32, 32)).astype(np.float32))
    code, out = run_cli(
        ["validate", str(r20_onnx), "--reference", "cifar-resnet20", "--inputs", str(npz)], capsys
    )
    assert code == 0, out
    assert "5x3x32x32" in out


def test_unknown_model_exit_2_lists_known(tmp_path, capsys):
    code, out = run_cli(["export", "resnet9000", "-o", str(tmp_path / "x.onnx")], capsys)
    assert code == 2 and "unknown model 'resnet9000'" in out and "cifar-resnet20" in out
    assert not (tmp_path / "x.onnx").exists()


def test_wrong_checkpoint_exit_2_names_keys(official_checkpoint, tmp_path, capsys):
    code, out = run_cli(
        ["export", "resnet18", "--checkpoint", str(official_checkpoint), "-o", str(tmp_path / "x.onnx")],
        capsys,
    )
    assert code == 2 and "does not fit" in out and "conv1.weight" in out


@pytest.mark.parametrize("content", [b"", b"this is not onnx", b"\x08\x07\x12\x03abc\xff\xff"])
def test_corrupt_or_non_onnx_file_exit_2(tmp_path, capsys, content):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(content)
    code, out = run_cli(["validate", str(bad), "--reference", "cifar-resnet20"], capsys)
    assert code == 2 and str(bad) in out


def test_unknown_target_type_exit_2(tmp_path, capsys):
    f = tmp_path / "model.tflite"
    f.write_bytes(b"x")
    code, out = run_cli(["validate", str(f), "--reference", "cifar-resnet20"], capsys)
    assert code == 2 and "unknown file type" in out


def test_external_data_outside_the_model_folder_refused(tmp_path, capsys):
    weight = numpy_helper.from_array(np.ones(1024, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1024])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1024])],
        [weight],
    )
    model = helper.make_model(graph)
    path = tmp_path / "ext.onnx"
    onnx.save(
        model,
        path,
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        size_threshold=0,
        location="ext.bin",
    )
    # a model file must not make us read files outside its folder
    escaped = tmp_path / "inner"
    escaped.mkdir()
    (escaped / "ext.onnx").write_bytes(path.read_bytes().replace(b"ext.bin", b"../e.bn"))  # same length
    (tmp_path / "e.bn").write_bytes((tmp_path / "ext.bin").read_bytes())
    code, out = run_cli(["validate", str(escaped / "ext.onnx"), "--reference", "cifar-resnet20"], capsys)
    assert code == 2 and "climbs out of the model's folder" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # any input rank is accepted (speech features are [B,T,F]); the network itself refuses this one
        (["--input-shape", "1x3x32"], "fails on an input of shape 1x3x32"),
        (["--opset", "22"], "out of range"),
        (["--opset", "12"], "out of range"),
        (["--input-shape", "1x3x1x1"], "1x1 plane"),
    ],
)
def test_export_bad_options_exit_2(tmp_path, capsys, args, message):
    out_path = tmp_path / "x.onnx"
    code, out = run_cli(["export", "cifar-resnet20", "-o", str(out_path), *args], capsys)
    assert code == 2 and message in out
    assert list(tmp_path.iterdir()) == []


def test_output_dir_missing_and_output_equal_input(official_checkpoint, tmp_path, capsys):
    code, out = run_cli(["export", "cifar-resnet20", "-o", str(tmp_path / "no" / "x.onnx")], capsys)
    assert code == 2 and "does not exist" in out
    before = official_checkpoint.read_bytes()[:64]
    code, out = run_cli(
        [
            "export",
            "cifar-resnet20",
            "--checkpoint",
            str(official_checkpoint),
            "-o",
            str(official_checkpoint),
        ],
        capsys,
    )
    assert code == 2 and "same file as input" in out
    assert official_checkpoint.read_bytes()[:64] == before


def test_bad_tolerance_exit_2(r20_onnx, capsys):
    code, out = run_cli(["validate", str(r20_onnx), "--reference", "cifar-resnet20", "--atol", "-1"], capsys)
    assert code == 2 and "atol" in out
