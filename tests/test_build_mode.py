"""``build --mode auto|as-is|plugin|decomposed`` with the real builder of TensorRT for RTX (no GPU
needed to build; without one ``auto`` compares the plans, with one it times the engines)."""

from __future__ import annotations

import json

import pytest

from simam_deploy.backends.tensorrt.modes import BUILD_MODES, build_with_mode, gpu_present
from simam_deploy.errors import InputError
from tests.cli_runner import run_cli
from tests.test_tensorrt_rtx import needs_rtx, needs_rtx_plugin

PROFILE = "input=1x3x32x32:8x3x32x32:16x3x32x32"


def _options(**extra):
    from simam_deploy.backends.tensorrt import BuildOptions

    return BuildOptions(shapes=[PROFILE], runtime="tensorrt-rtx", **extra)


def assert_one_kernel_per_block(plan: dict) -> None:
    """The folded BatchNorm/add/ReLU run inside the plugin: each block is one kernel. The one transpose
    left reads the last block's output: the classifier head (global pooling) reads NCHW, and with the
    epilogue folded nothing stands between the plugin and it any more."""
    roles = [[k["role"] for k in block["kernels"]] for block in plan["blocks"]]
    assert len(roles) == 9 and all(r == ["simam"] for r in roles[:-1]), roles
    assert roles[-1] in (["simam"], ["simam", "layout"]), roles


@pytest.fixture(scope="module")
def r20(zoo_onnx):
    return {mode: zoo_onnx("cifar-resnet20", mode) for mode in ("decomposed", "plugin")}


def _by_form(report) -> dict[str, dict]:
    return {c["form"]: c for c in report.candidates}


@needs_rtx_plugin
@pytest.mark.parametrize("given", ["decomposed", "plugin"])
def test_auto_builds_each_distinct_form_and_keeps_the_one_moving_fewest_bytes(r20, tmp_path, given):
    out = tmp_path / "r20.engine"
    report = build_with_mode(r20[given], out, "auto", _options(), runs=0)
    forms = _by_form(report)
    assert list(forms) == ["as-is", "plugin", "plugin+epilogue", "decomposed"]
    # the form the file already is adds no new network: skipped, not built twice
    assert forms[given]["status"] == "skipped" and forms[given]["build"] is None
    built = [c for c in report.candidates if c["status"] == "built"]
    assert len(built) == 3
    layers = sorted(c["build"]["simam_plugin_layers"] for c in built)
    assert layers == [0, 9, 9]  # the decomposed network, the fused one, the fused one with epilogues
    epilogue = forms["plugin+epilogue"]
    assert epilogue["made"].startswith("fuse --epilogue:") and "folded into 9 of 9" in epilogue["made"]
    assert_one_kernel_per_block(epilogue["build"]["plan"])
    for c in built:
        assert c["simam_blocks"] == 9 and c["simam_bytes"] > 0 and c["kernels"] > 0
    best = min(built, key=lambda c: (c["simam_bytes"], c["kernels"]))
    assert report.form == best["form"] and report.mode == "auto"
    assert report.simam_plugin_layers == best["build"]["simam_plugin_layers"]
    assert report.engine_bytes == out.stat().st_size == best["build"]["engine_bytes"]
    assert report.onnx == str(r20[given]) and report.reason.startswith(f"{best['form']}: ")
    assert "not timed" in report.reason  # runs=0: the plans decide
    # only the kept engine was written, nothing else beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r20.engine"]


@needs_rtx_plugin
def test_mode_plugin_builds_the_fused_form_of_a_decomposed_file(r20, tmp_path):
    report = build_with_mode(r20["decomposed"], tmp_path / "e", "plugin", _options())
    assert (report.mode, report.form, report.reason) == ("plugin", "plugin", "--mode plugin")
    assert report.simam_nodes == report.simam_plugin_layers == 9
    assert report.candidates[0]["made"].startswith("fuse: 9 SimAM subgraph")


@needs_rtx_plugin
def test_mode_plugin_epilogue_folds_what_follows_each_simam_into_it(r20, tmp_path):
    report = build_with_mode(r20["plugin"], tmp_path / "e", "plugin+epilogue", _options())
    assert report.form == "plugin+epilogue" and report.simam_nodes == report.simam_plugin_layers == 9
    assert_one_kernel_per_block(report.plan)


