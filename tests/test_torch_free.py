"""Parity on the device without torch: the CLI runs in a process where ``import torch`` fails (a
meta-path blocker installed by sitecustomize), as on a Jetson with TensorRT and numpy but no torch.

ONNX: a real ONNX Runtime run against outputs saved on the host, a real PASS and a real FAIL.
Engine: built here with the TensorRT for RTX builder, then validated torch-free up to the point
where a GPU is needed; the error says so (exit 2, no traceback)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tests.test_saved_reference import _perturbed_copy

BLOCKER = textwrap.dedent(
    """
    import os
    import sys

    BLOCKED = os.environ["SIMAM_TEST_NO_IMPORT"].split(",")

    class _Absent:
        # a Jetson without torch (and without what only the host needs): these imports fail
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"No module named {name!r} (blocked: torch-free test)")
            return None

    sys.meta_path.insert(0, _Absent())
    """
)
# What the device path must not need: torch, and the host-side tools (graph surgery, the exporter's
# helpers, plots, images, progress bars). numpy, onnx, click, rich and ONNX Runtime (for .onnx) or
# TensorRT + cuda-python (for engines) are what remains: the install docs/jetson.md lists.
HOST_ONLY = ("torch", "onnx_graphsurgeon", "onnxscript", "onnxslim", "matplotlib", "PIL", "tqdm")


def _env(tmp_path_factory, blocked: tuple[str, ...]) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("blocked")
    (folder / "sitecustomize.py").write_text(BLOCKER)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(folder)
    env["SIMAM_TEST_NO_IMPORT"] = ",".join(blocked)
    probe = (
        "import importlib\nfor name in {names!r}:\n    try:\n        importlib.import_module(name)\n"
        "    except ImportError as exc:\n        print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe.format(names=blocked)], env=env, capture_output=True, text=True
    )
    assert done.stdout.count("blocked: torch-free test") == len(blocked), done.stdout  # the blocker works
    return env


@pytest.fixture(scope="module")
def no_torch_env(tmp_path_factory):
    return _env(tmp_path_factory, HOST_ONLY)


@pytest.fixture(scope="module")
def engine_env(tmp_path_factory):
    """An engine needs neither torch nor ONNX Runtime."""
    return _env(tmp_path_factory, (*HOST_ONLY, "onnxruntime"))


def cli(env, *args: str) -> subprocess.CompletedProcess:
    code = "import sys; from simam_deploy.cli.main import main; main(sys.argv[1:])"
    return subprocess.run(
        [sys.executable, "-c", code, *args], env=env, capture_output=True, text=True, timeout=300
    )


def _no_traceback(done: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in done.stderr, done.stderr


DEVICE_PATH = (
    "simam_deploy",
    "simam_deploy.cli.main",
    "simam_deploy.cli.validate_cmd",
    "simam_deploy.validate",
    "simam_deploy.inputs",
    "simam_deploy.parity",
    "simam_deploy.saved_reference",
    "simam_deploy.backends.onnxruntime.runner",
    "simam_deploy.backends.tensorrt.runner",
    "simam_deploy.backends.tensorrt.device",
)


def test_every_module_on_the_device_path_imports_without_torch(engine_env):
    code = "import importlib, sys\nfor name in sys.argv[1:]:\n    importlib.import_module(name)\n"
    done = subprocess.run(
        [sys.executable, "-c", code, *DEVICE_PATH], env=engine_env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


def test_help_works_without_torch(no_torch_env):
    top = cli(no_torch_env, "--help")
    assert top.returncode == 0 and "validate" in top.stdout, top.stderr
    sub = cli(no_torch_env, "validate", "--help")
    assert sub.returncode == 0 and "--reference-outputs" in sub.stdout, sub.stderr


def test_onnx_parity_against_saved_outputs_without_torch(no_torch_env, saved_r20, tmp_path):
    onnx_path, io = saved_r20
    ok = cli(no_torch_env, "validate", str(onnx_path), "--reference-outputs", str(io), "--json", "-")
    assert ok.returncode == 0, ok.stderr
    data = json.loads(ok.stdout)
    assert data["passed"] is True and data["target_backend"] == "onnxruntime"
    assert data["reference_outputs"]["format"] == "simam-deploy"

    poly = cli(
        no_torch_env, "validate", str(onnx_path), "--reference-outputs", str(io / "outputs.json"),
        "--load-inputs", str(io / "inputs.json"), "--json", "-",
    )  # fmt: skip
    assert poly.returncode == 0, poly.stderr
    assert json.loads(poly.stdout)["reference_outputs"]["format"] == "polygraphy"

    bad = _perturbed_copy(io, tmp_path)
    fail = cli(no_torch_env, "validate", str(onnx_path), "--reference-outputs", str(bad), "--json", "-")
    assert fail.returncode == 1, fail.stderr
    assert json.loads(fail.stdout)["passed"] is False
    assert "FAIL" in fail.stderr
    _no_traceback(fail)


def test_a_live_reference_without_torch_is_an_environment_error_not_a_traceback(no_torch_env, saved_r20):
    onnx_path, _ = saved_r20
    done = cli(no_torch_env, "validate", str(onnx_path), "--reference", "cifar-resnet20")
    assert done.returncode == 2, done.stderr
    _no_traceback(done)
    assert "torch cannot be imported" in done.stderr and "--reference-outputs" in done.stderr


HAVE_RTX = importlib.util.find_spec("tensorrt_rtx_bindings") is not None
HAVE_CUDA_PYTHON = (
    any(importlib.util.find_spec(name) is not None for name in ("cuda.bindings", "cuda.cudart"))
    if importlib.util.find_spec("cuda") is not None
    else False
)


@pytest.mark.skipif(not HAVE_RTX, reason="TensorRT for RTX is not installed (EXTRAS=dev,trt-rtx)")
def test_an_rtx_engine_validates_torch_free_up_to_the_gpu(engine_env, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the engine would run; this checks the message without one")
    from simam_deploy.backends.tensorrt import build_engine
    from simam_deploy.export import export_onnx
    from simam_deploy.inputs import save_tensors
    from simam_deploy.nn import SimAM

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, padding=1), SimAM(1e-4)).eval()
    onnx_path, engine = tmp_path / "m.onnx", tmp_path / "m.engine"
    export_onnx(model, onnx_path, opset=17, input_shape=(1, 3, 8, 8), exporter="torchscript")
    build_engine(onnx_path, engine, "fp32", ["input=1x3x8x8:1x3x8x8:2x3x8x8"], runtime="tensorrt-rtx")
    x = np.random.default_rng(0).standard_normal((1, 3, 8, 8)).astype(np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).numpy()
    save_tensors(tmp_path / "io", inputs={"input": x}, outputs={"output": y})

    done = cli(engine_env, "validate", str(engine), "--reference-outputs", str(tmp_path / "io"))
    assert done.returncode == 2, done.stderr
    _no_traceback(done)
    assert "need an NVIDIA GPU" in done.stderr
    if HAVE_CUDA_PYTHON:  # the device buffers came from cuda-python, not torch: it got as far as the GPU
        assert "cuda-python sees none" in done.stderr
