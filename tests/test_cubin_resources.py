"""scripts/cubin_resources.py, the CI check on every cubin, against real nvcc/ptxas output: a kernel
that spills or keeps a local stack frame must fail it; a clean one must pass."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "cubin_resources.py"
PROBE = REPO / "plugins" / "simam" / "tests" / "cubin_spill_probe.cu"

needs_nvcc = pytest.mark.skipif(
    shutil.which("nvcc") is None, reason="no nvcc on PATH: the cubin check needs the CUDA toolkit"
)


def check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False, timeout=300
    )


@needs_nvcc
def test_clean_kernel_passes_with_its_register_count():
    out = check("--source", str(PROBE), "--arch", "87")
    assert out.returncode == 0, out.stderr
    row = next(line for line in out.stdout.splitlines() if line.startswith("probe_spill_kernel"))
    registers = int(row.split()[1])
    assert 16 < registers <= 255
    assert "1 kernels x 1 architectures: 0 spills, 0 stack bytes" in out.stdout


@needs_nvcc
def test_spilling_variant_fails():
    out = check("--source", str(PROBE), "--arch", "87", "--", "-maxrregcount=16")
    assert out.returncode == 1, out.stdout + out.stderr
    line = next(line for line in out.stderr.splitlines() if "probe_spill_kernel on sm_87" in line)
    stores = int(line.split("bytes spill stores")[0].split(",")[-1])
    assert stores > 0


@needs_nvcc
def test_local_stack_frame_fails():
    out = check("--source", str(PROBE), "--arch", "87", "--", "-DSIMAM_PROBE_STACK")
    assert out.returncode == 1, out.stdout + out.stderr
    line = next(line for line in out.stderr.splitlines() if "probe_stack_kernel on sm_87" in line)
    assert int(line.split(": ")[1].split(" bytes stack frame")[0]) > 0


@needs_nvcc
def test_compile_error_fails_naming_the_architecture(tmp_path):
    broken = tmp_path / "broken.cu"
    broken.write_text("__global__ void k(float* p) { p[0] = undefined_name; }\n")
    out = check("--source", str(broken), "--arch", "87")
    assert out.returncode == 1
    assert "nvcc failed for broken.cu sm_87" in out.stderr and "undefined_name" in out.stderr


def test_usage_errors_exit_2(tmp_path):
    out = check("--source", str(tmp_path / "missing.cu"), "--arch", "87")
    assert out.returncode == 2 and "no such CUDA source" in out.stderr
    out = check("--arch", "sm87")
    assert out.returncode == 2 and "--arch takes numbers" in out.stderr
    out = check("--nvcc", str(tmp_path / "nvcc"))
    assert out.returncode == 2 and "is not an executable" in out.stderr


def test_jobs_below_one_is_a_usage_error():
    out = check("--jobs", "0")
    assert out.returncode == 2 and "--jobs must be >= 1" in out.stderr
