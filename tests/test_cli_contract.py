"""The CLI contract, one test per item of issue 10: NaN never passes, no tracebacks, no input lost,
consistent machine output. Real files only: models written by torch's exporter, .npz written by
numpy, a real read-only mount and a real full disk (tmpfs; skipped with the reason where this
process may not mount), a real SIGTERM."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from simam_deploy.errors import Terminated
from simam_deploy.fileio import atomic_output, check_output_paths, current_umask
from tests import cli_runner
from tests.test_cli_contract_support import (
    digest,
    expected_mode,
    export_once,
    full_dir,
    read_only_dir,
    run,
    stray_temporaries,
)

R20 = "cifar-resnet20"


@pytest.fixture(scope="module")
def r20_dynamic(tmp_path_factory) -> Path:
    """Dynamic batch, H and W (torchscript exporter: axes named batch/height/width)."""
    return export_once(tmp_path_factory, "r20-dyn.onnx", "--dynamic", "all")


@pytest.fixture(scope="module")
def r20_fixed(tmp_path_factory) -> Path:
    """Every axis fixed: 1x3x32x32."""
    return export_once(tmp_path_factory, "r20-fixed.onnx", "--dynamic", "none")


@pytest.fixture(scope="module")
def r20_batch(tmp_path_factory) -> Path:
    """Only the batch dynamic (the export default)."""
    return export_once(tmp_path_factory, "r20-batch.onnx", "--dynamic", "batch")


def _npz(path: Path, array: np.ndarray) -> Path:
    np.savez(path, input=array)
    return path


def _images(n: int = 2, c: int = 3, h: int = 32, w: int = 32) -> np.ndarray:
    return np.random.default_rng(0).standard_normal((n, c, h, w)).astype(np.float32)


# ---- NaN / Inf never pass ----------------------------------------------------------------------
def test_one_nan_pixel_fails_with_count_and_where(r20_dynamic, tmp_path, capsys):
    x = _images()
    x[0, 1, 5, 5] = np.nan
    npz = _npz(tmp_path / "nan.npz", x)
    code, out, err = run(
        ["validate", r20_dynamic, "--reference", R20, "--inputs", npz, "--json", "-"], capsys
    )
    assert code == 1, out + err
    report = json.loads(out)
    stats = report["runs"][0]["outputs"]["output"]
    assert report["passed"] is False and stats["nan_target"] == 100 and stats["nan_reference"] == 100
    assert stats["nonfinite_where"][0].startswith("100 NaN in target at [0, 0]")
    assert stats["top1_rows"] == 1 and stats["top1_agreement"] == 1.0  # the NaN row is not counted
    assert "NaN" in err and "--allow-nonfinite" in err
    # The user says NaN is expected: same places on both sides -> pass.
    code, out, err = run(
        ["validate", r20_dynamic, "--reference", R20, "--inputs", npz, "--allow-nonfinite"], capsys
    )
    assert code == 0, out + err


@pytest.mark.parametrize("value", [np.inf, -np.inf, 1e30])
def test_inf_and_huge_inputs_fail(r20_dynamic, tmp_path, capsys, value):
    x = _images()
    x[:, :, :4, :4] = value
    npz = _npz(tmp_path / "bad.npz", x)
    code, out, err = run(["validate", r20_dynamic, "--reference", R20, "--inputs", npz], capsys)
    assert code == 1, out + err
    assert "FAIL" in out and re.search(r"\d+ NaN/Inf", out)


def test_one_by_one_planes_are_refused_with_the_layer_named(r20_dynamic, capsys):
    code, _out, err = run(["validate", r20_dynamic, "--reference", R20, "--input-shape", "1x3x1x1"], capsys)
    assert code == 2 and "SimAM layer 'layer1.0" in err and "1x1 plane" in err


def test_pass_line_prints_the_combined_rule_margin(r20_dynamic, capsys):
    code, out, err = run(["validate", r20_dynamic, "--reference", R20, "--seeds", "0"], capsys)
    assert code == 0, out + err
    verdict = next(line for line in out.splitlines() if line.startswith("PASS"))
    used = float(re.search(r"uses ([\d.]+)% of its allowed error", verdict).group(1))
    assert 0 <= used <= 100 and "|t-r| <= atol + rtol*|r|" in verdict
    assert "run 1/3" in err  # progress on stderr


# ---- exit 2 with the problem and the fix, never a traceback -------------------------------------
def test_input_shape_that_does_not_fit_a_fixed_file(r20_fixed, capsys):
    code, _out, err = run(["validate", r20_fixed, "--reference", R20, "--input-shape", "2x3x32x32"], capsys)
    assert code == 2 and "axis 0 (N) is fixed to 1" in err, err
    code, _out, err = run(["bench", r20_fixed, "--input-shape", "1x3x40x40", "--iters", "1"], capsys)
    assert code == 2 and "axis 2 (H) is 40, but the model fixes it to 32" in err, err


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.zeros((1, 4, 32, 32), np.float32), "axis 1 (C) is 4"),
        (np.zeros((3, 32, 32), np.float32), "rank 3"),
        (np.zeros((1, 3, 32, 32), np.float64), "is float64; the model wants float32"),
        (np.zeros((1, 3, 32, 32), np.float16), "is float16"),
        (np.zeros((1, 3, 32, 32), np.int64), "is int64"),
    ],
)
def test_npz_with_wrong_shape_rank_or_dtype(r20_fixed, tmp_path, capsys, array, words):
    npz = _npz(tmp_path / "x.npz", array)
    code, _out, err = run(["validate", r20_fixed, "--reference", R20, "--inputs", npz], capsys)
    assert code == 2 and words in err and "fix:" in err, err


@pytest.mark.parametrize("seeds", ["", " , ", "a,b", "-1"])
def test_bad_seeds(r20_dynamic, capsys, seeds):
    code, _out, err = run(["validate", r20_dynamic, "--reference", R20, "--seeds", seeds], capsys)
    assert code == 2 and "--seeds" in err


@pytest.mark.parametrize("command", ["validate", "export", "models"])
def test_json_into_a_missing_directory_is_refused_before_any_work(r20_dynamic, tmp_path, capsys, command):
    target = tmp_path / "nowhere" / "r.json"
    onnx_out = tmp_path / "e.onnx"
    args = {
        "validate": ["validate", r20_dynamic, "--reference", R20],
        "export": ["export", R20, "-o", onnx_out],
        "models": ["models"],
    }[command]
    code, _out, err = run([*args, "--json", target], capsys)
    assert code == 2 and "does not exist" in err and "mkdir -p" in err
    assert not onnx_out.exists()  # export checks --json before writing its ONNX


def test_user_model_file_may_import_its_sibling(tmp_path, capsys):
    (tmp_path / "sibling_blocks.py").write_text(
        "from simam_deploy.models.cifar_resnet import cifar_resnet20\n"
        "def make():\n    return cifar_resnet20()\n"
    )
    net = tmp_path / "net.py"
    net.write_text("from sibling_blocks import make\n\ndef build():\n    return make()\n")
    code, out, err = run(
        ["export", f"{net}:build", "--input-shape", "1x3x32x32", "-o", tmp_path / "n.onnx", "--opset", "17"],
        capsys,
    )
    assert code == 0, out + err


@pytest.mark.parametrize(
    ("source", "words"),
    [
        ("def build():\n    raise ValueError('no weights here')\n", "raised ValueError: no weights here"),
        ("def build(depth):\n    return None\n", "needs arguments (depth)"),
        ("import not_a_module_anywhere\ndef build():\n    pass\n", "importing"),
        ("def build(:\n", "SyntaxError"),
    ],
)
def test_user_factory_that_raises_or_needs_arguments(tmp_path, capsys, source, words):
    net = tmp_path / "bad_net.py"
    net.write_text(source)
    code, out, err = run(
        ["export", f"{net}:build", "--input-shape", "1x3x32x32", "-o", tmp_path / "n.onnx"], capsys
    )
    assert code == 2 and words in err and "Traceback" not in out + err, err


def test_read_only_output_directory(r20_dynamic, capsys):
    with read_only_dir() as ro:
        for args in (
            ["validate", r20_dynamic, "--reference", R20, "--json", ro / "r.json"],
            ["export", R20, "-o", ro / "e.onnx"],
            ["models", "--json", ro / "m.json"],
        ):
            code, _out, err = run(args, capsys)
            assert code == 2 and "read-only or not writable" in err, err
        assert os.listdir(ro) == []


def test_full_disk_is_exit_2_and_leaves_nothing(r20_fixed, capsys):
    with full_dir() as full:
        code, _out, err = run(["export", R20, "-o", full / "e.onnx", "--opset", "17"], capsys)
        assert code == 2 and "no space left" in err, err
        code, _out, err = run(
            ["validate", r20_fixed, "--reference", R20, "--seeds", "0", "--json", full / "r.json"], capsys
        )
        assert code == 2 and "no space left" in err, err
        args = ["bench", r20_fixed, "--iters", "2", "--warmup", "0", "--plot", full / "p.png"]
        code, _out, err = run(args, capsys)  # the plot writer
        assert code == 2 and "no space left" in err, err
        assert sorted(os.listdir(full)) == ["filler"]


# ---- no input is ever overwritten ---------------------------------------------------------------
def test_outputs_never_replace_inputs(r20_fixed, tmp_path, capsys):
    before = digest(r20_fixed)
    cases = [
        ["validate", r20_fixed, "--reference", R20, "--json", r20_fixed],
        ["bench", r20_fixed, "--iters", "1", "--plot", r20_fixed],
        ["bench", r20_fixed, "--iters", "1", "--json", r20_fixed],
        ["fuse", r20_fixed, "-o", r20_fixed],
        ["unfuse", r20_fixed, "-o", tmp_path / "u.onnx", "--json", r20_fixed],
        ["build", r20_fixed, "-o", r20_fixed],  # checked before TensorRT is even looked for
        ["build", r20_fixed, "-o", tmp_path / "e.engine", "--timing-cache", r20_fixed],
    ]
    link = tmp_path / "hardlink.onnx"
    os.link(r20_fixed, link)  # another name for the same file is still the input
    cases.append(["validate", r20_fixed, "--reference", R20, "--json", link])
    for args in cases:
        code, _out, err = run(args, capsys)
        assert code == 2 and "refusing to overwrite an input" in err, (args, err)
        assert digest(r20_fixed) == before
    code, _out, err = run(["export", R20, "-o", tmp_path / "e.onnx", "--json", tmp_path / "e.onnx"], capsys)
    assert code == 2 and "two outputs name the same file" in err and not (tmp_path / "e.onnx").exists()
    code, _out, err = run(
        ["bench", r20_fixed, "--iters", "1", "--json", tmp_path / "b", "--plot", tmp_path / "b"], capsys
    )
    assert code == 2 and "same file" in err


def test_check_output_paths_names_the_option(tmp_path):
    src = tmp_path / "in.onnx"
    src.write_bytes(b"x")
    with pytest.raises(Exception, match=r"--timing-cache: output .* same file as input"):
        check_output_paths({"-o": tmp_path / "a.engine", "--timing-cache": src}, [src])


# ---- file modes and signals ---------------------------------------------------------------------
@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_outputs_get_the_usual_mode_under_the_umask(tmp_path, capsys, umask):
    old = os.umask(umask)
    try:
        code, _out, _err = run(["models", "--json", tmp_path / "m.json"], capsys)
        written = tmp_path / "m.json"
        with atomic_output(tmp_path / "b.bin") as tmp:
            tmp.write_bytes(b"x")
    finally:
        os.umask(old)
    assert code == 0
    for path in (written, tmp_path / "b.bin"):
        assert (path.stat().st_mode & 0o777) == (0o666 & ~umask)


def test_current_umask_reads_without_changing_it():
    old = os.umask(0o027)
    try:
        assert current_umask() == 0o027 and current_umask() == 0o027
    finally:
        os.umask(old)
    assert expected_mode() == 0o666 & ~old


def test_sigterm_inside_an_atomic_write_removes_the_temporary(tmp_path):
    from simam_deploy.cli.main import _install_sigterm_handler

    previous = _install_sigterm_handler()
    try:
        with pytest.raises(Terminated), atomic_output(tmp_path / "model.onnx") as tmp:
            tmp.write_bytes(b"half")
            os.kill(os.getpid(), signal.SIGTERM)  # a real signal, delivered mid-write
            time.sleep(1)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert os.listdir(tmp_path) == []


def test_sigterm_during_export_exits_143_and_leaves_nothing(tmp_path):
    out = tmp_path / "r56.onnx"
    cmd = [sys.executable, "-m", "simam_deploy.cli.main", "export", "cifar-resnet56", "-o", str(out)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(4)  # import torch and start exporting
    proc.send_signal(signal.SIGTERM)
    _stdout, stderr = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the export finished before SIGTERM arrived (a very fast machine)")
    assert proc.returncode == 143 and "terminated" in stderr and "Traceback" not in stderr, stderr
    assert os.listdir(tmp_path) == []


def test_a_bug_is_shown_as_a_bug_not_as_a_user_error(monkeypatch, capsys):
    import simam_deploy.cli.models_cmd as models_cmd

    def broken():
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(models_cmd, "list_models", broken)
    code, _out, err = run(["models"], capsys)
    assert code == 3 and "Traceback" in err and "internal error" in err and "bug" in err


def test_unrelated_os_errors_are_not_dressed_up(tmp_path):
    with pytest.raises(PermissionError), atomic_output(tmp_path / "x"):
        raise PermissionError(13, "Permission denied", "/some/input/elsewhere")
    assert stray_temporaries(tmp_path) == []


# ---- machine output ------------------------------------------------------------------------------
def test_dash_means_stdout_for_every_command(r20_fixed, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    fused = tmp_path / "f.onnx"
    cases = {
        "models": ["models", "--json", "-"],
        "export": ["export", R20, "-o", tmp_path / "e.onnx", "--json", "-", "--opset", "17"],
        "validate": ["validate", r20_fixed, "--reference", R20, "--seeds", "0", "--json", "-"],
        "fuse": ["fuse", r20_fixed, "-o", fused, "--json", "-"],
        "unfuse": ["unfuse", fused, "-o", tmp_path / "u.onnx", "--json", "-"],
        "bench": ["bench", r20_fixed, "--iters", "2", "--warmup", "0", "--json", "-"],
    }
    for command, args in cases.items():
        code, out, err = run(args, capsys)
        assert code == 0, (command, err)
        report = json.loads(out)  # stdout holds the JSON and nothing else
        assert report["schema"] == f"simam-deploy/{command}/v1"
        assert "inputs" in report and "outputs" in report and report["outputs"].get("json") == "-"
    assert not (tmp_path / "-").exists()
    bench = json.loads(run(cases["bench"], capsys)[1])
    assert bench["dtype"] == "fp32" and bench["mode"] == "target"  # one spelling of dtypes


def test_unfuse_json_file(r20_fixed, tmp_path, capsys):
    fused = tmp_path / "f.onnx"
    assert run(["fuse", r20_fixed, "-o", fused], capsys)[0] == 0
    code, _out, _err = run(
        ["unfuse", fused, "-o", tmp_path / "u.onnx", "--json", tmp_path / "u.json"], capsys
    )
    report = json.loads((tmp_path / "u.json").read_text())
    assert code == 0 and report["schema"] == "simam-deploy/unfuse/v1" and report["simam_nodes_expanded"] == 9
    assert report["inputs"]["onnx"] == str(fused) and report["outputs"]["onnx"] == str(tmp_path / "u.onnx")


# ---- human output ----------------------------------------------------------------------------------
def test_tables_are_never_cut_without_a_terminal(tmp_path, capsys):
    from simam_deploy.zoo import list_models

    code, out, _err = run(["models"], capsys)
    assert code == 0 and "…" not in out
    for entry in list_models():
        assert entry.description in out  # whole, on one line


def test_long_paths_stay_whole_in_the_verdict(r20_fixed, tmp_path, capsys):
    deep = tmp_path / ("a" * 120) / "model-with-a-long-name.onnx"
    deep.parent.mkdir()
    deep.write_bytes(r20_fixed.read_bytes())
    code, out, _err = run(["validate", deep, "--reference", R20, "--seeds", "0"], capsys)
    assert code == 0 and str(deep) in out and "…" not in out


# ---- help -----------------------------------------------------------------------------------------
def test_help_shows_only_accepted_compare_values(capsys):
    from simam_deploy.bench.targets import ALL_BACKENDS

    for args in (["--help"], ["bench", "--help"]):
        code, out, _err = run(args, capsys)
        assert code == 0
        for values in re.findall(r"--compare ([a-z,]+)", out):
            assert set(values.split(",")) <= set(ALL_BACKENDS), values
    assert "--compare torch" not in run(["--help"], capsys)[1]


@pytest.mark.parametrize("command", ["fuse", "unfuse", "models", "export", "validate", "bench", "build"])
def test_every_command_has_examples(command, capsys):
    code, out, _err = run([command, "--help"], capsys)
    assert code == 0 and "Examples:" in out and f"simam-deploy {command}" in out


def test_bench_unknown_model_blames_the_model(capsys):
    code, _out, err = run(["bench", "resnet99", "--device", "cpu"], capsys)
    assert code == 2 and "unknown model 'resnet99'" in err and "input shape" not in err
    code, _out, err = run(["validate", "missing.onnx", "--reference", "resnet99"], capsys)
    assert code == 2 and "unknown model 'resnet99'" in err


def test_batch_only_dynamic_file_needs_no_input_shape(r20_batch, tmp_path, capsys):
    net = tmp_path / "mine.py"
    net.write_text("from simam_deploy.models.cifar_resnet import cifar_resnet20 as build\n")
    code, out, err = run(["validate", r20_batch, "--reference", f"{net}:build", "--seeds", "0"], capsys)
    assert code == 0, err
    assert "1x3x32x32" in out and "3x3x32x32" in out


def test_dynamic_axes_are_named_not_dynamo_symbols(r20_dynamic, tmp_path, capsys):
    model = onnx.load(r20_dynamic)
    for dim, symbol in zip(
        model.graph.input[0].type.tensor_type.shape.dim, ["s77", None, "s53", "s0"], strict=True
    ):
        if symbol:
            dim.dim_param = symbol  # what torch's dynamo exporter writes
    path = tmp_path / "dynamo-names.onnx"
    onnx.save(model, path)
    net = tmp_path / "mine.py"
    net.write_text("from simam_deploy.models.cifar_resnet import cifar_resnet20 as build\n")
    code, _out, err = run(["validate", path, "--reference", f"{net}:build"], capsys)
    assert code == 2 and "axes 2 (H) and 3 (W)" in err and "--input-shape" in err
    assert not re.search(r"\bs\d+\b", err), err


# ---- bench plots ------------------------------------------------------------------------------------
def test_bench_plot_has_title_values_and_spread(r20_fixed, tmp_path, capsys):
    from matplotlib.container import ErrorbarContainer

    from simam_deploy.bench.report import bar_figure, target_plot_data, target_plot_title
    from simam_deploy.bench.targets import benchmark_target

    bench = benchmark_target(str(r20_fixed), warmup=0, iters=5)
    title = target_plot_title(bench)
    assert str(r20_fixed) in title and "(cpu)" in title and "batch 1" in title and "fp32" in title
    groups, series, spread = target_plot_data(bench)
    (low, high), median = spread["p50 ms"][0], series["p50 ms"][0]
    assert low <= median <= high
    fig = bar_figure(groups, series, "latency (ms)", title, spread)
    ax = fig.axes[0]
    assert f"{median:.3g}" in [t.get_text() for t in ax.texts]  # the value on its bar
    assert any(isinstance(c, ErrorbarContainer) for c in ax.containers)  # the p10-p90 whisker
    png = tmp_path / "p.png"
    code, _out, _err = run(["bench", r20_fixed, "--iters", "3", "--warmup", "0", "--plot", png], capsys)
    assert code == 0 and png.read_bytes().startswith(b"\x89PNG")
    assert (png.stat().st_mode & 0o777) == expected_mode()


def test_cli_runner_matches_a_real_process(r20_fixed):
    """The in-process runner is faithful: the installed entry point gives the same exit codes."""
    for args, code in ((["models"], 0), (["bench", "resnet99"], 2)):
        proc = subprocess.run(
            [sys.executable, "-m", "simam_deploy.cli.main", *args], capture_output=True, text=True
        )
        assert proc.returncode == code == cli_runner.exit_code(*args), proc.stderr


def test_json_reports_are_standard_json_even_with_nonfinite_numbers(tmp_path):
    from simam_deploy.cli.common import envelope, write_json

    def refuse(token):
        raise ValueError(f"non-standard JSON token {token}")

    path = tmp_path / "r.json"
    write_json(path, envelope("validate", {"summary": {"tolerance_used": float("inf"), "x": [float("nan")]}}))
    report = json.loads(path.read_text(), parse_constant=refuse)
    assert report["summary"] == {"tolerance_used": "inf", "x": ["nan"]}
    assert report["schema"] == "simam-deploy/validate/v1" and list(report)[:3] == [
        "schema",
        "inputs",
        "outputs",
    ]


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
@pytest.mark.parametrize("args", [["models", "--json", "-"], ["models"]])
def test_full_disk_behind_stdout_is_exit_2(args):
    """/dev/full answers every write with ENOSPC: a real full disk behind `--json -` or a table."""
    with open("/dev/full", "w") as full:
        proc = subprocess.run(
            [sys.executable, "-m", "simam_deploy.cli.main", *args],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
        )
    assert proc.returncode == 2 and "No space left" in proc.stderr and "Traceback" not in proc.stderr
