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
def r20_files(zoo_onnx):
    """cifar-resnet20, decomposed and plugin mode, dynamic batch (exported once per session)."""
    return {mode: zoo_onnx("cifar-resnet20", mode) for mode in ("decomposed", "plugin")}


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
def test_simam_trt_formats_linear_brings_back_one_transpose_per_block(r20_files, tmp_path):
    """SIMAM_TRT_FORMATS=linear (read when the plugin's creator is made, so in a fresh process) offers
    kLINEAR only, what the plugin did before layouts: the builder then transposes in front of every block
    (the default, kHWC only, has none: see test_plugin_plan_targets_no_transpose_...)."""
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


# -- plan targets: what the plugin must achieve in TensorRT for RTX's plan (docs/tensorrt.md) ----------

# as benchmarks/plan_table.py builds them: dynamic batch 1..2*opt, tuned for opt
TARGET_PROFILES = {
    "cifar-resnet20": "input=1x3x32x32:32x3x32x32:64x3x32x32",
    "resnet50": "input=1x3x224x224:8x3x224x224:16x3x224x224",
}
TARGET_BLOCKS = {"cifar-resnet20": 9, "resnet50": 16}


@pytest.fixture(scope="module")
def target_plans(zoo_onnx, tmp_path_factory):
    """``target_plans(model, form, precision)``: the plan of one RTX build, each built once."""
    from simam_deploy.backends.tensorrt import build_engine

    folder = tmp_path_factory.mktemp("plan-targets")
    plans: dict[tuple[str, str, str], dict] = {}

    def get(model: str, form: str, precision: str) -> dict:
        if (model, form, precision) not in plans:
            report = build_engine(
                zoo_onnx(model, form), folder / f"{model}-{form}-{precision}.engine", precision=precision,
                shapes=[TARGET_PROFILES[model]], runtime="tensorrt-rtx",
            )  # fmt: skip
            assert report.plan is not None, report.plan_note
            assert report.plan["simam_blocks"] == TARGET_BLOCKS[model]
            plans[model, form, precision] = report.plan
        return plans[model, form, precision]

    return get


@needs_rtx_plugin
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
@pytest.mark.parametrize("model", ["cifar-resnet20", "resnet50"])
def test_plugin_plan_targets_no_transpose_and_at_most_two_kernels_per_block(target_plans, model, precision):
    """Next to every SimAM plugin layer: no transpose/reformat (the plugin takes the convolutions'
    channel-last tensors as they are), and at most two kernels: SimAM and, where TensorRT does not fold
    it in, the epilogue (BatchNorm, residual add, ReLU)."""
    plan = target_plans(model, "plugin", precision)
    for block in plan["blocks"]:
        layout = [k["name"] for k in block["kernels"] if k["role"] == "layout"]
        assert layout == [], f"{block['name']}: transposes/reformats next to SimAM: {layout}"
        assert block["kernel_count"] <= 2, f"{block['name']}: {[k['name'] for k in block['kernels']]}"
    assert plan["layout_kernels_next_to_simam"] == 0


@needs_rtx_plugin
@pytest.mark.parametrize("model", ["cifar-resnet20", "resnet50"])
def test_fp16_plugin_blocks_move_a_quarter_fewer_bytes_than_decomposed(target_plans, model):
    """In fp16 TensorRT fuses the decomposed SimAM well (two kernels, no transpose); the plugin is worth
    it only if its blocks move clearly fewer bytes: at least 25 % below, per block, epilogue included."""
    plugin = target_plans(model, "plugin", "fp16")
    decomposed = target_plans(model, "decomposed", "fp16")
    per_block = {
        form: plan["simam_bytes"] / plan["simam_blocks"]
        for form, plan in (("plugin", plugin), ("decomposed", decomposed))
    }
    assert per_block["plugin"] <= 0.75 * per_block["decomposed"], per_block


@needs_rtx_plugin
def test_resnet50_with_the_epilogue_folded_runs_each_simam_block_as_one_kernel(target_plans):
    """fuse --epilogue folds each block's BatchNorm and ReLU into the SimAM node: the plugin is then the
    block's only kernel, nothing transposed around it."""
    plan = target_plans("resnet50", "plugin+epilogue", "fp16")
    assert [[k["role"] for k in b["kernels"]] for b in plan["blocks"]] == [["simam"]] * 16
