"""The CLI contract against hostile input (issue 23, items 1-8 and the confusing cases): outputs that
alias the user's own Python files, `-o -`, truncated/random/empty files, read-only save folders,
absurd batch sizes, user code that raises or exits, 0-sample data, sloppy shape strings.

Real files only: ONNX written by torch's exporter, user model files written as a user would, a real
read-only tmpfs (skipped with the reason where this process may not mount)."""

from __future__ import annotations

import json
import os
import shlex
from pathlib import Path

import numpy as np
import pytest

from tests.test_cli_contract_support import (
    USER_NET,
    digest,
    export_once,
    read_only_dir,
    run,
    stray_temporaries,
)

R20 = "cifar-resnet20"


@pytest.fixture()
def user_dir(tmp_path: Path) -> Path:
    (tmp_path / "mynet.py").write_text(USER_NET)
    return tmp_path


@pytest.fixture(scope="module")
def user_onnx(tmp_path_factory) -> Path:
    """The user's own network, exported by us (torchscript exporter, fixed 2x3x16x16)."""
    folder = tmp_path_factory.mktemp("user")
    (folder / "mynet.py").write_text(USER_NET)
    out = folder / "mynet.onnx"
    code = run_code(
        "export", f"{folder / 'mynet.py'}:build", "-o", out, "--opset", "17", "--input-shape", "2x3x16x16",
        "--dynamic", "none",
    )  # fmt: skip
    assert code == 0 and out.is_file()
    return out


@pytest.fixture(scope="module")
def r20_fixed(tmp_path_factory) -> Path:
    return export_once(tmp_path_factory, "r20-fixed.onnx", "--dynamic", "none")


def run_code(*args) -> int:
    from tests import cli_runner

    return cli_runner.exit_code(*(str(a) for a in args))


def _refused(code: int, out: str, err: str, *words: str) -> None:
    text = out + err
    assert code == 2, text
    assert "Traceback" not in text, text
    for word in words:
        assert word.lower() in text.lower(), f"{word!r} not in\n{text}"


# ---- 1. outputs never overwrite the user's Python files ---------------------------------------------
@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_validate_json_onto_the_reference_file_is_refused(user_onnx, user_dir, link, capsys):
    model_file = user_dir / "mynet.py"
    target = {"same": model_file, "symlink": user_dir / "alias.py", "hardlink": user_dir / "hard.py"}[link]
    if link == "symlink":
        target.symlink_to(model_file)
    elif link == "hardlink":
        os.link(model_file, target)
    before = digest(model_file)
    code, out, err = run(
        ["validate", user_onnx, "--reference", f"{model_file}:build", "--seeds", "0", "--json", target],
        capsys,
    )
    _refused(code, out, err, "--json", "input")
    assert digest(model_file) == before


def test_validate_plot_and_json_onto_the_inputs_file_are_refused(user_onnx, user_dir, capsys):
    model_file = user_dir / "mynet.py"
    before = digest(model_file)
    for option in ("--json", "--plot"):
        extra = ["--per-layer"] if option == "--plot" else []
        code, out, err = run(
            ["validate", user_onnx, "--reference", f"{model_file}:build", "--inputs", f"{model_file}:batches",
             *extra, option, model_file],
            capsys,
        )  # fmt: skip
        _refused(code, out, err, option)
        assert digest(model_file) == before


def test_module_spec_inputs_are_protected_too(user_onnx, user_dir, capsys, monkeypatch):
    """`--reference mynet:build` (a module on sys.path) names the same file as mynet.py."""
    monkeypatch.syspath_prepend(str(user_dir))
    monkeypatch.chdir(user_dir)
    before = digest(user_dir / "mynet.py")
    code, out, err = run(
        ["validate", user_onnx, "--reference", "mynet:build", "--seeds", "0", "--json", "mynet.py"], capsys
    )
    _refused(code, out, err, "--json")
    assert digest(user_dir / "mynet.py") == before


