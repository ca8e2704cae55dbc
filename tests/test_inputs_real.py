"""validate on a folder of real photos: the authors' checkpoint (when ../shared has it) and seeded weights,
top-1 agreement reported, inputs/outputs saved for trtexec/Polygraphy and loaded back identically."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simam_deploy import inputs as inp
from simam_deploy.backends.torch.runner import TorchRunner
from simam_deploy.validate import validate
from simam_deploy.zoo import build_model
from tests.cli_runner import run_cli
from tests.real_images import make_photo_folder

PHOTOS = 48


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_photo_folder(tmp_path_factory.mktemp("photos"), count=PHOTOS, crop=96)


@pytest.fixture(scope="module")
def seeded_r20(tmp_path_factory):
    from simam_deploy.export import export_onnx

    model, _ = build_model("cifar-resnet20")
    out = tmp_path_factory.mktemp("seeded") / "r20.onnx"
    export_onnx(model, out, opset=18, input_shape=(1, 3, 32, 32), exporter="dynamo")
    return out


def test_authors_checkpoint_on_real_photos(official_r20_onnx, official_checkpoint, photos, tmp_path, capsys):
    report = tmp_path / "report.json"
    args = [
        "validate", str(official_r20_onnx), "--reference", "cifar-resnet20",
        "--checkpoint", str(official_checkpoint), "--inputs", str(photos), "--per-layer",
        "--json", str(report),
    ]  # fmt: skip
    code, out, _ = run_cli(args, capsys)
    data = json.loads(report.read_text())
    assert code == 0, out
    used = data["inputs"]
    assert used["kind"] == "images" and used["samples"] == PHOTOS
    assert used["preprocess"]["mean"] == list(inp.CIFAR_MEAN)
    assert used["top1_agreement"] is not None and used["top1_agreement"] >= 0.98
    assert "top-1 agreement" in out
    assert data["first_divergence"] is None and len(data["layers"]) == 9


def test_trained_network_is_confident_on_real_photos_but_not_on_noise(official_checkpoint, photos):
    """Why real inputs matter: the trained model's logits spread differently on photos than on N(0,1)."""
    model, _ = build_model("cifar-resnet20", official_checkpoint)
    runner = TorchRunner(model)
    x = inp.load_inputs(
        photos, [("input", ("b", 3, 32, 32), np.dtype(np.float32))], reference="cifar-resnet20"
    )
    real = runner.infer(x.batches[0])["output"]
    noise = runner.infer({"input": np.random.default_rng(0).standard_normal((32, 3, 32, 32), np.float32)})
    predicted_real = len(set(np.argmax(real, 1).tolist()))
    predicted_noise = len(set(np.argmax(noise["output"], 1).tolist()))
    assert predicted_real > predicted_noise  # noise collapses onto a few classes


def test_saved_inputs_and_outputs_load_back_identically(seeded_r20, photos, tmp_path, capsys):
    io = tmp_path / "io"
    args = ["validate", str(seeded_r20), "--reference", "cifar-resnet20", "--inputs", str(photos)]
    code, out, _ = run_cli([*args, "--save-inputs", str(io), "--save-outputs", str(io)], capsys)
    assert code == 0, out
    raw_in = inp.load_tensors(io, "inputs", "raw")
    json_in = inp.load_tensors(io, "inputs", "polygraphy")
    assert raw_in["input"].shape == (PHOTOS, 3, 32, 32)
    assert raw_in["input"].tobytes() == json_in["input"].tobytes()
    spec = [("input", ("b", 3, 32, 32), np.dtype(np.float32))]
    fresh = inp.concat_batches(inp.load_inputs(photos, spec, reference="cifar-resnet20").batches)
    assert fresh["input"].tobytes() == raw_in["input"].tobytes()
    raw_out = inp.load_tensors(io, "outputs", "raw")
    assert raw_out["output"].tobytes() == inp.load_tensors(io, "outputs", "polygraphy")["output"].tobytes()
    model, _ = build_model("cifar-resnet20")
    again = TorchRunner(model).infer({"input": raw_in["input"][:32]})["output"]
    np.testing.assert_allclose(raw_out["output"][:32], again, rtol=0, atol=1e-6)

    # the saved folder is itself a valid --inputs, and gives the same comparison
    report = tmp_path / "r.json"
    code, _, _ = run_cli([*args[:4], "--inputs", str(io), "--json", str(report)], capsys)
    assert code == 0
    assert json.loads(report.read_text())["inputs"]["kind"] == "saved"


def test_validate_refuses_a_used_save_folder_before_running(seeded_r20, photos, tmp_path):
    from simam_deploy.errors import InputError

    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("mine")
    with pytest.raises(InputError, match="not an empty folder"):
        validate(seeded_r20, "cifar-resnet20", inputs=photos, save_inputs=taken)
    assert [p.name for p in taken.iterdir()] == ["x"]


def test_callable_inputs_through_validate(seeded_r20):
    report = validate(seeded_r20, "cifar-resnet20", inputs="tests.test_inputs:iter_arrays")
    data = report.to_dict()
    assert report.passed and data["inputs"]["kind"] == "callable" and len(data["runs"]) == 3
