#!/usr/bin/env python3
"""Where does float16 hurt SimAM? Reduced-precision ONNX files against PyTorch float32 on real photos.

ONNX Runtime's CPU provider computes float16 reductions with float32 accumulators, so it hides what a
runtime that really works in float16 would do. This study therefore runs every file twice:

* ONNX Runtime (CPU), as a user would, and
* a *strict* evaluator: onnx.reference.ReferenceEvaluator, where every elementwise op rounds its result
  to the file's type (numpy float16 / ml_dtypes bfloat16), ReduceSum/ReduceMean/GlobalAveragePool
  accumulate in that type (pairwise tree of rounded additions, as a GPU tree reduction does), and
  Conv/Gemm accumulate in float32 and round their output (tensor-core style; computed with torch for
  speed).

Inputs: 32x32 crops of real photos shipped with matplotlib (grace_hopper.jpg, ...) and
scikit-image (astronaut, chelsea, coffee, ...; optional), downscaled to several sizes, normalised
with the CIFAR-100 mean/std. Then the same crops scaled by 4..256 to find where float16 breaks.

    python benchmarks/precision_study.py \
        --checkpoint ../shared/models/official-cifar100-resnet20-simam/model_best.pth.tar
    python benchmarks/precision_study.py --checkpoint CKPT --crops 512 --json study.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx.reference import ReferenceEvaluator
from onnx.reference.op_run import OpRun

from simam_deploy.export import export_onnx
from simam_deploy.nn import find_simam_modules
from simam_deploy.precision import convert_precision
from simam_deploy.zoo import build_model

CIFAR100_MEAN = np.array([0.5071, 0.4865, 0.4409], dtype=np.float32)
CIFAR100_STD = np.array([0.2673, 0.2564, 0.2762], dtype=np.float32)
SKIMAGE_PHOTOS = (
    "astronaut",
    "chelsea",
    "coffee",
    "rocket",
    "immunohistochemistry",
    "hubble_deep_field",
    "retina",
    "camera",
    "coins",
    "moon",
    "grass",
    "gravel",
    "brick",
    "clock",
    "horse",
)


# -- real images ----------------------------------------------------------------------------------


def load_photos() -> list[tuple[str, np.ndarray]]:
    """RGB uint8 photos shipped inside installed packages (no download)."""
    import matplotlib
    from PIL import Image

    photos = []
    sample = Path(matplotlib.get_data_path()) / "sample_data"
    for name in ("grace_hopper.jpg", "Minduka_Present_Blue_Pack.png"):
        if (sample / name).is_file():
            photos.append((name, np.asarray(Image.open(sample / name).convert("RGB"))))
    try:
        import skimage.data
    except ImportError:
        print("scikit-image not installed: using matplotlib's photos only", file=sys.stderr)
        return photos
    for name in SKIMAGE_PHOTOS:
        try:
            image = np.asarray(getattr(skimage.data, name)())
        except Exception:  # some images need a download (pooch): skip them
            continue
        if image.ndim == 2:
            image = np.stack([image] * 3, axis=-1)
        photos.append((name, np.asarray(Image.fromarray(image[..., :3].astype(np.uint8)).convert("RGB"))))
    return photos


def make_crops(count: int, seed: int = 0) -> tuple[np.ndarray, list[str]]:
    """``count`` normalised 32x32 crops (NCHW float32) from the photos downscaled to 48-160 px."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = load_photos()
    crops, sources = [], []
    for i in range(count):
        name, image = photos[i % len(photos)]
        short = int(rng.choice([48, 64, 96, 128, 160]))
        h, w = image.shape[:2]
        scale = short / min(h, w)
        small = np.asarray(
            Image.fromarray(image).resize(
                (max(32, round(w * scale)), max(32, round(h * scale))), Image.BILINEAR
            )
        )
        y = int(rng.integers(0, small.shape[0] - 31))
        x = int(rng.integers(0, small.shape[1] - 31))
        crop = small[y : y + 32, x : x + 32].astype(np.float32) / 255.0
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        crops.append(((crop - CIFAR100_MEAN) / CIFAR100_STD).transpose(2, 0, 1))
        sources.append(name)
    return np.ascontiguousarray(np.stack(crops)), sources


