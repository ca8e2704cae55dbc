"""scripts/run_ctest.py runs the CTest of pip's build tree, never that of the other trees under build/
(make sanitize, make fuzz, the GPU acceptance's harness builds, the header matrix)."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("run_ctest", REPO / "scripts" / "run_ctest.py")
run_ctest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(run_ctest)


def test_only_trees_made_by_pip_are_chosen_newest_first(tmp_path):
    def tree(name: str, cache: str, mtime: int) -> Path:
        folder = tmp_path / name
        folder.mkdir()
        (folder / "CMakeCache.txt").write_text(cache)
        os.utime(folder / "CMakeCache.txt", (mtime, mtime))
        return folder

    old_pip = tree("cp312-cp312-linux_x86_64", "CMAKE_BUILD_TYPE:STRING=Release\nSKBUILD:STRING=2\n", 1000)
    new_pip = tree("cp313-cp313-linux_x86_64", "SKBUILD:STRING=2\n", 2000)
    tree("sanitize-gcc", "CMAKE_BUILD_TYPE:STRING=Debug\nSIMAM_SANITIZE:BOOL=ON\n", 3000)
    tree("fuzz", "SIMAM_FUZZ:BOOL=ON\n", 4000)
    assert run_ctest.find_build_dirs(tmp_path) == [new_pip, old_pip]
