#!/usr/bin/env python3
"""Run the C++ test suite (CTest) of the build that ``pip install -e .`` produced in build/*/.

Called by ``make test`` after pytest. Runs every CTest test registered there: the TensorRT plugin
conformance harness when TensorRT headers were configured (``make test TENSORRT_ROOT=DIR``), and
any kernel C++ tests. When the plugin was not built it says so, and why, in one line. Exits
non-zero when a test fails or there is no build; the last line is CTest's own summary.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATUS_FILE = "simam_tensorrt_status.txt"
NO_TESTS_SUMMARY = "100% tests passed, 0 tests failed out of 0"


def _made_by_pip(cache: Path) -> bool:
    """scikit-build-core records SKBUILD in the cache; the sanitizer, fuzz and harness trees of
    make sanitize / make fuzz / make gpu-acceptance (also under build/) have none."""
    try:
        return any(line.startswith("SKBUILD:") for line in cache.read_text(errors="replace").splitlines())
    except OSError:
        return False


def find_build_dirs(build_root: Path) -> list[Path]:
    """CMake build trees made by scikit-build-core (build/<wheel tag>/), newest first."""
    trees = [cache.parent for cache in build_root.glob("*/CMakeCache.txt") if _made_by_pip(cache)]
    return sorted(trees, key=lambda tree: (tree / "CMakeCache.txt").stat().st_mtime, reverse=True)


def test_root(tree: Path) -> Path | None:
    """The shallowest directory of ``tree`` with a CTestTestfile.cmake (enable_testing() may be
    called below the top level)."""
    files = sorted(tree.rglob("CTestTestfile.cmake"), key=lambda f: len(f.relative_to(tree).parts))
    return files[0].parent if files else None


def tensorrt_status(tree: Path) -> str:
    status = tree / STATUS_FILE
    if not status.is_file():
        return "skipped: this build predates the TensorRT plugin's CMake step; reinstall (make install)"
    return status.read_text().strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--build-root", type=Path, default=REPO / "build", help="default: %(default)s")
    parser.add_argument("ctest_args", nargs="*", help="extra arguments for ctest (after --)")
    args = parser.parse_args(argv)

    ctest = shutil.which("ctest")
    if ctest is None:
        print(
            "run_ctest: ctest not found; install CMake (pip install cmake) to run the C++ tests",
            file=sys.stderr,
        )
        return 2
    trees = find_build_dirs(args.build_root)
    if not trees:
        print(
            f"run_ctest: no CMake build under {args.build_root}; run `make install` first",
            file=sys.stderr,
        )
        return 2
    tree = trees[0]

    trt = tensorrt_status(tree)
    if trt.startswith("built"):
        print(f"run_ctest: TensorRT plugin harness included ({trt.removeprefix('built: ')})")
    else:
        reason = trt.removeprefix("skipped: ")
        print(
            f"run_ctest: TensorRT plugin harness SKIPPED: {reason}. "
            "To run it: make test TENSORRT_ROOT=/path/to/TensorRT (a directory with include/NvInfer.h)"
        )

    root = test_root(tree)
    if root is None:
        print(f"run_ctest: no C++ tests are registered in {tree}")
        print(NO_TESTS_SUMMARY)
        return 0
    result = subprocess.run(
        [ctest, "--test-dir", str(root), "--output-on-failure", *args.ctest_args],
        check=False,
        capture_output=True,
        text=True,
    )
    output = result.stdout + result.stderr
    sys.stdout.write(output)
    if "No tests were found" in output:
        print(NO_TESTS_SUMMARY)
        return 0
    # End on CTest's summary line so it is the last thing a reader (or CI log) shows.
    summary = [line for line in output.splitlines() if "tests passed" in line]
    if summary:
        print(summary[-1])
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
