"""The plan in the build report: the kernels TensorRT's builder chose for every SimAM block, read from
the real builder of TensorRT for RTX (ProfilingVerbosity.DETAILED logs the plan; no GPU is needed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from simam_deploy.backends.tensorrt.plan import parse_layer_dump
from tests.cli_runner import run_cli
from tests.test_tensorrt_rtx import needs_rtx, needs_rtx_plugin

PROFILE = ["input=1x3x32x32:8x3x32x32:16x3x32x32"]


@pytest.fixture(scope="module")
def r20_files(tmp_path_factory):
    """cifar-resnet20, decomposed and plugin mode, dynamic batch (the fast TorchScript exporter)."""
    from simam_deploy.export import export_onnx
    from simam_deploy.zoo import build_model

    folder = tmp_path_factory.mktemp("plan")
    files = {}
    for mode in ("decomposed", "plugin"):
        network, _ = build_model("cifar-resnet20")
        files[mode] = folder / f"r20-{mode}.onnx"
        export_onnx(network, files[mode], mode=mode, input_shape=(1, 3, 32, 32), opset=17)
    return files


def _build(onnx_path, tmp_path, precision="fp32"):
    from simam_deploy.backends.tensorrt import build_engine

    return build_engine(
        onnx_path, tmp_path / f"{onnx_path.stem}-{precision}.engine", precision=precision, shapes=PROFILE,
        runtime="tensorrt-rtx",
    )  # fmt: skip


@needs_rtx_plugin
def test_plugin_plan_has_one_plugin_kernel_per_block_and_counts_what_surrounds_it(r20_files, tmp_path):
    plan = _build(r20_files["plugin"], tmp_path).plan
    assert plan is not None and plan["simam_blocks"] == 9 and plan["batch"] == 8
    for block in plan["blocks"]:
        own = [k for k in block["kernels"] if k["role"] == "simam"]
        assert len(own) == 1 and own[0]["layer_type"] == "custom_layer", block
        assert block["name"].endswith("/SimAM") and block["bytes"] > 0
        # every kernel the block counts is a layout change, the plugin, or what reads its output
        assert {k["role"] for k in block["kernels"]} <= {"simam", "layout", "epilogue"}
    assert plan["simam_kernels"] == sum(b["kernel_count"] for b in plan["blocks"])


@needs_rtx
def test_decomposed_plan_assigns_several_kernels_to_each_block(r20_files, tmp_path):
    plan = _build(r20_files["decomposed"], tmp_path).plan
    assert plan is not None and plan["simam_blocks"] == 9
    for block in plan["blocks"]:
        own = [k for k in block["kernels"] if k["role"] == "simam"]
        assert len(own) >= 2, block  # Myelin fuses SimAM's ~10 ops into a few reductions and a tail
        assert all(k["layer_type"] != "custom_layer" for k in own)


@needs_rtx_plugin
def test_bytes_scale_with_the_profile_batch(r20_files, tmp_path):
    """The estimate is the activations each kernel reads and writes at the profile's opt batch: a
    profile with twice the opt batch moves twice the bytes through the same kernels."""
    from simam_deploy.backends.tensorrt import build_engine

    small = _build(r20_files["plugin"], tmp_path).plan
    large = build_engine(
        r20_files["plugin"], tmp_path / "large.engine", shapes=["input=1x3x32x32:16x3x32x32:16x3x32x32"],
        runtime="tensorrt-rtx",
    ).plan  # fmt: skip
    assert large["batch"] == 2 * small["batch"]
    assert large["simam_bytes"] == 2 * small["simam_bytes"]


@needs_rtx_plugin
def test_build_cli_prints_the_plan_and_carries_it_in_json(r20_files, tmp_path, capsys):
    report = tmp_path / "build.json"
    code, out, err = run_cli(
        ["build", str(r20_files["plugin"]), "-o", str(tmp_path / "r20.engine"), "--runtime", "tensorrt-rtx",
         "--shapes", PROFILE[0], "--json", str(report), "--show-plan"],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    out += err
    assert "9 SimAM blocks take" in out and "/layer1/0/conv2/simam/SimAM" in out
    data = json.loads(report.read_text())
    assert data["plan"]["simam_blocks"] == 9 and data["plan_note"] is None


def test_a_dump_in_an_unknown_format_reads_as_no_kernels():
    """Another TensorRT's listing (or a changed format) must not be misread as a plan."""
    assert parse_layer_dump("Layers:\nLayer(CaskConvolution): conv1, Tactic: 0x1, input -> output") == []


@needs_rtx
def test_an_fp16_build_reads_the_blocks_of_the_file_as_given(r20_files, tmp_path):
    """On strongly typed TensorRT `build --fp16` converts the file first (statistics wrapped in casts);
    the plan still finds every decomposed block, by the node names the conversion keeps."""
    plan = _build(r20_files["decomposed"], tmp_path, precision="fp16").plan
    assert plan is not None and plan["simam_blocks"] == 9
    assert all(any(k["role"] == "simam" for k in b["kernels"]) for b in plan["blocks"])


@needs_rtx_plugin
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_the_plugin_reads_the_convolutions_channel_last_tensors_without_a_transpose(
    r20_files, tmp_path, precision
):
    """TensorRT for RTX produces channel-last tensors; offered kHWC only (the default on TensorRT >= 11
    headers), the plugin takes them as they are: no transpose or reformat next to any SimAM block."""
    plan = _build(r20_files["plugin"], tmp_path, precision).plan
    assert plan["simam_blocks"] == 9 and plan["layout_kernels_next_to_simam"] == 0
    for block in plan["blocks"]:
        assert [k["role"] for k in block["kernels"]].count("simam") == 1, block
        assert block["layout_kernels"] == 0, block


@needs_rtx_plugin
def test_simam_trt_formats_linear_brings_back_one_transpose_per_block(r20_files, tmp_path):
    """SIMAM_TRT_FORMATS=linear (read when the plugin's creator is made, so in a fresh process) offers
    kLINEAR only, what the plugin did before layouts: the builder then transposes in front of every block."""
    report = tmp_path / "linear.json"
    env = {**os.environ, "SIMAM_TRT_FORMATS": "linear"}
    done = subprocess.run(
        [sys.executable, "-m", "simam_deploy.cli.main", "build", str(r20_files["plugin"]),
         "-o", str(tmp_path / "linear.engine"), "--runtime", "tensorrt-rtx", "--shapes", PROFILE[0],
         "--json", str(report)],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # the parser's warning for each optional epilogue field a plain node lacks is not shown
    assert "not found in plugin node" not in done.stderr
    plan = json.loads(report.read_text())["plan"]
    assert plan["simam_blocks"] == 9 and plan["layout_kernels_next_to_simam"] == 9


@needs_rtx_plugin
def test_an_unknown_simam_trt_formats_stops_the_build_naming_the_variable(r20_files, tmp_path):
    env = {**os.environ, "SIMAM_TRT_FORMATS": "nchw"}
    done = subprocess.run(
        [sys.executable, "-m", "simam_deploy.cli.main", "build", str(r20_files["plugin"]), "-o",
         str(tmp_path / "refused.engine"), "--runtime", "tensorrt-rtx"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert "SIMAM_TRT_FORMATS='nchw'" in done.stderr and "channel-last" in done.stderr
    assert not (tmp_path / "refused.engine").exists()