# -- strict reduced-precision evaluator --------------------------------------------------------


def tree_sum(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Sum over ``axes`` (kept) by a pairwise tree of additions, each rounded to x's dtype."""
    dtype = x.dtype
    keep_shape = [1 if a in axes else d for a, d in enumerate(x.shape)]
    moved = np.moveaxis(x, axes, tuple(range(x.ndim - len(axes), x.ndim)))
    flat = moved.reshape(*moved.shape[: x.ndim - len(axes)], -1)
    while flat.shape[-1] > 1:
        if flat.shape[-1] % 2:
            flat = np.concatenate([flat, np.zeros_like(flat[..., :1])], axis=-1)
        flat = (flat[..., 0::2] + flat[..., 1::2]).astype(dtype)
    return flat.reshape(keep_shape)


def _axes(x: np.ndarray, axes, attr_axes) -> tuple[int, ...]:
    chosen = axes if axes is not None else attr_axes
    if chosen is None or len(chosen) == 0:
        return tuple(range(x.ndim))
    return tuple(sorted(int(a) % x.ndim for a in np.asarray(chosen).reshape(-1)))


def _finish(res: np.ndarray, x: np.ndarray, axes: tuple[int, ...], keepdims) -> np.ndarray:
    return res if keepdims in (None, 1) else np.squeeze(res, axis=axes)


class ReduceSum(OpRun):
    def _run(self, x, axes=None, keepdims=None, noop_with_empty_axes=None):
        ax = _axes(x, axes, None)
        if x.dtype == np.float32:
            return (np.sum(x, axis=ax, keepdims=keepdims in (None, 1)),)
        return (_finish(tree_sum(x, ax), x, ax, keepdims),)


class ReduceMean(OpRun):
    def _run(self, x, axes=None, keepdims=None, noop_with_empty_axes=None):
        ax = _axes(x, axes, None)
        if x.dtype == np.float32:
            return (np.mean(x, axis=ax, keepdims=keepdims in (None, 1)),)
        count = np.array(np.prod([x.shape[a] for a in ax]), dtype=x.dtype)
        return (_finish((tree_sum(x, ax) / count).astype(x.dtype), x, ax, keepdims),)


class GlobalAveragePool(OpRun):
    def _run(self, x):
        ax = tuple(range(2, x.ndim))
        if x.dtype == np.float32:
            return (np.mean(x, axis=ax, keepdims=True),)
        count = np.array(np.prod(x.shape[2:]), dtype=x.dtype)
        return ((tree_sum(x, ax) / count).astype(x.dtype),)


class Conv(OpRun):
    """float32 accumulation, output rounded to the input's type (tensor cores do this)."""

    def _run(
        self,
        X,
        W,
        B=None,
        auto_pad=None,
        dilations=None,
        group=None,
        kernel_shape=None,
        pads=None,
        strides=None,
    ):
        pads = list(pads or [0, 0, 0, 0])
        if pads[:2] != pads[2:]:
            raise NotImplementedError("asymmetric padding")
        y = torch.nn.functional.conv2d(
            torch.from_numpy(X.astype(np.float32)),
            torch.from_numpy(W.astype(np.float32)),
            None if B is None else torch.from_numpy(B.astype(np.float32)),
            stride=tuple(strides or (1, 1)),
            padding=tuple(pads[:2]),
            dilation=tuple(dilations or (1, 1)),
            groups=group or 1,
        )
        return (y.numpy().astype(X.dtype),)


class Gemm(OpRun):
    def _run(self, A, B, C=None, alpha=None, beta=None, transA=None, transB=None):
        a = A.astype(np.float32).T if transA else A.astype(np.float32)
        b = B.astype(np.float32).T if transB else B.astype(np.float32)
        y = (alpha or 1.0) * a @ b
        if C is not None:
            y = y + (beta if beta is not None else 1.0) * C.astype(np.float32)
        return (y.astype(A.dtype),)


STRICT_OPS = [ReduceSum, ReduceMean, GlobalAveragePool, Conv, Gemm]


def strict_run(model: onnx.ModelProto, x: np.ndarray, batch: int = 128) -> np.ndarray:
    evaluator = ReferenceEvaluator(model, new_ops=STRICT_OPS)
    name = model.graph.input[0].name
    elem = model.graph.input[0].type.tensor_type.elem_type
    dtype = onnx.helper.tensor_dtype_to_np_dtype(elem)
    outs = []
    with np.errstate(all="ignore"):
        for i in range(0, len(x), batch):
            outs.append(
                np.asarray(evaluator.run(None, {name: x[i : i + batch].astype(dtype)})[0], np.float32)
            )
    return np.concatenate(outs)


def ort_run(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    from simam_deploy.backends.onnxruntime.runner import OnnxRuntimeRunner

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        onnx.save(model, path)
        runner = OnnxRuntimeRunner(path)
        ((name, _, dtype),) = runner.input_spec()
        out = runner.infer({name: x.astype(dtype)})
    return np.asarray(next(iter(out.values())), np.float32)


# -- the study ------------------------------------------------------------------------------------


def compare(logits: np.ndarray, ref: np.ndarray) -> dict:
    finite = np.isfinite(logits).all(axis=1)
    err = np.abs(np.where(np.isfinite(logits), logits, np.inf) - ref)
    return {
        "top1_agreement": float(np.mean(np.argmax(np.nan_to_num(logits, nan=-np.inf), 1) == ref.argmax(1))),
        "max_abs": float(err.max()),
        "mean_abs": float(np.mean(err[finite])) if finite.any() else float("inf"),
        "p99_abs": float(np.percentile(err.max(axis=1), 99)),
        "nonfinite_rows": int((~finite).sum()),
    }


def simam_statistics(model: torch.nn.Module, x: torch.Tensor) -> dict[str, dict]:
    """Per SimAM layer: largest |x|, sum of squared deviations and variance over the crops (float32)."""
    stats: dict[str, dict] = {}

    def hook(name):
        def record(_mod, args):
            t = args[0].double()
            d = (t - t.mean(dim=(2, 3), keepdim=True)).pow(2)
            s = d.sum(dim=(2, 3))
            entry = stats.setdefault(
                name,
                {
                    "max_abs_x": 0.0,
                    "max_sum_d": 0.0,
                    "max_var": 0.0,
                    "max_sum_x": 0.0,
                    "plane": int(t.shape[2] * t.shape[3]),
                },
            )
            entry["max_abs_x"] = max(entry["max_abs_x"], float(t.abs().max()))
            entry["max_sum_d"] = max(entry["max_sum_d"], float(s.max()))
            entry["max_var"] = max(entry["max_var"], float((s / (t.shape[2] * t.shape[3] - 1)).max()))
            entry["max_sum_x"] = max(entry["max_sum_x"], float(t.sum(dim=(2, 3)).abs().max()))

        return record

    handles = [m.register_forward_pre_hook(hook(n)) for n, m in find_simam_modules(model)]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return stats


def export_proto(net, **kwargs) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "m.onnx")
        export_onnx(net, path, input_shape=(1, 3, 32, 32), **kwargs)
        return onnx.load(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--model", default="cifar-resnet20")
    parser.add_argument("--crops", type=int, default=1024)
    parser.add_argument("--scale-crops", type=int, default=256, help="crops used for the input-scale sweep")
    parser.add_argument("--scales", default="1,4,16,64,256")
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    net, _ = build_model(args.model, args.checkpoint)
    net.eval()
    x, sources = make_crops(args.crops)
    with torch.no_grad():
        ref = net(torch.from_numpy(x)).numpy()
    print(f"{len(x)} crops from {len(set(sources))} photos; PyTorch float32 reference computed", flush=True)

    fp32 = export_proto(net)  # dynamo, opset 18
    ts17 = export_proto(net, opset=17, exporter="torchscript")
    plugin = export_proto(net, mode="plugin")
    files = {
        "fp32 export (ORT)": (fp32, "ort"),
        "fp16 export, statistics fp32 (ORT)": (convert_precision(fp32, "fp16")[0], "ort"),
        "fp16 naive, statistics fp16 (ORT)": (
            convert_precision(fp32, "fp16", keep_statistics_fp32=False)[0],
            "ort",
        ),
        "fp16 conversion of TorchScript opset-17 file (ORT)": (convert_precision(ts17, "fp16")[0], "ort"),
        "fp16 plugin-mode export (ORT + fused kernel)": (convert_precision(plugin, "fp16")[0], "ort"),
        "fp16 export, statistics fp32 (strict fp16)": (convert_precision(fp32, "fp16")[0], "strict"),
        "fp16 naive, statistics fp16 (strict fp16)": (
            convert_precision(fp32, "fp16", keep_statistics_fp32=False)[0],
            "strict",
        ),
        "fp16 conversion of TorchScript opset-17 file (strict fp16)": (
            convert_precision(ts17, "fp16")[0],
            "strict",
        ),
        "bf16 export, statistics fp32 (strict bf16)": (convert_precision(fp32, "bf16")[0], "strict"),
        "bf16 naive, statistics bf16 (strict bf16)": (
            convert_precision(fp32, "bf16", keep_statistics_fp32=False)[0],
            "strict",
        ),
    }
    results: dict = {"crops": len(x), "photos": sorted(set(sources)), "model": args.model, "runs": {}}
    for label, (model, how) in files.items():
        logits = ort_run(model, x) if how == "ort" else strict_run(model, x)
        results["runs"][label] = compare(logits, ref)
        r = results["runs"][label]
        print(
            f"{label:62s} top-1 {r['top1_agreement']:.2%}  max|err| {r['max_abs']:.3g}  "
            f"mean {r['mean_abs']:.3g}  p99 {r['p99_abs']:.3g}  non-finite {r['nonfinite_rows']}",
            flush=True,
        )

    results["simam_statistics"] = simam_statistics(net, torch.from_numpy(x))
    print("per-SimAM statistics over the crops (float64): max |x|, max sum of squared deviations, max var")
    for name, s in results["simam_statistics"].items():
        print(
            f"  {name:18s} plane {s['plane']:5d}  max|x| {s['max_abs_x']:.3g}  "
            f"max sum d {s['max_sum_d']:.4g}  "
            f"max var {s['max_var']:.3g}  max |sum x| {s['max_sum_x']:.4g}"
        )

    sweep = {}
    xs = x[: args.scale_crops]
    sweep_files = {
        k: v for k, v in files.items() if "strict" in k or k.startswith(("fp16 naive", "fp16 export"))
    }
    for scale in [float(s) for s in args.scales.split(",")]:
        xin = xs * scale
        with torch.no_grad():
            ref_s = net(torch.from_numpy(xin)).numpy()
        stats_s = simam_statistics(net, torch.from_numpy(xin))
        row = {"max_sum_d": max(s["max_sum_d"] for s in stats_s.values()), "runs": {}}
        for label, (model, how) in sweep_files.items():
            logits = ort_run(model, xin) if how == "ort" else strict_run(model, xin)
            row["runs"][label] = compare(logits, ref_s)
        sweep[scale] = row
        print(f"scale {scale:g}: largest sum of squared deviations {row['max_sum_d']:.4g}")
        for label, r in row["runs"].items():
            print(
                f"    {label:62s} top-1 {r['top1_agreement']:.2%}  non-finite {r['nonfinite_rows']}  "
                f"max|err| {r['max_abs']:.3g}"
            )
    results["scale_sweep"] = sweep
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2, default=float) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
