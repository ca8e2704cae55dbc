#!/usr/bin/env python3
"""What does INT8 cost SimAM networks? Agreement, sizes and CPU latency of `simam-deploy quantize` files.

On the authors' CIFAR-100 ResNet-20 and real photos (crops of the photos shipped with scikit-image and
matplotlib, preprocessed as CIFAR), three disjoint sets: calibration, held-out (what
--target-agreement measures on) and evaluation (what this table reports). Rows:

* naive: ONNX Runtime's quantizer on every op it can quantize, SimAM blocks included;
* SimAM kept: the `quantize` default (Conv/Gemm inputs only, SimAM blocks float32), per method;
* accuracy-driven: SimAM kept plus --target-agreement on the held-out set.

It also builds TensorRT for RTX engines (fp32 and INT8, no GPU needed) to compare their sizes, and
times ONNX Runtime CPU inference of the float32 and INT8 files side by side (interleaved, medians).

    python benchmarks/quantize_study.py --checkpoint CKPT [--json study.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # tests.real_images: the photo crops the tests use

from simam_deploy.export import export_onnx  # noqa: E402
from simam_deploy.graph.pipeline import fuse_file  # noqa: E402
from simam_deploy.inputs import load_inputs  # noqa: E402
from simam_deploy.onnx_utils import load_onnx, save_onnx  # noqa: E402
from simam_deploy.quantize import _input_spec, _run, agreement, quantize_model, split_samples  # noqa: E402
from simam_deploy.zoo import build_model  # noqa: E402
from tests.real_images import make_photo_folder  # noqa: E402


def _engine(onnx_path: Path, out: Path) -> dict | None:
    """Engine file bytes and the builder's weight bytes of a TensorRT for RTX build."""
    try:
        from simam_deploy.backends.tensorrt.builder import build_engine

        report = build_engine(onnx_path, out, runtime="tensorrt-rtx")
    except Exception as exc:  # no RTX wheels or plugin: report, do not fail the study
        print(f"  (no RTX engine for {onnx_path.name}: {exc})", file=sys.stderr)
        return None
    return {"engine_bytes": report.engine_bytes, "weights_bytes": report.weights_bytes}


