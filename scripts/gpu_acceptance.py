#!/usr/bin/env python3
"""The GPU acceptance in one call, for a lent GPU machine (H100/H200, Python 3.12, torch with CUDA,
nvcc, compute-sanitizer, CMake, ninja, onnx, CPU onnxruntime; no TensorRT library, no network).

    make gpu-acceptance OUT=DIR        (= python3 scripts/gpu_acceptance.py --out DIR)
    make gpu-acceptance-dry-run        (CPU: the plan, the report schema, the wheel list)

Steps, each with its own timeout inside one overall budget (default 470 s, under 8 minutes);
a step that fails is recorded and the rest still run:
  wheels      pip-installs the pinned wheels that travel with the tree (scripts/gpu_wheels.txt,
              fetched beforehand by `make gpu-wheels` into build/gpu-wheels) without network
  build       builds the extension in place for sm_90 (pip install -e ., CMake tree in build/),
              which also builds the CUDA kernel test binary and the op library
  kernel      the CUDA kernel test binary (every launch path against the CPU kernel)
  memcheck, racecheck, synccheck, initcheck
              compute-sanitizer's four tools over that binary
  kernel-nhwc the channel-last (NHWC, kHWC8/kHWC16 strides) kernel test binary against the CPU
              path, every dtype x stride x epilogue x path; memcheck-nhwc .. initcheck-nhwc: the
              four tools over it
  bench-nhwc  that binary's --bench: NHWC fp16 at ResNet-50 shapes beside a device-to-device copy
              of the same bytes (DIR/bench_nhwc.json)
  harness     the TensorRT plugin's enqueue through its harness (V3 with >= 10 headers, V2 with
              8.x headers) for the header sets of --trt-headers, else those staged by
              `make gpu-headers` in build/gpu-trt-headers; the harness needs only headers
  gpu-tests   pytest -m gpu: launch-path parity against the float64 reference, the torch op,
              torch.compile
  bench       simam-deploy bench --kernel on the GPU: eager, torch.compile and the fused op beside
              a device-to-device copy of the same bytes, fp32/fp16/bf16 (JSON + the one PNG plot)
  bench-epilogue
              simam-deploy bench --kernel --epilogue: the block relu(simam(x)*scale[c]+bias[c]+r)
              eager, under torch.compile and as the one fused op, fp16, ResNet-50's SimAM shapes
              at batch 32 (DIR/bench_epilogue.json; issue 25's target)
Writes DIR/gpu_acceptance.json (schema below, checked before writing), DIR/gpu_acceptance.png and
one log per step under DIR/logs/. Exit status: 0 all steps passed, 1 a step failed or a target
was missed, 2 bad arguments.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SCHEMA_ID = "simam-deploy/gpu-acceptance/2"  # 2: benchmark_epilogue, targets name their issue
WHEEL_LIST = REPO / "scripts" / "gpu_wheels.txt"
DEFAULT_WHEELS = REPO / "build" / "gpu-wheels"
# TensorRT header sets staged by `make gpu-headers` (ignored, carried like the wheels): the harness
# needs only headers, and the lent machine has no TensorRT.
STAGED_HEADERS = REPO / "build" / "gpu-trt-headers"
WHEEL_LIMIT_BYTES = 64 * 1024 * 1024  # what may travel with the working tree
# Under 8 minutes, so that a lent machine's start and one rerun fit its 15 minutes of device time.
DEFAULT_BUDGET_S = 470.0
# What must have passed for the acceptance to pass (the rest may be skipped for a stated reason).
GPU_BINARY_STEPS = ("kernel", "memcheck", "racecheck", "synccheck", "initcheck")
# The same over the channel-last kernels' binary, plus its benchmark.
NHWC_STEPS = (*(f"{s}-nhwc" for s in GPU_BINARY_STEPS), "bench-nhwc")
REQUIRED_STEPS = ("build", *GPU_BINARY_STEPS, "gpu-tests", "bench", "bench-epilogue", *NHWC_STEPS)
# Test binaries of the kernel library, by their placeholder in a step's command (filled in after
# the build: the wheel tag names the tree).
KERNEL_BINARIES = {"{kernel_bin}": "simam_kernel_cuda_tests", "{nhwc_bin}": "simam_kernel_cuda_nhwc_tests"}
STATUSES = ("planned", "passed", "failed", "timed_out", "skipped")
SANITIZER_TOOLS = ("memcheck", "racecheck", "synccheck", "initcheck")
# ResNet-50's first and third stage at batch 32, ResNet-20's first stage at batch 64.
BENCH_SHAPES = ("32x256x56x56", "32x1024x14x14", "64x16x32x32")
# The SimAM inputs of ResNet-50 at batch 32 (every stage) for the fused block of issue 25.
EPILOGUE_SHAPES = ("32x256x56x56", "32x512x28x28", "32x1024x14x14", "32x2048x7x7")
# Both benchmarks' iterations (the CLI's GPU default is 20 / 200): medians of 100 are steady on a
# GPU, and the halved count keeps the whole run under its 8-minute budget; torch.compile's
# compilations, one per case, take most of either step anyway.
BENCH_WARMUP, BENCH_ITERS = 10, 100
# Every launch path against the float64 reference, the torch op on CUDA tensors, torch.compile.
GPU_TEST_FILES = ("tests/test_kernel_gpu.py",)
# The issues' GPU targets: name -> (threshold, goal, issue, the benchmark judged). Issue 24: the
# fused SimAM kernel vs the same run's copy / eager / torch.compile ("benchmark"); issue 25: the fused
# SimAM + epilogue kernel vs torch.compile of the same decomposed block ("benchmark_epilogue").
TARGETS = {
    "fraction_of_copy": (
        0.85,
        "fused >= 85% of a device-to-device copy of the same bytes (every case)",
        24,
        "benchmark",
    ),
    "speedup_vs_eager": (5.0, "fused >= 5x eager decomposed SimAM (every case)", 24, "benchmark"),
    "speedup_vs_compile": (
        1.2,
        "fused >= 1.2x torch.compile of the decomposed SimAM (every case)",
        24,
        "benchmark",
    ),
    "epilogue_speedup_vs_compile": (
        1.2,
        "fused SimAM+epilogue >= 1.2x torch.compile of the decomposed block relu(simam(x)*scale+bias+r), "
        "fp16, ResNet-50 shapes (every case)",
        25,
        "benchmark_epilogue",
    ),
}


# ---- the report's schema: a small checker, so the lent machine needs no jsonschema -------------
NUM = (int, float)
OPT_NUM = (int, float, type(None))
OPT_STR = (str, type(None))
STEP_SCHEMA = {
    "name": str,
    "command": list,
    "timeout_s": NUM,
    "status": str,
    "rc": (int, type(None)),
    "wall_s": OPT_NUM,
    "reason": OPT_STR,
    "log": OPT_STR,
}
TARGET_SCHEMA = {"goal": str, "issue": int, "threshold": NUM, "worst": OPT_NUM, "met": (bool, type(None))}
REPORT_SCHEMA = {
    "schema": str,
    "created": str,
    "dry_run": bool,
    "machine": dict,
    "budget_s": NUM,
    "wall_s": NUM,
    "steps": list,
    "benchmark": (dict, type(None)),
    "benchmark_epilogue": (dict, type(None)),
    "targets": dict,
    "plot": OPT_STR,
    "passed": bool,
}
MACHINE_KEYS = ("gpu", "python", "torch", "cuda", "nvcc", "platform")


def _check_fields(obj: Any, schema: dict[str, Any], where: str) -> list[str]:
    if not isinstance(obj, dict):
        return [f"{where}: expected an object, got {type(obj).__name__}"]
    errors = [f"{where}: missing key '{k}'" for k in schema if k not in obj]
    errors += [f"{where}: unexpected key '{k}'" for k in obj if k not in schema]
    for key, kind in schema.items():
        if key in obj and not isinstance(obj[key], kind):
            errors.append(f"{where}.{key}: {type(obj[key]).__name__} is not {kind}")
        if key in obj and isinstance(obj[key], bool) and kind in (NUM, OPT_NUM):
            errors.append(f"{where}.{key}: a boolean where a number belongs")
    return errors


def validate_report(report: Any) -> list[str]:
    """Every way ``report`` departs from the schema (empty: valid)."""
    errors = _check_fields(report, REPORT_SCHEMA, "report")
    if errors:
        return errors
    if report["schema"] != SCHEMA_ID:
        errors.append(f"report.schema: '{report['schema']}' is not '{SCHEMA_ID}'")
    for key in MACHINE_KEYS:
        if not isinstance(report["machine"].get(key), OPT_STR):
            errors.append(f"report.machine.{key}: missing or not a string/null")
    names = set()
    for i, step in enumerate(report["steps"]):
        errors += _check_fields(step, STEP_SCHEMA, f"report.steps[{i}]")
        if isinstance(step, dict):
            if step.get("status") not in STATUSES:
                errors.append(f"report.steps[{i}].status: '{step.get('status')}' not in {STATUSES}")
            if step.get("name") in names:
                errors.append(f"report.steps[{i}].name: '{step.get('name')}' repeated")
            names.add(step.get("name"))
            if step.get("status") in ("skipped", "failed", "timed_out") and not step.get("reason"):
                errors.append(f"report.steps[{i}]: a {step.get('status')} step must say why (reason)")
    for name, target in report["targets"].items():
        errors += _check_fields(target, TARGET_SCHEMA, f"report.targets.{name}")
    for part in ("benchmark", "benchmark_epilogue"):
        bench = report[part]
        if bench is not None:
            for key in ("rows", "copies"):
                if not isinstance(bench.get(key), list):
                    errors.append(f"report.{part}.{key}: missing or not a list")
    if report["passed"] and any(s.get("status") in ("failed", "timed_out") for s in report["steps"]):
        errors.append("report.passed: true although a step failed")
    done = {s.get("name") for s in report["steps"] if isinstance(s, dict) and s.get("status") == "passed"}
    if report["passed"] and not set(REQUIRED_STEPS) <= done:
        errors.append(f"report.passed: true although {sorted(set(REQUIRED_STEPS) - done)} did not pass")
    return errors


# ---- the wheel list that travels ------------------------------------------------------------------
def read_wheel_list(path: Path = WHEEL_LIST) -> list[tuple[str, str]]:
    """(name, version) per line 'name==version'; raises ValueError naming the bad line."""
    pins: list[tuple[str, str]] = []
    seen: set[str] = set()
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)==([0-9][A-Za-z0-9.+!-]*)", line)
        if not match:
            raise ValueError(f"{path.name}:{number}: '{line}' is not pinned as name==version")
        name = re.sub(r"[-_.]+", "_", match.group(1)).lower()
        if name in seen:
            raise ValueError(f"{path.name}:{number}: '{match.group(1)}' is listed twice")
        seen.add(name)
        pins.append((name, match.group(2)))
    if not pins:
        raise ValueError(f"{path.name}: no wheels listed")
    return pins


def check_wheels(pins: list[tuple[str, str]], folder: Path) -> tuple[list[str], int]:
    """Problems with the downloaded wheels in ``folder`` (missing, not for CPython 3.12 x86-64 or
    pure Python, over the size limit), and their total size."""
    problems: list[str] = []
    total = 0
    files = list(folder.glob("*.whl"))
    for name, version in pins:
        found = [
            f
            for f in files
            if re.sub(r"[-_.]+", "_", f.name.split("-")[0]).lower() == name
            and f.name.split("-")[1] == version
        ]
        if not found:
            problems.append(f"{name}=={version}: no wheel in {folder}")
            continue
        wheel = found[0]
        tags = wheel.name[:-4].split("-")[-3:]
        if not (tags[0] in ("py3", "py2.py3", "cp312") and (tags[2] == "any" or "x86_64" in tags[2])):
            problems.append(f"{wheel.name}: not for CPython 3.12 on x86-64 (tags {'-'.join(tags)})")
        total += wheel.stat().st_size
    if total > WHEEL_LIMIT_BYTES:
        limit = WHEEL_LIMIT_BYTES // 2**20
        problems.append(f"the wheels weigh {total / 2**20:.1f} MiB, over the {limit} MiB that may travel")
    return problems, total


# ---- the plan --------------------------------------------------------------------------------------
def plan(args: argparse.Namespace, out: Path) -> list[dict[str, Any]]:
    """Every step: name, command (argv), timeout, or a reason it is skipped up front."""
    py = args.python
    build_root = REPO / "build"
    kernel_bin = "{kernel_bin}"  # filled in after the build (the wheel tag names the tree)
    steps: list[dict[str, Any]] = []

    def step(name: str, command: list[str], timeout: float, skip: str | None = None) -> None:
        steps.append({"name": name, "command": command, "timeout_s": float(timeout), "skip": skip})
        if name in GPU_BINARY_STEPS or name in NHWC_STEPS:
            steps[-1]["skip_rc"] = 77  # the kernel test binaries' "no CUDA device here"

    wheels = Path(args.wheels)
    step(
        "wheels",
        [
            py,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-deps",
            "--find-links",
            str(wheels),
            "--quiet",
            "-r",
            str(WHEEL_LIST),
        ],
        90,
        None if args.dry_run or wheels.is_dir() else f"no wheel folder at {wheels} (make gpu-wheels)",
    )
    step(
        "build",
        [
            py,
            "-m",
            "pip",
            "install",
            "--no-index",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-e",
            str(REPO),
            f"-Ccmake.define.CMAKE_CUDA_ARCHITECTURES={args.arch}",
            "-Ccmake.define.SIMAM_WITH_CUDA=ON",
        ],
        300,
    )
    nhwc_bin = "{nhwc_bin}"
    step("kernel", [kernel_bin], 60)
    sanitizer = (
        None if args.dry_run or shutil.which("compute-sanitizer") else "compute-sanitizer is not on PATH"
    )
    for tool in SANITIZER_TOOLS:
        extra = ["--racecheck-report", "all"] if tool == "racecheck" else []
        step(
            tool,
            ["compute-sanitizer", "--tool", tool, *extra, "--error-exitcode", "1", kernel_bin],
            60,
            sanitizer,
        )
    step(
        "gpu-tests",
        [
            py,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            "gpu",
            *GPU_TEST_FILES,
            f"--junitxml={out / 'logs' / 'gpu-tests.xml'}",
        ],
        180,
    )
    step(
        "bench",
        [
            py,
            "-c",
            "from simam_deploy.cli.main import main; main()",
            "bench",
            "--kernel",
            "--device",
            "cuda",
            *[a for s in BENCH_SHAPES for a in ("--shape", s)],
            *[a for d in ("fp32", "fp16", "bf16") for a in ("--dtype", d)],
            "--compare",
            "eager,compile,fused",
            "--warmup",
            str(BENCH_WARMUP),
            "--iters",
            str(BENCH_ITERS),
            "--json",
            str(out / "bench_kernel.json"),
            "--plot",
            str(out / "gpu_acceptance.png"),
        ],
        200,
    )
    step(
        "bench-epilogue",
        [
            py,
            "-c",
            "from simam_deploy.cli.main import main; main()",
            "bench",
            "--kernel",
            "--epilogue",
            "--device",
            "cuda",
            *[a for s in EPILOGUE_SHAPES for a in ("--shape", s)],
            "--dtype",
            "fp16",
            "--compare",
            "eager,compile,fused",
            "--warmup",
            str(BENCH_WARMUP),
            "--iters",
            str(BENCH_ITERS),
            "--json",
            str(out / "bench_epilogue.json"),
        ],
        120,
    )
    step("kernel-nhwc", [nhwc_bin], 60)
    for tool in SANITIZER_TOOLS:
        extra = ["--racecheck-report", "all"] if tool == "racecheck" else []
        command = ["compute-sanitizer", "--tool", tool, *extra, "--error-exitcode", "1", nhwc_bin]
        step(f"{tool}-nhwc", command, 60, sanitizer)
    step("bench-nhwc", [nhwc_bin, "--bench", str(out / "bench_nhwc.json")], 60)
    # Last: with the overall budget, the harness builds are what a slow machine gives up first.
    headers = [Path(h) for h in args.trt_headers] or sorted(
        d for d in STAGED_HEADERS.glob("*") if (d / "include" / "NvInfer.h").is_file()
    )
    if not headers:
        reason = "no TensorRT headers here (make gpu-headers, or --trt-headers DIR: >= 10 for V3, 8.x for V2)"
        step("harness", [], 0, reason)
    for h in headers:
        tree = build_root / f"gpu-harness-{h.name}"
        # CMake configure + build of the plugin and harness only, then the harness groups called
        # directly (not through CTest, which would count enqueue's "no device" exit 77 as a pass).
        trt = tree / "plugins" / "tensorrt"
        script = (
            f"cmake -S {REPO} -B {tree} -G Ninja -DCMAKE_BUILD_TYPE=Release -DTENSORRT_ROOT={h} "
            f"-DCMAKE_CUDA_ARCHITECTURES={args.arch} -DSIMAM_WITH_ONNXRUNTIME=OFF >/dev/null && "
            f"cmake --build {tree} --target simam_trt_harness simam_trt_plugin && "
            "for group in lifecycle serialization enqueue; do "
            f"{trt / 'simam_trt_harness'} --plugin {trt / 'libsimam_trt_plugin.so'} --group $group "
            "|| exit $?; done"
        )
        step(f"harness-{h.name}", ["bash", "-c", script], 150)
        steps[-1]["skip_rc"] = 77
    for s in steps:
        asked = [k for k in args.skip if s["name"] == k or s["name"].startswith(k + "-")]
        if asked:
            s["skip"] = f"skipped on request (--skip {asked[0]})"
    return steps


def machine(py: str) -> dict[str, str | None]:
    def ask(argv: list[str]) -> str | None:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() or None if done.returncode == 0 else None

    torch_info = ask(
        [
            py,
            "-c",
            "import torch; print(torch.__version__, torch.version.cuda or '-', "
            "torch.cuda.get_device_name(0) if torch.cuda.is_available() else '-', sep='|')",
        ]
    )
    parts = [*torch_info.split("|"), "-", "-", "-"] if torch_info else [None, None, None]
    torch_v, cuda_v, gpu = parts[:3]
    nvcc = ask(["nvcc", "--version"])
    return {
        "gpu": None if gpu in (None, "-") else gpu,
        "python": ask([py, "-c", "import platform; print(platform.python_version())"]),
        "torch": torch_v,
        "cuda": None if cuda_v in (None, "-") else cuda_v,
        "nvcc": nvcc.splitlines()[-1] if nvcc else None,
        "platform": platform.platform(),
    }


# ---- running ---------------------------------------------------------------------------------------
def run_step(step: dict[str, Any], logs: Path, deadline: float) -> dict[str, Any]:
    record = {k: step[k] for k in ("name", "command", "timeout_s")}
    record.update(status="skipped", rc=None, wall_s=None, reason=step.get("skip"), log=None)
    if step.get("skip"):
        return record
    left = deadline - time.monotonic()
    if left < 10:
        record["reason"] = "the overall time budget ran out before this step"
        return record
    timeout = min(step["timeout_s"], left)
    log = logs / f"{step['name']}.log"
    record["log"] = str(log)
    start = time.monotonic()
    with log.open("w") as handle:
        # pip on a system Python (PEP 668) installs only with this; the lent machine is thrown away.
        env = dict(os.environ, PIP_BREAK_SYSTEM_PACKAGES="1")
        try:
            done = subprocess.run(
                step["command"],
                cwd=REPO,
                stdout=handle,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
                env=env,
            )
            record["rc"] = done.returncode
            record["status"] = "passed" if done.returncode == 0 else "failed"
            if done.returncode != 0 and done.returncode == step.get("skip_rc"):
                record["status"] = "skipped"
                record["reason"] = "no CUDA device visible (the binary exited 77)"
            elif done.returncode != 0:
                record["reason"] = f"exit status {done.returncode} (see the log)"
        except subprocess.TimeoutExpired:
            record["status"] = "timed_out"
            record["reason"] = f"ran past its {timeout:.0f} s timeout"
        except OSError as exc:
            record["status"] = "failed"
            record["reason"] = f"could not start: {exc}"
    record["wall_s"] = round(time.monotonic() - start, 2)
    return record


def find_kernel_binary(name: str = "simam_kernel_cuda_tests") -> Path | None:
    """The test binary of the tree pip just built (build/<wheel tag>/), never a sanitizer tree's."""
    found = sorted(REPO.glob(f"build/cp*/plugins/simam/{name}"), key=lambda p: p.stat().st_mtime)
    return found[-1] if found else None


