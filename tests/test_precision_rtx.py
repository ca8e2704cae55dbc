"""fp16/bf16 engines from the real TensorRT for RTX builder (strongly typed, builds without a GPU):
`build --fp16/--bf16` converts the ONNX file on the way and the report states the precision that is
in the network. Nothing here runs an engine (that needs a GPU)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from simam_deploy.backends import tensorrt as simam_trt
from simam_deploy.errors import InputError
from simam_deploy.precision import convert_file
from tests.cli_runner import run_cli
from tests.test_tensorrt_rtx import HAVE_RTX, PLUGIN, WHY_NO_PLUGIN

NODES = {"cifar-resnet20": 9, "resnet50": 16}
SHAPES = {"cifar-resnet20": (1, 3, 32, 32), "resnet50": (1, 3, 224, 224)}

needs_rtx = pytest.mark.skipif(not HAVE_RTX, reason="TensorRT for RTX wheels not installed")


def _mode(mode: str):
    marks = [needs_rtx]
    if mode == "plugin":
        marks.append(pytest.mark.skipif(PLUGIN is None, reason=WHY_NO_PLUGIN or "no RTX"))
    return pytest.param(mode, marks=marks)


@pytest.fixture(scope="module")
def fp32_file(tmp_path_factory):
    from simam_deploy.export import export_onnx
    from simam_deploy.zoo import build_model

    folder = tmp_path_factory.mktemp("rtx-precision")
    cache = {}

    def get(model: str, mode: str):
        if (model, mode) not in cache:
            network, _ = build_model(model)
            out = folder / f"{model}-{mode}.onnx"
            export_onnx(network, out, mode=mode, input_shape=SHAPES[model])
            cache[(model, mode)] = out
        return cache[(model, mode)]

    return get


@pytest.mark.slow
@pytest.mark.parametrize("mode", [_mode("decomposed"), _mode("plugin")])
@pytest.mark.parametrize("model", ["cifar-resnet20", "resnet50"])
def test_fp16_and_bf16_engines_are_built_from_converted_files(fp32_file, tmp_path, model, mode):
    source = fp32_file(model, mode)
    plugin = {"plugin_lib": PLUGIN} if mode == "plugin" else {}
    fp32 = simam_trt.build_engine(source, tmp_path / "fp32.engine", runtime="tensorrt-rtx", **plugin)
    assert fp32.precision == "fp32" and fp32.builder_flags == [] and fp32.notices == []
    for precision in ("fp16", "bf16"):
        report = simam_trt.build_engine(
            source, tmp_path / f"{precision}.engine", precision=precision, runtime="tensorrt-rtx", **plugin
        )
        assert report.precision == precision  # read from the network's tensor types
        assert report.builder_flags == []
        assert any(f"no {precision} builder flag" in n for n in report.notices)
        assert report.onnx == str(source)
        if mode == "plugin":
            assert report.simam_plugin_layers == report.simam_nodes == NODES[model]
        # the weights shrink to half (the builder's "Total Weights Memory"; the engine file is no
        # measure for ResNet-20, whose 1.1 MB of weights sit beside ~2.6 MB of kernels that differ
        # by precision and plan); ResNet-50's engine is mostly weights, so it halves as a whole
        assert fp32.weights_bytes is not None and report.weights_bytes is not None
        saved = fp32.weights_bytes - report.weights_bytes
        assert saved >= 0.9 * _float_weight_bytes(source) / 2, (saved, _float_weight_bytes(source))
        if model == "resnet50":
            ratio = report.engine_bytes / fp32.engine_bytes
            assert 0.4 < ratio < 0.6, f"{precision} engine is {ratio:.2f}x the fp32 engine"


def _float_weight_bytes(path) -> int:
    model = onnx.load(str(path))
    return sum(
        4 * int(np.prod(t.dims)) for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT
    )


@needs_rtx
def test_cli_build_fp16_reports_the_network_precision(fp32_file, tmp_path, capsys):
    source = fp32_file("cifar-resnet20", "decomposed")
    engine = tmp_path / "r20.engine"
    code, stdout, err = run_cli(["build", str(source), "-o", str(engine), "--fp16", "--json", "-"], capsys)
    assert code == 0, err
    report = json.loads(stdout)
    assert report["precision"] == "fp16" and report["builder_flags"] == []
    assert "converted" in err and "fp16 network" in err
    # a file that is already fp16 is built as it is; asking for another precision is refused
    half = tmp_path / "r20-fp16.onnx"
    convert_file(source, half, "fp16")
    again = simam_trt.build_engine(half, tmp_path / "again.engine", precision="fp16", runtime="tensorrt-rtx")
    assert again.precision == "fp16" and again.notices == []
    plain = simam_trt.build_engine(half, tmp_path / "plain.engine", runtime="tensorrt-rtx")
    assert plain.precision == "fp16"  # no flag given, the file's types still decide
    with pytest.raises(InputError, match="computes in fp16, but bf16"):
        simam_trt.build_engine(half, tmp_path / "x.engine", precision="bf16", runtime="tensorrt-rtx")
    assert not (tmp_path / "x.engine").exists()