@needs_rtx
def test_mode_decomposed_builds_the_standard_op_form_of_a_plugin_file(r20, tmp_path):
    report = build_with_mode(r20["plugin"], tmp_path / "e", "decomposed", _options())
    assert report.form == "decomposed" and report.simam_nodes == report.simam_plugin_layers == 0
    assert report.plan is not None and report.plan["simam_blocks"] == 9  # found as decomposed blocks


@needs_rtx
def test_a_form_that_fails_to_build_is_reported_and_skipped(r20, tmp_path):
    """A plugin library that does not exist: the fused form cannot build, the decomposed file can."""
    missing = tmp_path / "no-such-libsimam_trt_plugin.so"
    report = build_with_mode(r20["decomposed"], tmp_path / "e", "auto", _options(plugin_lib=missing), runs=0)
    forms = _by_form(report)
    for form in ("plugin", "plugin+epilogue"):
        assert forms[form]["status"] == "failed" and "no-such-libsimam_trt_plugin" in forms[form]["error"]
    assert report.form == "as-is" and (tmp_path / "e").is_file()
    assert report.reason == (
        "as-is: the only form that built (plugin failed, plugin+epilogue failed, decomposed skipped)"
    )


@needs_rtx
def test_every_form_failing_is_an_input_error_naming_each(r20, tmp_path):
    options = _options()
    options.shapes = ["input=1x4x32x32:8x4x32x32:16x4x32x32"]  # 4 channels: the model declares 3
    with pytest.raises(InputError) as info:
        build_with_mode(r20["decomposed"], tmp_path / "e", "auto", options, runs=0)
    assert "no form of" in info.value.message
    assert "as-is: " in info.value.message and "plugin: " in info.value.message
    assert not (tmp_path / "e").exists()


@needs_rtx
def test_a_file_that_is_not_onnx_fails_every_form_with_exit_2(tmp_path, capsys):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"not a protobuf at all")
    code, out, err = run_cli(
        ["build", str(bad), "-o", str(tmp_path / "e.engine"), "--runtime", "tensorrt-rtx", "--mode", "auto"],
        capsys,
    )
    assert code == 2, out + err
    assert "no form of model.onnx built" in err and "plugin: " in err and "decomposed: " in err
    assert not (tmp_path / "e.engine").exists()


def test_unknown_mode_and_negative_runs_are_refused(tmp_path):
    with pytest.raises(InputError, match="unknown build mode"):
        build_with_mode(tmp_path / "m.onnx", tmp_path / "e", "fastest")
    with pytest.raises(InputError, match="--runs must be >= 0"):
        build_with_mode(tmp_path / "m.onnx", tmp_path / "e", "auto", runs=-1)
    assert BUILD_MODES[0] == "as-is"


@needs_rtx_plugin
def test_build_cli_auto_prints_the_candidates_and_carries_them_in_json(r20, tmp_path, capsys):
    report = tmp_path / "build.json"
    code, out, err = run_cli(
        ["build", str(r20["decomposed"]), "-o", str(tmp_path / "r20.engine"), "--runtime", "tensorrt-rtx",
         "--shapes", PROFILE, "--mode", "auto", "--runs", "0", "--json", str(report)],
        capsys,
    )  # fmt: skip
    assert code == 0, err
    assert "building the as-is form" in err and "building the plugin form" in err  # progress: stderr
    assert "forms built" in out and "kept " in out and "skipped: the same network as as-is" in out
    data = json.loads(report.read_text())
    assert (
        data["mode"] == "auto" and data["form"] in ("as-is", "plugin", "plugin+epilogue") and data["reason"]
    )
    assert [c["form"] for c in data["candidates"]] == ["as-is", "plugin", "plugin+epilogue", "decomposed"]
    kept = [c for c in data["candidates"] if c["build"] and c["build"]["engine"]]
    assert [c["form"] for c in kept] == [data["form"]]


@needs_rtx_plugin
@pytest.mark.skipif(not gpu_present(), reason="timing engines needs an NVIDIA GPU (none here)")
def test_auto_on_a_gpu_times_every_engine_and_keeps_the_fastest(r20, tmp_path):
    report = build_with_mode(r20["decomposed"], tmp_path / "e", "auto", _options(), runs=20)
    built = [c for c in report.candidates if c["status"] == "built"]
    assert all(c["latency_ms"] > 0 and c["runs"] == 20 for c in built)
    assert report.form == min(built, key=lambda c: c["latency_ms"])["form"]
    assert "median of 20 runs" in report.reason
