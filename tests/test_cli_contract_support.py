"""Shared material for the CLI-contract tests (no tests here): real model files exported once per
session, real read-only and full file systems (tmpfs mounts, where this process may mount), and the
checks every run must satisfy."""

from __future__ import annotations

import contextlib
import hashlib
import os
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from simam_deploy.fileio import current_umask
from tests import cli_runner

# A user's own network file, as users write them: its own SimAM class (found by formula), a
# factory, an inputs callable, and factories that fail in each way user code can.
USER_NET = textwrap.dedent(
    """
    import sys

    import torch
    from torch import nn


    class SimAM(nn.Module):
        def forward(self, x):
            n = x.shape[2] * x.shape[3] - 1
            d = (x - x.mean(dim=[2, 3], keepdim=True)).pow(2)
            return x * torch.sigmoid(d / (4 * (d.sum(dim=[2, 3], keepdim=True) / n + 1e-4)) + 0.5)


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3, padding=1)
            self.simam = SimAM()
            self.head = nn.Linear(4, 5)

        def forward(self, x):
            return self.head(self.simam(self.conv(x)).mean(dim=[2, 3]))


    class Raises(Net):
        def forward(self, x):
            raise ValueError("my forward is broken")


    class ReturnsText(Net):
        def forward(self, x):
            return "not a tensor"


    def build():
        torch.manual_seed(0)
        return Net()


    def build_raising():
        torch.manual_seed(0)
        return Raises()


    def build_text():
        torch.manual_seed(0)
        return ReturnsText()


    def build_exits():
        sys.exit(0)


    def batches():
        torch.manual_seed(1)
        return [{"input": torch.randn(2, 3, 16, 16)}]


    def batches_exit():
        raise SystemExit(0)
    """
)


def run(args: list[str], capsys) -> tuple[int, str, str]:
    """In-process `simam-deploy ARGS` (faithful: same main(), same handler, same exit path)."""
    capsys.readouterr()  # drop anything an earlier run left
    return cli_runner.run_cli([str(a) for a in args], capsys)


def export_once(tmp_path_factory, name: str, *extra: str) -> Path:
    out = tmp_path_factory.mktemp("contract") / name
    code = cli_runner.exit_code("export", "cifar-resnet20", "-o", str(out), "--opset", "17", *extra)
    assert code == 0 and out.is_file()
    return out


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(paths: list[Path]) -> dict[Path, str]:
    return {p: digest(p) for p in paths if p.is_file()}


def stray_temporaries(*folders: Path) -> list[Path]:
    """Hidden temporary files our atomic writer would leave behind (.NAME.xxxx[.suffix].tmp)."""
    found = []
    for folder in folders:
        if folder.is_dir():
            found += [p for p in folder.rglob(".*") if p.name.endswith(".tmp")]
    return found


def expected_mode() -> int:
    return 0o666 & ~current_umask()


def assert_contract(code: int, out: str, err: str, inputs: dict[Path, str], folders: list[Path]) -> None:
    """What every run must satisfy, whatever the input."""
    assert code in (0, 1, 2), f"exit code {code}\n{out}\n{err}"
    assert "Traceback" not in out + err, out + err
    for path, before in inputs.items():
        assert path.is_file() and digest(path) == before, f"input {path} changed"
    assert not stray_temporaries(*folders), stray_temporaries(*folders)


def _mount_tmpfs(target: Path, options: str) -> bool:
    target.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True, text=True
    )
    return result.returncode == 0


def _umount(target: Path) -> None:
    subprocess.run(["umount", str(target)], capture_output=True)


@contextlib.contextmanager
def read_only_dir() -> Iterator[Path]:
    """A directory that is read-only for everyone, root included: an empty read-only tmpfs.

    chmod is not enough (root ignores permission bits), so without mount rights the test skips."""
    base = Path(tempfile.mkdtemp(prefix="simam-ro-"))
    target = base / "ro"
    if not _mount_tmpfs(target, "ro,size=64k"):
        pytest.skip(
            "cannot mount a read-only tmpfs here (needs root / CAP_SYS_ADMIN); chmod does not bind root"
        )
    try:
        yield target
    finally:
        _umount(target)
        target.rmdir()
        base.rmdir()


@contextlib.contextmanager
def full_dir() -> Iterator[Path]:
    """A real full disk: a small tmpfs filled to the last byte, so every write fails with ENOSPC."""
    base = Path(tempfile.mkdtemp(prefix="simam-full-"))
    target = base / "full"
    if not _mount_tmpfs(target, "size=64k"):
        pytest.skip("cannot mount a small tmpfs here (needs root / CAP_SYS_ADMIN) for a real ENOSPC")
    try:
        with contextlib.suppress(OSError), open(target / "filler", "wb") as filler:
            while True:
                filler.write(b"\0" * 4096)
                filler.flush()
        yield target
    finally:
        _umount(target)
        target.rmdir()
        base.rmdir()


def mounts_allowed() -> bool:
    """Whether this process may mount tmpfs (root with CAP_SYS_ADMIN)."""
    if os.geteuid() != 0:
        return False
    probe = Path(tempfile.mkdtemp(prefix="simam-probe-"))
    ok = _mount_tmpfs(probe, "size=4k")
    if ok:
        _umount(probe)
    probe.rmdir()
    return ok