# ---- 2. `-o -` never writes a file named '-' ----------------------------------------------------------
@pytest.mark.parametrize("command", ["fuse", "unfuse", "convert", "build", "export", "triton"])
def test_dash_output_is_refused_for_binary_outputs(command, r20_fixed, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = {
        "fuse": ["fuse", r20_fixed, "-o", "-"],
        "unfuse": ["unfuse", r20_fixed, "-o", "-"],
        "convert": ["convert", r20_fixed, "--precision", "fp16", "-o", "-"],
        "build": ["build", r20_fixed, "-o", "-"],
        "export": ["export", R20, "--opset", "17", "-o", "-"],
        "triton": ["triton", r20_fixed, "-o", "-"],
    }[command]
    code, out, err = run(args, capsys)
    _refused(code, out, err, "-o -", "fix:")
    assert not (tmp_path / "-").exists()


# ---- 3./4. corrupt models ---------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["truncated", "random", "empty"])
def test_convert_and_triton_refuse_corrupt_onnx(kind, r20_fixed, tmp_path, capsys):
    good = r20_fixed.read_bytes()
    data = {
        "truncated": good[: len(good) // 2],
        "random": np.random.default_rng(0).bytes(4096),
        "empty": b"",
    }[kind]
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(data)
    code, out, err = run(["convert", bad, "--precision", "fp16", "-o", tmp_path / "out.onnx"], capsys)
    _refused(code, out, err, str(bad))
    assert not (tmp_path / "out.onnx").exists()
    code, out, err = run(["triton", bad, "-o", tmp_path / "repo"], capsys)
    _refused(code, out, err, str(bad))
    assert not (tmp_path / "repo").exists()


def test_triton_refuses_an_empty_engine(tmp_path, capsys):
    engine = tmp_path / "model.engine"
    engine.write_bytes(b"")
    code, out, err = run(["triton", engine, "-o", tmp_path / "repo"], capsys)
    _refused(code, out, err, "empty")
    assert not (tmp_path / "repo").exists()


# ---- 5. save folders are checked before the work ----------------------------------------------------
@pytest.mark.parametrize("option", ["--save-inputs", "--save-outputs"])
def test_save_folder_in_a_read_only_place_fails_fast(option, r20_fixed, capsys):
    with read_only_dir() as ro:
        code, out, err = run(
            ["validate", r20_fixed, "--reference", R20, "--seeds", "0", option, ro / "io"], capsys
        )
        _refused(code, out, err, option, "read-only")
        assert "run 1/" not in err  # refused before the first run
        assert not stray_temporaries(ro)


def test_save_folder_that_is_an_input_file_is_refused(r20_fixed, tmp_path, capsys):
    npz = tmp_path / "x.npz"
    np.savez(npz, input=np.zeros((1, 3, 32, 32), np.float32))
    code, out, err = run(
        ["validate", r20_fixed, "--reference", R20, "--inputs", npz, "--save-inputs", npz], capsys
    )
    _refused(code, out, err, "--save-inputs")


# ---- 6. resource exhaustion --------------------------------------------------------------------------
def test_absurd_batch_is_refused_up_front_with_a_size(tmp_path, capsys):
    dyn = export_once_here(tmp_path)
    code, out, err = run(
        ["validate", dyn, "--reference", R20, "--seeds", "0", "--input-shape", "1000000000x3x32x32"], capsys
    )
    _refused(code, out, err, "GB", "--input-shape")
    code, out, err = run(["bench", dyn, "--batch", "1000000000", "--iters", "1", "--device", "cpu"], capsys)
    _refused(code, out, err, "GB", "--batch")
    code, out, err = run(["bench", R20, "--batch", "1000000000", "--iters", "1", "--device", "cpu"], capsys)
    _refused(code, out, err, "GB", "--batch")


def export_once_here(tmp_path: Path) -> Path:
    out = tmp_path / "dyn.onnx"
    assert run_code("export", R20, "-o", out, "--opset", "17", "--dynamic", "batch") == 0
    return out


# ---- 7. the user's code fails: their error, exit 2 -----------------------------------------------------
@pytest.mark.parametrize(
    ("factory", "words"),
    [
        ("build_raising", ["my forward is broken", "ValueError", "mynet.py:build_raising"]),
        ("build_text", ["str", "mynet.py:build_text"]),
        ("build_exits", ["SystemExit", "mynet.py:build_exits"]),
    ],
)
def test_user_model_failures_are_the_users_error(factory, words, user_onnx, user_dir, capsys):
    code, out, err = run(
        ["validate", user_onnx, "--reference", f"{user_dir / 'mynet.py'}:{factory}", "--seeds", "0"], capsys
    )
    _refused(code, out, err, *words)
    assert "bug in simam-deploy" not in err


def test_inputs_callable_that_exits_is_the_users_error(user_onnx, user_dir, capsys):
    mynet = user_dir / "mynet.py"
    code, out, err = run(
        ["validate", user_onnx, "--reference", f"{mynet}:build", "--inputs", f"{mynet}:batches_exit"], capsys
    )
    _refused(code, out, err, "SystemExit", "batches_exit")


@pytest.mark.parametrize("factory", ["build_raising", "build_exits"])
def test_export_and_bench_of_a_failing_user_model_exit_2(factory, user_dir, tmp_path, capsys):
    spec = f"{user_dir / 'mynet.py'}:{factory}"
    code, out, err = run(["export", spec, "--input-shape", "1x3x16x16", "-o", tmp_path / "o.onnx"], capsys)
    _refused(code, out, err, "mynet.py")
    assert not (tmp_path / "o.onnx").exists()
    code, out, err = run(
        ["bench", spec, "--input-shape", "1x3x16x16", "--iters", "1", "--warmup", "0", "--device", "cpu"],
        capsys,
    )
    _refused(code, out, err, "mynet.py")


# ---- 8. empty data, sloppy shapes ---------------------------------------------------------------------
def test_npz_with_zero_samples_is_refused(r20_fixed, tmp_path, capsys):
    npz = tmp_path / "empty.npz"
    np.savez(npz, input=np.zeros((0, 3, 32, 32), np.float32))
    code, out, err = run(["validate", r20_fixed, "--reference", R20, "--inputs", npz], capsys)
    _refused(code, out, err, "0 samples")


@pytest.mark.parametrize("shape", ["1xx3x32x32", "x1x3x32x32", "1x3x32x32x", "1,3,32,32,", " 1x3x32x32x "])
def test_sloppy_shape_strings_are_refused(shape, r20_fixed, capsys):
    code, out, err = run(["validate", r20_fixed, "--reference", R20, "--input-shape", shape], capsys)
    _refused(code, out, err, "shape")


# ---- what users found confusing ---------------------------------------------------------------------
def test_bench_counts_simam_by_formula_like_export(user_dir, capsys):
    """The user's own SimAM class is not ours, so 'fused' cannot swap a kernel in, but bench must
    not claim there is no SimAM when export finds one."""
    spec = f"{user_dir / 'mynet.py'}:build"
    code, out, err = run(
        ["bench", spec, "--input-shape", "1x3x16x16", "--compare", "eager,fused", "--iters", "2",
         "--warmup", "0", "--device", "cpu", "--json", "-"],
        capsys,
    )  # fmt: skip
    assert code == 0, out + err
    notes = " ".join(json.loads(out)["notes"])
    assert "1 SimAM block(s) by formula" in notes and "no SimAM" not in notes, notes


def test_a_directory_as_model_or_checkpoint_is_called_a_directory(r20_fixed, tmp_path, capsys):
    folder = tmp_path / "looks-like.onnx"
    folder.mkdir()
    code, out, err = run(["validate", folder, "--reference", R20], capsys)
    _refused(code, out, err, "is a directory")
    code, out, err = run(["fuse", folder, "-o", tmp_path / "f.onnx"], capsys)
    _refused(code, out, err, "is a directory")
    ckpt = tmp_path / "weights.pth"
    ckpt.mkdir()
    code, out, err = run(["validate", r20_fixed, "--reference", R20, "--checkpoint", ckpt], capsys)
    _refused(code, out, err, "checkpoint", "is a directory")


def test_a_text_file_as_checkpoint_says_what_it_is(r20_fixed, tmp_path, capsys):
    ckpt = tmp_path / "weights.pth"
    ckpt.write_text("epoch 101, top-1 92.3\n")
    code, out, err = run(["validate", r20_fixed, "--reference", R20, "--checkpoint", ckpt], capsys)
    _refused(code, out, err, "not a PyTorch checkpoint", "torch.save")


@pytest.fixture(scope="module")
def r20_plugin_dynamic(tmp_path_factory) -> Path:
    """SimAM nodes, dynamic batch, H and W: what a user builds engines from."""
    return export_once(tmp_path_factory, "r20-plugin.onnx", "--dynamic", "all", "--mode", "plugin")


def test_build_refuses_a_profile_with_1x1_simam_planes(r20_plugin_dynamic, tmp_path, capsys):
    engine = tmp_path / "r20.engine"
    code, out, err = run(
        ["build", r20_plugin_dynamic, "-o", engine, "--shapes", "input=1x3x1x1:1x3x32x32:4x3x32x32"], capsys
    )
    _refused(code, out, err, "1x1 plane", "min profile")
    assert not engine.exists()


def test_build_takes_trtexec_min_opt_max_shapes(r20_plugin_dynamic, tmp_path, capsys):
    pytest.importorskip("tensorrt_rtx_bindings", reason="the RTX builder (make install) builds without a GPU")
    engine = tmp_path / "r20.engine"
    code, out, err = run(
        ["build", r20_plugin_dynamic, "-o", engine, "--runtime", "tensorrt-rtx",
         "--minShapes=input:1x3x32x32", "--optShapes=input:2x3x32x32", "--maxShapes=input:4x3x32x32",
         "--json", "-"],
        capsys,
    )  # fmt: skip
    assert code == 0, out + err
    assert json.loads(out)["profiles"] == {"input": [[1, 3, 32, 32], [2, 3, 32, 32], [4, 3, 32, 32]]}
    assert engine.stat().st_size > 0
    code, out, err = run(
        ["build", r20_plugin_dynamic, "-o", tmp_path / "b.engine", "--minShapes=input:1x3x32x32"], capsys
    )
    _refused(code, out, err, "--optShapes", "--maxShapes")


def test_triton_server_command_is_quoted_for_paths_with_spaces(r20_fixed, tmp_path, capsys):
    repo = tmp_path / "my models"
    code, out, err = run(["triton", r20_fixed, "-o", repo, "--json", "-"], capsys)
    assert code == 0, out + err
    command = json.loads(out)["server_command"]
    assert shlex.split(command) == ["tritonserver", f"--model-repository={repo.resolve()}"], command


def test_convert_json_has_the_envelope(r20_fixed, tmp_path, capsys):
    code, out, err = run(
        ["convert", r20_fixed, "--precision", "fp16", "-o", tmp_path / "h.onnx", "--json", "-"], capsys
    )
    assert code == 0, out + err
    report = json.loads(out)
    assert report["schema"] == "simam-deploy/convert/v1"
    assert report["inputs"] == {"onnx": str(r20_fixed)}
    assert report["outputs"] == {"onnx": str(tmp_path / "h.onnx"), "json": "-"}
    doc = (Path(__file__).parents[1] / "docs" / "cli-contract.md").read_text()
    assert "| `simam-deploy/convert/v1` |" in doc
