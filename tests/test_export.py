from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

from simam_deploy.backends.onnxruntime.runner import OnnxRuntimeRunner
from simam_deploy.errors import InputError
from simam_deploy.export import export_onnx, parse_shape, resolve_exporter
from simam_deploy.nn import SimAM
from simam_deploy.zoo import build_model

STANDARD_DOMAINS = {"", "ai.onnx"}


def _export(tmp_path: Path, name: str, **kw) -> tuple[Path, object]:
    model, _ = build_model(name)
    out = tmp_path / f"{name}.onnx"
    return out, export_onnx(model, out, **kw)


@pytest.mark.parametrize(
    ("opset", "exporter", "dynamic"),
    [(13, "torchscript", "batch"), (17, "torchscript", "all"), (18, "dynamo", "all"), (21, "dynamo", "none")],
)
def test_cifar_export_opsets_and_exporters(tmp_path, opset, exporter, dynamic):
    out, report = _export(
        tmp_path,
        "cifar-resnet20",
        opset=opset,
        exporter=exporter,
        dynamic=dynamic,
        input_shape=(2, 3, 32, 32),
    )
    proto = onnx.load(out)
    onnx.checker.check_model(proto, full_check=True)
    assert report.exporter == exporter and len(report.simam_modules) == 9
    assert {o.domain for o in proto.opset_import} <= STANDARD_DOMAINS
    assert all(n.domain in STANDARD_DOMAINS for n in proto.graph.node)
    assert next(o.version for o in proto.opset_import if o.domain in STANDARD_DOMAINS) == opset
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    symbolic = [bool(d.dim_param) for d in dims]
    assert (
        symbolic
        == {"batch": [True, False, False, False], "all": [True, False, True, True], "none": [False] * 4}[
            dynamic
        ]
    )
    sigmoids = [n.name for n in proto.graph.node if n.op_type == "Sigmoid"]
    assert len(sigmoids) == 9
    assert "/layer1/0/conv2/simam/Sigmoid" in sigmoids and "/layer3/2/conv2/simam/Sigmoid" in sigmoids


@pytest.mark.parametrize(
    ("name", "shape"),
    [
        ("cifar-resnet56", (1, 3, 32, 32)),
        ("resnet18", (1, 3, 64, 64)),
        ("resnet50", (1, 3, 64, 64)),
        ("mobilenetv2", (1, 3, 64, 64)),
    ],
)
def test_every_zoo_model_exports_and_matches_torch_in_onnxruntime(tmp_path, name, shape):
    model, _ = build_model(name)
    out = tmp_path / "m.onnx"
    report = export_onnx(model, out, opset=18, input_shape=shape, dynamic="batch")
    assert (
        len(report.simam_modules)
        == {"cifar-resnet56": 27, "resnet18": 8, "resnet50": 16, "mobilenetv2": 17}[name]
    )
    x = np.random.default_rng(0).standard_normal((2, *shape[1:])).astype(np.float32)
    got = OnnxRuntimeRunner(out).infer({"input": x})["output"]
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)


def test_official_checkpoint_top1_and_logits_match(official_r20_onnx, official_checkpoint):
    model, _ = build_model("cifar-resnet20", official_checkpoint)
    runner = OnnxRuntimeRunner(official_r20_onnx)
    gen = torch.Generator().manual_seed(7)
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
    std = torch.tensor([0.2023, 0.1994, 0.2010]).view(1, 3, 1, 1)
    worst = 0.0
    for size in (32, 40):  # the export shape, and another H/W through the dynamic axes
        images = (torch.rand(64, 3, size, size, generator=gen) - mean) / std
        with torch.no_grad():
            want = model(images).numpy()
        got = runner.infer({"input": images.numpy()})["output"]
        assert (got.argmax(1) == want.argmax(1)).all()
        worst = max(worst, float(np.abs(got - want).max()))
    assert worst < 1e-3


def test_one_by_one_plane_is_refused_with_layer_name(tmp_path):
    model, _ = build_model("resnet18")
    out = tmp_path / "r18.onnx"
    with pytest.raises(InputError) as err:
        export_onnx(model, out, input_shape=(1, 3, 32, 32))  # layer4 sees 1x1
    assert "layer4.0.conv2.1" in str(err.value) and "H*W-1 = 0" in str(err.value)
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["1x3x32", "1x3x32x32x2", "axbxc", "1x0x32x32", ""])
def test_non_4d_or_bad_shapes_are_refused(text):
    with pytest.raises(InputError):
        parse_shape(text)


@pytest.mark.parametrize("opset", [12, 22, 7])
def test_opset_out_of_range(opset):
    with pytest.raises(InputError, match="out of range"):
        resolve_exporter("auto", opset)


def test_exporter_opset_combination_refused():
    with pytest.raises(InputError, match="cannot write opset 21"):
        resolve_exporter("torchscript", 21)
    assert resolve_exporter("auto", 17) == "torchscript" and resolve_exporter("auto", 18) == "dynamo"


def test_missing_output_directory_and_output_equal_to_input(tmp_path):
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), SimAM())
    with pytest.raises(InputError, match="does not exist"):
        export_onnx(model, tmp_path / "nope" / "m.onnx", input_shape=(1, 3, 8, 8))
    ckpt = tmp_path / "weights.pt"
    ckpt.write_bytes(b"precious")
    with pytest.raises(InputError, match="same file as input"):
        export_onnx(model, ckpt, input_shape=(1, 3, 8, 8), inputs_to_protect=(ckpt,))
    assert ckpt.read_bytes() == b"precious"


def test_crash_while_writing_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"old")

    def save_half_then_crash(proto, path, *args, **kwargs):
        Path(path).write_bytes(proto.SerializeToString()[:100])
        raise KeyboardInterrupt  # e.g. Ctrl-C in the middle of the write

    monkeypatch.setattr(onnx, "save", save_half_then_crash)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 3, 3, padding=1), SimAM())
    with pytest.raises(KeyboardInterrupt):
        export_onnx(model, out, input_shape=(1, 3, 8, 8), exporter="torchscript", opset=17)
    assert out.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]
