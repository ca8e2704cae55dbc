"""scripts/jetpack_profile.sh (make plugin JETPACK=...) against the real TensorRT header sets that
each JetPack ships (../shared/third_party/tensorrt-headers) and the real nvcc."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "jetpack_profile.sh"
HEADERS = REPO.parent / "shared" / "third_party" / "tensorrt-headers"

needs_headers = pytest.mark.skipif(
    not (HEADERS / "10.13" / "include" / "NvInferVersion.h").is_file(),
    reason=f"no TensorRT header sets at {HEADERS} (CI has them beside the clone)",
)


def nvcc_major() -> int | None:
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        return None
    out = subprocess.run([nvcc, "--version"], capture_output=True, text=True, check=False).stdout
    release = out.split("release ")[1].split(",")[0] if "release " in out else ""
    return int(release.split(".")[0]) if release else None


def profile(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, check=False, env=env)


@needs_headers
@pytest.mark.skipif(nvcc_major() != 13, reason="JetPack 7.0's profile needs a CUDA 13 nvcc on PATH")
def test_jetpack_7_picks_thor_with_its_headers():
    out = profile("7.0", str(HEADERS / "10.13"))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "110"
    assert "TensorRT 10.13.0 headers" in out.stderr


@needs_headers
@pytest.mark.parametrize(
    ("jetpack", "wrong", "wanted"),
    [("7.0", "10.3", "10.13"), ("6.2", "8.6", "10.3"), ("6.0", "10.3", "8.6"), ("5.1", "8.6", "8.5")],
)
def test_other_tensorrt_headers_are_refused(jetpack, wrong, wanted):
    out = profile(jetpack, str(HEADERS / wrong))
    assert out.returncode == 2
    assert f"JetPack {jetpack} ships TensorRT {wanted}, but the headers" in out.stderr
    assert f"are TensorRT {wrong}." in out.stderr and "Set TENSORRT_ROOT" in out.stderr
    assert out.stdout == ""


@needs_headers
@pytest.mark.skipif(nvcc_major() != 13, reason="needs a CUDA 13 nvcc on PATH (the mismatch shown)")
@pytest.mark.parametrize(("jetpack", "headers", "cuda"), [("5.1", "8.5", "11"), ("6.2", "10.3", "12")])
def test_nvcc_of_another_cuda_major_is_refused(jetpack, headers, cuda):
    out = profile(jetpack, str(HEADERS / headers))
    assert out.returncode == 2
    assert f"JetPack {jetpack} ships CUDA {cuda}.x, but" in out.stderr and "CUDACXX" in out.stderr


def test_unknown_jetpack_and_missing_headers(tmp_path):
    out = profile("5.0")
    assert out.returncode == 2 and "unknown JETPACK=5.0: known 5.1, 6.0, 6.1, 6.2, 7.0" in out.stderr
    out = profile("6.2", str(tmp_path))
    assert out.returncode == 2 and "no NvInferVersion.h" in out.stderr and "TENSORRT_ROOT" in out.stderr
    (tmp_path / "include").mkdir()
    (tmp_path / "include" / "NvInferVersion.h").write_text("// not TensorRT's\n")
    out = profile("6.2", str(tmp_path))
    assert out.returncode == 2 and "names no TensorRT version" in out.stderr
    out = profile()
    assert out.returncode == 2 and "make plugin JETPACK" in out.stderr


@needs_headers
def test_missing_nvcc_is_named(tmp_path):
    out = profile(
        "7.0", str(HEADERS / "10.13"), env={"PATH": "/usr/bin:/bin", "CUDACXX": str(tmp_path / "nvcc")}
    )
    assert out.returncode == 2 and "no working nvcc" in out.stderr
