#!/usr/bin/env python3
"""Compile the CUDA kernels to a cubin per GPU architecture and check ptxas' resource usage.

    python scripts/cubin_resources.py                      # the kernel library's .cu files, CI's list
    python scripts/cubin_resources.py --arch 87 --arch 110 --markdown

For every kernel and architecture it reads registers, shared memory, stack frame and spill bytes
from ``nvcc -cubin --resource-usage``. Any spill or local stack frame fails the check: on these
kernels either means local memory traffic in the hot loop (a regression to find, not to ship).
Prints one table (registers per kernel per architecture, so a reader can work out occupancy);
``--markdown`` prints it as the table in docs/jetson.md.

Exit codes: 0 clean, 1 a spill / stack frame / compile failure, 2 no nvcc or bad arguments.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# The CUDA translation units of the kernel library: NCHW kernels, NHWC (channel-last) kernels.
SOURCES = [REPO / "plugins" / "simam" / "simam_cuda.cu", REPO / "plugins" / "simam" / "simam_cuda_nhwc.cu"]
# The default list of plugins/CMakeLists.txt under CUDA 13 (Turing .. Hopper, Orin sm_87) plus
# Thor (sm_110, CUDA 13's name for it). CUDA 13 has no sm_72 (Xavier).
ARCHS = ["75", "80", "86", "87", "89", "90", "110"]

_ENTRY = re.compile(r"Compiling entry function '([^']+)' for 'sm_(\w+)'")
_FRAME = re.compile(r"(\d+) bytes stack frame, (\d+) bytes spill stores, (\d+) bytes spill loads")
_USED = re.compile(r"Used (\d+) registers(?:.*?(\d+) bytes smem)?")


@dataclass
class Usage:
    kernel: str
    arch: str
    registers: int = 0
    smem: int = 0
    stack: int = 0
    spill_stores: int = 0
    spill_loads: int = 0

    @property
    def clean(self) -> bool:
        return self.stack == 0 and self.spill_stores == 0 and self.spill_loads == 0


def parse_ptxas(text: str) -> list[Usage]:
    """Per-kernel usage from ptxas' ``--resource-usage`` lines (mangled names)."""
    found: list[Usage] = []
    current: Usage | None = None
    for line in text.splitlines():
        if m := _ENTRY.search(line):
            current = Usage(kernel=m.group(1), arch=m.group(2))
            found.append(current)
        elif current is not None and (m := _FRAME.search(line)):
            current.stack, current.spill_stores, current.spill_loads = (int(g) for g in m.groups())
        elif current is not None and (m := _USED.search(line)):
            current.registers = int(m.group(1))
            current.smem = int(m.group(2) or 0)
    return found


def demangle(names: list[str], nvcc: str) -> dict[str, str]:
    """Readable kernel names: cu++filt (beside nvcc) or c++filt, without the anonymous namespace."""
    tool = shutil.which("cu++filt", path=str(Path(nvcc).resolve().parent)) or shutil.which("c++filt")
    readable = names
    if tool and names:
        out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True, check=False)
        if out.returncode == 0 and len(out.stdout.splitlines()) == len(names):
            readable = out.stdout.splitlines()
    cleaned = [re.sub(r"^void |\(anonymous namespace\)::", "", n) for n in readable]
    cleaned = [
        re.sub(r"\(.*\)$", "", n).replace("__nv_bfloat16", "bf16").replace("__half", "half") for n in cleaned
    ]
    return dict(zip(names, cleaned, strict=True))