def _ratios(bench: dict[str, Any] | None) -> dict[str, list[float]]:
    """Per case of a kernel benchmark, the fused row's fraction of the copy, speed-up over eager
    and speed-up over torch.compile (cases without a fused row, or without the other row, add none)."""
    names = ("fraction_of_copy", "speedup_vs_eager", "speedup_vs_compile")
    values: dict[str, list[float]] = {k: [] for k in names}
    by_case: dict[tuple, dict[str, dict]] = {}
    for row in (bench or {}).get("rows", []):
        by_case.setdefault((tuple(row["shape"]), row["dtype"]), {})[row["impl"]] = row
    for impls in by_case.values():
        fused = impls.get("fused")
        if not fused:
            continue
        if fused.get("fraction_of_copy") is not None:
            values["fraction_of_copy"].append(fused["fraction_of_copy"])
        if fused.get("speedup_vs_eager") is not None:
            values["speedup_vs_eager"].append(fused["speedup_vs_eager"])
        if impls.get("compile"):
            values["speedup_vs_compile"].append(impls["compile"]["median_ms"] / fused["median_ms"])
    return values


def evaluate(
    bench: dict[str, Any] | None, bench_epilogue: dict[str, Any] | None = None
) -> dict[str, dict[str, Any]]:
    """The issues' targets from the benchmarks' fused rows (the worst case counts): issue 24's from
    the SimAM kernel benchmark, issue 25's from the SimAM + epilogue block benchmark."""
    ratios = {"benchmark": _ratios(bench), "benchmark_epilogue": _ratios(bench_epilogue)}
    measured = {"epilogue_speedup_vs_compile": "speedup_vs_compile"}  # target name -> ratio name
    targets: dict[str, dict[str, Any]] = {}
    for name, (threshold, goal, issue, source) in TARGETS.items():
        values = ratios[source][measured.get(name, name)]
        worst = min(values) if values else None
        targets[name] = {
            "goal": goal,
            "issue": issue,
            "threshold": threshold,
            "worst": worst,
            "met": None if worst is None else worst >= threshold,
        }
    return targets