def _latency(paths: dict[str, Path], feed: dict[str, np.ndarray], runs: int) -> dict[str, float]:
    from simam_deploy.backends.onnxruntime.runner import OnnxRuntimeRunner

    runners = {k: OnnxRuntimeRunner(p) for k, p in paths.items()}
    times: dict[str, list[float]] = {k: [] for k in runners}
    for runner in runners.values():
        for _ in range(5):
            runner.infer(feed)
    for _ in range(runs):  # interleaved, so a noisy neighbour hits both alike
        for k, runner in runners.items():
            start = time.perf_counter()
            runner.infer(feed)
            times[k].append(time.perf_counter() - start)
    return {k: float(np.median(v) * 1e3) for k, v in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--calibrate", type=int, default=256)
    parser.add_argument("--held-out", type=int, default=344)
    parser.add_argument("--evaluate", type=int, default=944)
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="quantize-study-"))
    model, _ = build_model("cifar-resnet20", args.checkpoint)
    fp32 = work / "r20.onnx"
    export_onnx(model, fp32, input_shape=(1, 3, 32, 32))
    fused = work / "r20-fused.onnx"
    fuse_file(fp32, fused)
    total = args.calibrate + args.held_out + args.evaluate
    photos = make_photo_folder(work / "photos", count=total, crop=40)
    proto = load_onnx(fp32)
    inputs = load_inputs(photos, _input_spec(proto), reference="cifar-resnet20")
    if inputs.count < total:
        sys.exit(f"only {inputs.count} crops; lower the set sizes")
    calib, rest = split_samples(inputs.batches, args.calibrate, batch_fixed=False)
    held, evaluate = split_samples(rest, args.held_out, batch_fixed=False)
    reference = _run(proto, evaluate)
    print(f"{inputs.count} crops: {args.calibrate} calibrate, {args.held_out} held out, rest evaluate")

    import torch

    with torch.no_grad():  # PyTorch float32: what validate compares against
        torch_out = np.concatenate([model(torch.from_numpy(b["input"])).numpy() for b in evaluate])
    rows = []

    def row(label: str, q, report) -> None:
        out = _run(q, evaluate)
        a = agreement(out, reference)
        err = np.abs(out.astype(np.float64) - torch_out)
        rows.append(
            {
                "config": label,
                "top1": a.top1,
                "confident_top1": a.confident_top1,
                "confident_rows": a.confident_rows,
                "samples": a.samples,
                "conv_weight_share": report.conv_weight_share,
                "kept_layers": [d.name for d in report.kept if d.op_type != "SimAM"],
                "max_abs_vs_torch": float(err.max()),
                "p99_abs_vs_torch": float(np.quantile(err, 0.99)),
                "max_rel_vs_torch": float(
                    (err / np.maximum(np.abs(torch_out), 1e-6))[np.abs(torch_out) > 1].max()
                ),
            }
        )
        print(f"{label:40s} top-1 {a.top1:.4f}  confident {a.confident_top1:.4f} ({a.confident_rows})  "
              f"conv int8 {report.conv_weight_share:.1%}  max|err| vs torch {err.max():.3f}")  # fmt: skip

    def save(**extra) -> None:
        if args.json_path:
            Path(args.json_path).write_text(json.dumps({"rows": rows, **extra}, indent=2))

    # the default (minmax) first, then sizes and latency, then the other calibration methods
    q, rep = quantize_model(proto, calib, keep_simam=False, method="minmax")
    row("naive (minmax)", q, rep)
    best, rep = quantize_model(proto, calib, method="minmax")
    row("SimAM kept (minmax)", best, rep)
    q, rep = quantize_model(proto, calib, held_out=held, method="minmax", target_agreement=args.target)
    row(f"accuracy-driven {args.target} (minmax)", q, rep)
    rows[-1]["reached_on_held_out"] = rep.reached
    driven = work / "r20-int8-driven.onnx"
    save_onnx(q, driven)
    int8 = work / "r20-int8.onnx"
    save_onnx(best, int8)
    fused_q, _ = quantize_model(load_onnx(fused), calib, method="minmax")
    fused_int8 = work / "r20-fused-int8.onnx"
    save_onnx(fused_q, fused_int8)
    sizes = {
        "onnx_fp32": fp32.stat().st_size,
        "onnx_int8": int8.stat().st_size,
        "engine_fp32": _engine(fused, work / "fp32.engine"),
        "engine_int8": _engine(fused_int8, work / "int8.engine"),
    }
    print("sizes:", sizes)
    feed1 = {k: v[:1] for k, v in evaluate[0].items()}
    feed32 = {k: v[:32] for k, v in evaluate[0].items()}
    paths = {"fp32": fp32, "int8": int8, "int8_driven": driven}
    latency = {
        "batch1_ms": _latency(paths, feed1, args.runs),
        "batch32_ms": _latency(paths, feed32, max(20, args.runs // 10)),
    }
    print("ONNX Runtime CPU latency (median ms):", latency)
    save(sizes=sizes, latency=latency)
    for method in ("percentile", "entropy"):
        q, rep = quantize_model(proto, calib, keep_simam=False, method=method)
        row(f"naive ({method})", q, rep)
        q, rep = quantize_model(proto, calib, method=method)
        row(f"SimAM kept ({method})", q, rep)
        save(sizes=sizes, latency=latency)
    q, rep = quantize_model(proto, calib, held_out=held, method="percentile", target_agreement=args.target)
    row(f"accuracy-driven {args.target} (percentile)", q, rep)
    rows[-1]["reached_on_held_out"] = rep.reached
    save(sizes=sizes, latency=latency)


if __name__ == "__main__":
    main()