def compile_arch(
    nvcc: str, source: Path, arch: str, extra: list[str], workdir: Path
) -> tuple[list[Usage], str | None]:
    command = [nvcc, "-cubin", f"-arch=sm_{arch}", "-O3", "-std=c++17", f"-I{source.parent}"]
    cubin = workdir / f"{source.stem}_sm_{arch}.cubin"
    command += ["--resource-usage", *extra, str(source), "-o", str(cubin)]
    out = subprocess.run(command, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return (
            [],
            f"nvcc failed for {source.name} sm_{arch} (exit {out.returncode}):\n{out.stderr.strip()[-2000:]}",
        )
    usage = parse_ptxas(out.stdout + out.stderr)
    if not usage:
        return [], f"no kernel found in ptxas' output for sm_{arch} (is {source.name} a CUDA source?)"
    return usage, None


def table(usages: list[Usage], archs: list[str], names: dict[str, str], markdown: bool) -> str:
    kernels = sorted({u.kernel for u in usages}, key=lambda k: names[k])
    cell = {(u.kernel, u.arch): u for u in usages}
    header = ["kernel", *(f"sm_{a}" for a in archs)]
    rows = []
    for k in kernels:
        row = [names[k]]
        for a in archs:
            u = cell.get((k, a))
            row.append("-" if u is None else f"{u.registers}" + ("" if u.clean else " !"))
        rows.append(row)
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += [
            "| " + " | ".join(f"`{r[0]}`" if i == 0 else c for i, c in enumerate(r)) + " |" for r in rows
        ]
        return "\n".join(lines)
    width = max(len(r[0]) for r in [header, *rows])
    fmt = f"{{:<{width}}}" + "  {:>7}" * len(archs)
    return "\n".join(fmt.format(*r) for r in [header, *rows])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--source",
        type=Path,
        action="append",
        help=f"CUDA source, repeatable (default: {' '.join(str(s.relative_to(REPO)) for s in SOURCES)})",
    )
    parser.add_argument(
        "--arch", action="append", help=f"sm_XX number, repeatable (default: {' '.join(ARCHS)})"
    )
    parser.add_argument("--nvcc", default=None, help="nvcc to use (default: the one on PATH)")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument("--jobs", type=int, default=2, help="nvcc processes at once (default: %(default)s)")
    parser.add_argument(
        "nvcc_args", nargs="*", help="more nvcc arguments after --, e.g. -D... -maxrregcount=N"
    )
    args = parser.parse_args(argv)

    sources: list[Path] = args.source or SOURCES
    missing = [str(s) for s in sources if not s.is_file()]
    if missing:
        print(f"cubin_resources: no such CUDA source: {', '.join(missing)}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"cubin_resources: --jobs must be >= 1 (got {args.jobs})", file=sys.stderr)
        return 2
    archs = args.arch or ARCHS
    bad_arch = [a for a in archs if not re.fullmatch(r"\d+[af]?", a)]
    if bad_arch:
        print(f"cubin_resources: --arch takes numbers like 87 (got {', '.join(bad_arch)})", file=sys.stderr)
        return 2

    nvcc = shutil.which(args.nvcc or "nvcc")
    if nvcc is None:
        where = f"--nvcc {args.nvcc} is not an executable" if args.nvcc else "no nvcc on PATH"
        print(f"cubin_resources: {where}: install the CUDA toolkit or pass --nvcc PATH", file=sys.stderr)
        return 2

    usages: list[Usage] = []
    errors: list[str] = []
    with tempfile.TemporaryDirectory(prefix="simam-cubin-") as tmp, ThreadPoolExecutor(args.jobs) as pool:
        # One nvcc per (source, architecture); results are collected in submission order.
        jobs = [
            pool.submit(compile_arch, nvcc, source, arch, args.nvcc_args, Path(tmp))
            for source in sources
            for arch in archs
        ]
        for job in jobs:
            found, error = job.result()
            usages += found
            if error:
                errors.append(error)
    names = demangle(sorted({u.kernel for u in usages}), nvcc)
    if usages:
        legend = "no spills, no stack frames" if all(u.clean for u in usages) else "! = spills or stack frame"
        print(f"registers per thread, {', '.join(s.name for s in sources)} ({legend}):")
        print(table(usages, archs, names, args.markdown))
    for u in usages:
        if not u.clean:
            errors.append(
                f"{names[u.kernel]} on sm_{u.arch}: {u.stack} bytes stack frame, "
                f"{u.spill_stores} bytes spill stores, {u.spill_loads} bytes spill loads"
            )
    kernels = len({u.kernel for u in usages})
    if errors:
        print("cubin_resources: FAIL:\n  " + "\n  ".join(errors), file=sys.stderr)
        return 1
    print(f"cubin_resources: {kernels} kernels x {len(archs)} architectures: 0 spills, 0 stack bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
