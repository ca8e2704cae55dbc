#!/usr/bin/env python3
"""The aarch64 ONNX Runtime op library inside an aarch64 ONNX Runtime, under qemu-aarch64.

Host side (the project's venv): writes SimAM models (the custom op, and the same graph with SimAM
expanded into standard ONNX ops by ``unfuse_simam``), inputs and the float64 reference, then runs
this file again with an aarch64 Python under qemu (``--guest``). The guest imports only numpy and
onnxruntime: it runs both models in the aarch64 ONNX Runtime, the op through the aarch64
libsimam_ort_ops.so, and compares them with each other and with the reference.

    python scripts/aarch64_ort_check.py --ops-lib build/cross/kernels/.../libsimam_ort_ops.so \\
        --python build/cross/sysroot/usr/bin/python3.11 --sysroot build/cross/sysroot \\
        --site build/cross/pysite --work build/cross/ort-check

The sysroot must hold an aarch64 /proc/cpuinfo: qemu-user hands the guest the host's x86-64 one,
and ONNX Runtime's CPU detection crashes on it; qemu opens sysroot paths first.
Exit codes: 0 match, 1 mismatch, 2 missing input/environment.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

# (name, shape, e_lambda, unbiased): both variance divisors, odd planes, one plane per channel row.
CASES = [
    ("unbiased", (2, 8, 7, 5), 1e-4, 1),
    ("biased", (1, 16, 4, 4), 1e-2, 0),
    ("wide", (1, 3, 32, 33), 1e-4, 1),
]
# fp32 arithmetic on both sides against float64: a few ulp of the output.
RTOL = 1e-5
ATOL = 1e-6


def _host_prepare(work: Path) -> None:
    import numpy as np
    import onnx
    from onnx import TensorProto, helper

    from simam_deploy.graph import contract
    from simam_deploy.graph.unfuse import unfuse_simam
    from simam_deploy.nn import simam_reference_numpy
    from simam_deploy.onnx_utils import save_onnx

    rng = np.random.default_rng(21)
    manifest = []
    for name, shape, e_lambda, unbiased in CASES:
        attrs = contract.SimamAttributes(e_lambda=e_lambda, unbiased=bool(unbiased))
        node = contract.make_simam_node("X", "Y", attrs, f"simam_{name}", with_plugin_fields=False)
        graph = helper.make_graph(
            [node],
            name,
            [helper.make_tensor_value_info("X", TensorProto.FLOAT, list(shape))],
            [helper.make_tensor_value_info("Y", TensorProto.FLOAT, list(shape))],
        )
        model = helper.make_model(
            graph, opset_imports=[helper.make_opsetid("", 18), contract.simam_opset_import()]
        )
        model.ir_version = 9
        onnx.checker.check_model(model)
        save_onnx(model, work / f"{name}_op.onnx")
        save_onnx(unfuse_simam(model), work / f"{name}_decomposed.onnx")
        x = rng.standard_normal(shape).astype(np.float32) * 3.0
        x[0, 0] = 0.5  # a constant plane: zero variance, the lambda term alone
        np.save(work / f"{name}_x.npy", x)
        np.save(work / f"{name}_want.npy", simam_reference_numpy(x, e_lambda, bool(unbiased)))
        manifest.append(name)
    (work / "cases.json").write_text(json.dumps(manifest))


def _guest_run(work: Path, ops_lib: Path) -> int:
    import platform

    import numpy as np
    import onnxruntime as ort

    if platform.machine() != "aarch64":
        print(f"aarch64_ort_check: guest runs on {platform.machine()}, not aarch64", file=sys.stderr)
        return 2
    failed = 0
    for name in json.loads((work / "cases.json").read_text()):
        x = np.load(work / f"{name}_x.npy")
        want = np.load(work / f"{name}_want.npy")
        options = ort.SessionOptions()
        options.register_custom_ops_library(str(ops_lib))
        op = ort.InferenceSession(str(work / f"{name}_op.onnx"), options, providers=["CPUExecutionProvider"])
        dec = ort.InferenceSession(str(work / f"{name}_decomposed.onnx"), providers=["CPUExecutionProvider"])
        got = op.run(None, {"X": x})[0].astype(np.float64)
        formula = dec.run(None, {"X": x})[0].astype(np.float64)
        vs_formula = float(np.max(np.abs(got - formula)))
        vs_ref = float(np.max(np.abs(got - want)))
        ok = np.allclose(got, formula, rtol=RTOL, atol=ATOL) and np.allclose(got, want, rtol=RTOL, atol=ATOL)
        failed += not ok
        print(
            f"  {name:9s} {x.shape!s:16s} op vs decomposed max|diff| {vs_formula:.3g}, "
            f"vs float64 reference {vs_ref:.3g}: {'ok' if ok else 'MISMATCH'}"
        )
    total = len(json.loads((work / "cases.json").read_text()))
    print(
        f"aarch64 ONNX Runtime {ort.__version__} ({platform.machine()}, Python {platform.python_version()}): "
        f"libsimam_ort_ops.so {total - failed}/{total} cases match the decomposed formula"
    )
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ops-lib", type=Path, required=True, help="the aarch64 libsimam_ort_ops.so")
    parser.add_argument("--work", type=Path, required=True, help="folder for the models and arrays")
    parser.add_argument("--guest", action="store_true", help="(internal) the aarch64 half")
    parser.add_argument("--python", type=Path, help="the aarch64 python (host side)")
    parser.add_argument("--sysroot", type=Path, help="aarch64 sysroot for QEMU_LD_PREFIX (host side)")
    parser.add_argument("--site", type=Path, help="aarch64 numpy + onnxruntime (host side)")
    args = parser.parse_args(argv)

    if args.guest:
        return _guest_run(args.work, args.ops_lib)

    needed = {"--python": args.python, "--sysroot": args.sysroot, "--site": args.site}
    missing = [flag for flag, value in needed.items() if value is None]
    if missing:
        parser.error(f"the host side needs {', '.join(missing)}")
    qemu = shutil.which("qemu-aarch64")
    problems = [f"{p} does not exist" for p in (args.ops_lib, args.python, args.site) if not p.exists()]
    if qemu is None:
        problems.append("qemu-aarch64 not found (apt-get install qemu-user)")
    if not (args.sysroot / "proc" / "cpuinfo").is_file():
        problems.append(f"no {args.sysroot}/proc/cpuinfo (ONNX Runtime crashes on the host's under qemu)")
    if problems:
        hint = " (make cross-aarch64-ort sets them up)"
        print("aarch64_ort_check: " + "; ".join(problems) + hint, file=sys.stderr)
        return 2

    args.work.mkdir(parents=True, exist_ok=True)
    _host_prepare(args.work)
    env = dict(os.environ, QEMU_LD_PREFIX=str(args.sysroot.resolve()), PYTHONPATH=str(args.site.resolve()))
    env.pop("PYTHONHOME", None)
    command = [qemu, str(args.python), str(Path(__file__).resolve()), "--guest"]
    command += ["--ops-lib", str(args.ops_lib.resolve()), "--work", str(args.work.resolve())]
    return subprocess.run(command, env=env, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
