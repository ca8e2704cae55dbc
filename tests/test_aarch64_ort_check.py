"""scripts/aarch64_ort_check.py (make cross-aarch64-ort) refuses a missing emulator set-up with exit 2
naming each missing piece; the run itself is CI's `make cross-aarch64`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "aarch64_ort_check.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, check=False)


def test_missing_pieces_are_named(tmp_path):
    out = run(
        "--ops-lib", str(tmp_path / "libsimam_ort_ops.so"), "--work", str(tmp_path / "w"),
        "--python", str(tmp_path / "python3.11"), "--sysroot", str(tmp_path),
        "--site", str(tmp_path / "site"),
    )  # fmt: skip
    assert out.returncode == 2
    for piece in ("libsimam_ort_ops.so does not exist", "python3.11 does not exist", "site does not exist"):
        assert piece in out.stderr
    assert "proc/cpuinfo" in out.stderr and "make cross-aarch64-ort" in out.stderr
    assert not (tmp_path / "w").exists()


def test_host_side_needs_the_emulator_settings(tmp_path):
    out = run("--ops-lib", str(tmp_path / "x.so"), "--work", str(tmp_path / "w"))
    assert out.returncode == 2 and "the host side needs --python, --sysroot, --site" in out.stderr