def make_report(
    args: argparse.Namespace,
    steps: list[dict[str, Any]],
    wall: float,
    bench: dict[str, Any] | None,
    plot: str | None,
    bench_epilogue: dict[str, Any] | None = None,
) -> dict[str, Any]:
    targets = evaluate(bench, bench_epilogue)
    passed = (
        not args.dry_run
        and all(s["status"] in ("passed", "skipped") for s in steps)
        and set(REQUIRED_STEPS) <= {s["name"] for s in steps if s["status"] == "passed"}
        and all(t["met"] is not False for t in targets.values())
    )
    return {
        "schema": SCHEMA_ID,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "dry_run": bool(args.dry_run),
        "machine": machine(args.python),
        "budget_s": float(args.budget),
        "wall_s": round(wall, 2),
        "steps": steps,
        "benchmark": bench,
        "benchmark_epilogue": bench_epilogue,
        "targets": targets,
        "plot": plot,
        "passed": passed,
    }


def dry_run(args: argparse.Namespace, out: Path) -> int:
    steps = plan(args, out)
    print(f"gpu-acceptance plan (budget {args.budget:.0f} s, arch sm_{args.arch}, report in {out}):")
    for s in steps:
        what = f"SKIP: {s['skip']}" if s["skip"] else " ".join(s["command"])
        print(f"  {s['name']:<14} {s['timeout_s']:>5.0f} s  {what}")
    problems: list[str] = []
    # The report a run would write: every step recorded, and one benchmark row per kind so the
    # benchmark and target parts of the schema are exercised too.
    records = [
        {k: s[k] for k in ("name", "command", "timeout_s")}
        | {
            "status": "skipped" if s["skip"] else "planned",
            "rc": None,
            "wall_s": None,
            "reason": s["skip"],
            "log": None,
        }
        for s in steps
    ]
    sample = {
        "rows": [
            {
                "shape": [32, 256, 56, 56],
                "dtype": "fp32",
                "impl": impl,
                "median_ms": ms,
                "speedup_vs_eager": 1.0 if impl == "eager" else None,
                "fraction_of_copy": 0.5,
            }
            for impl, ms in (("eager", 2.0), ("compile", 0.5), ("fused", 0.3))
        ],
        "copies": [],
    }
    for bench in (None, sample):
        problems += validate_report(make_report(args, records, 0.0, bench, None, bench))
    try:
        pins = read_wheel_list()
        print(f"wheel list {WHEEL_LIST.relative_to(REPO)}: {len(pins)} pinned wheels")
        wheels = Path(args.wheels)
        if wheels.is_dir():
            wheel_problems, total = check_wheels(pins, wheels)
            problems += wheel_problems
            print(f"  downloaded in {wheels}: {total / 2**20:.1f} MiB of {WHEEL_LIMIT_BYTES // 2**20} MiB")
        else:
            print(f"  not downloaded here ({wheels} absent; make gpu-wheels fetches them)")
    except (OSError, ValueError) as exc:
        problems.append(str(exc))
    if problems:
        print("gpu-acceptance dry run FAILED:", *problems, sep="\n  ")
        return 1
    print("gpu-acceptance dry run: plan, report schema and wheel list OK")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", help="folder for the report, plot and logs (required unless --dry-run)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, check schema + wheel list")
    parser.add_argument("--python", default=sys.executable, help="interpreter to build and test with")
    parser.add_argument("--wheels", default=str(DEFAULT_WHEELS), help="folder of the travelling wheels")
    parser.add_argument(
        "--trt-headers",
        action="append",
        default=[],
        metavar="DIR",
        help="a TensorRT header set (DIR/include/NvInfer.h) for the harness; repeatable",
    )
    parser.add_argument(
        "--skip", action="append", default=[], metavar="STEP",
        help="leave a step out, recorded as skipped ('harness' = every harness-<version>); repeatable",
    )  # fmt: skip
    parser.add_argument("--arch", default="90", help="CUDA architecture to build for [%(default)s]")
    parser.add_argument("--budget", type=float, default=DEFAULT_BUDGET_S, help="overall seconds")
    args = parser.parse_args(argv)
    if not re.fullmatch(r"[0-9]{2,3}[af]?", args.arch):
        parser.error(f"--arch {args.arch!r}: give a CUDA architecture number such as 90")
    known = {"wheels", "build", "harness", "bench", "bench-epilogue", "gpu-tests"}
    known |= {*GPU_BINARY_STEPS, *NHWC_STEPS}
    for name in args.skip:
        if name not in known:
            parser.error(f"--skip {name!r}: not a step (one of {', '.join(sorted(known))})")
    if args.budget <= 0:
        parser.error("--budget must be > 0 seconds")
    for h in args.trt_headers:
        if not (Path(h) / "include" / "NvInfer.h").is_file():
            parser.error(f"--trt-headers {h}: no include/NvInfer.h there")
    if args.dry_run:
        return dry_run(args, Path(args.out or "gpu-acceptance-out").resolve())
    if not args.out:
        parser.error("--out DIR is required (the report and plot are written there)")
    out = Path(args.out).resolve()
    if out.exists() and not out.is_dir():
        parser.error(f"--out {out}: exists and is not a folder")
    logs = out / "logs"
    logs.mkdir(parents=True, exist_ok=True)

    start = time.monotonic()
    deadline = start + args.budget
    records = []
    for step in plan(args, out):
        for placeholder, name in KERNEL_BINARIES.items():
            if placeholder in step["command"] and not step.get("skip"):
                binary = find_kernel_binary(name)
                if binary is None:
                    step["skip"] = f"no {name} binary (the build step failed or ran without nvcc)"
                step["command"] = [str(binary) if c == placeholder else c for c in step["command"]]
        record = run_step(step, logs, deadline)
        print(
            f"[{record['status']:>9}] {record['name']:<14} {record['wall_s'] or 0:6.1f} s"
            f"{'  ' + record['reason'] if record['reason'] else ''}",
            flush=True,
        )
        records.append(record)

    bench_file, epilogue_file = out / "bench_kernel.json", out / "bench_epilogue.json"
    bench = json.loads(bench_file.read_text()) if bench_file.is_file() else None
    bench_epilogue = json.loads(epilogue_file.read_text()) if epilogue_file.is_file() else None
    plot_file = out / "gpu_acceptance.png"
    report = make_report(
        args,
        records,
        time.monotonic() - start,
        bench,
        str(plot_file) if plot_file.is_file() else None,
        bench_epilogue,
    )
    problems = validate_report(report)
    if problems:  # a bug in this script: say so rather than write a report that breaks the schema
        print("gpu-acceptance: the report breaks its schema:", *problems, sep="\n  ", file=sys.stderr)
        return 3
    (out / "gpu_acceptance.json").write_text(json.dumps(report, indent=2) + "\n")
    for name, target in report["targets"].items():
        print(
            f"target {name} (issue {target['issue']}): worst {target['worst']}, "
            f"goal >= {target['threshold']}: "
            f"{ {True: 'met', False: 'MISSED', None: 'not measured'}[target['met']] }"
        )
    print(
        f"gpu-acceptance: {'PASSED' if report['passed'] else 'FAILED'} in {report['wall_s']:.0f} s; "
        f"report {out / 'gpu_acceptance.json'}"
    )
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
