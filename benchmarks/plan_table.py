"""The plan table: what TensorRT's builder chooses for SimAM, decomposed vs plugin, fp32 vs fp16.

For each model, form, precision and RTX target this builds an engine with TensorRT for RTX (no GPU
needed: the plan is decided at build time) and reads the plan per SimAM block from the builder's
detailed log (simam_deploy.backends.tensorrt.plan). The zoo network is exported once, decomposed; the
other forms are made from that file as `build --mode` makes them (simam_deploy.backends.tensorrt.modes
.FORMS: fuse, ...). It prints a Markdown table (kernels per block, transposes/reformats next to SimAM,
estimated bytes moved per block at the profile's opt batch) and writes the raw plans as JSON.

    python benchmarks/plan_table.py --models cifar-resnet20 resnet50 --targets sm86 sm120 --json plans.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

SHAPES = {"cifar-resnet20": (3, 32, 32), "resnet50": (3, 224, 224), "resnet18": (3, 224, 224)}
OPT_BATCH = {"cifar-resnet20": 32, "resnet50": 8, "resnet18": 8}
FORM_NAMES = ["decomposed", "plugin", "plugin+epilogue"]


def _export(model: str, folder: Path) -> Path:
    from simam_deploy.export import export_onnx
    from simam_deploy.zoo import build_model

    network, _ = build_model(model)
    out = folder / f"{model}.onnx"
    export_onnx(network, out, mode="decomposed", input_shape=(1, *SHAPES[model]))
    return out


def _forms(model: str, forms: list[str], folder: Path) -> dict[str, Path]:
    """The zoo network in each of ``forms``: "decomposed" is the export itself, the others are made
    from it by the makers ``build --mode`` uses."""
    from simam_deploy.backends.tensorrt.modes import FORMS

    source = _export(model, folder)
    makers = {form.name: form.make for form in FORMS if form.make is not None}
    files = {}
    for form in forms:
        if form == "decomposed":
            files[form] = source
            continue
        files[form] = folder / f"{model}-{form}.onnx"
        changed, made = makers[form](source, files[form])
        if not changed:
            raise SystemExit(f"{model}: the {form} form is the decomposed file unchanged ({made})")
    return files


def _plan(onnx_path: Path, precision: str, target: str, folder: Path, model: str) -> dict:
    from simam_deploy.backends.tensorrt import build_engine

    c, h, w = SHAPES[model]
    opt = OPT_BATCH[model]
    report = build_engine(
        onnx_path,
        folder / f"{onnx_path.stem}-{precision}-{target}.engine",
        precision=precision,
        shapes=[f"input=1x{c}x{h}x{w}:{opt}x{c}x{h}x{w}:{2 * opt}x{c}x{h}x{w}"],
        runtime="tensorrt-rtx",
        compute_capabilities=[target],
    )
    if report.plan is None:
        raise SystemExit(f"no plan for {onnx_path.name}: {report.plan_note}")
    return report.plan


def _short(kernel: str) -> str:
    """`__myl_SubMulTran_myl0_7` -> SubMulTran; `/layer1/0/conv2/simam/SimAM_myl0_6` -> SimAM."""
    return kernel.removeprefix("__myl_").split("_myl")[0].rsplit("/", 1)[-1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["cifar-resnet20", "resnet50"], choices=sorted(SHAPES))
    parser.add_argument("--targets", nargs="+", default=["sm86", "sm120"])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "fp16"])
    parser.add_argument("--forms", nargs="+", default=FORM_NAMES, choices=FORM_NAMES)
    parser.add_argument("--json", type=Path, help="write every plan here")
    args = parser.parse_args(argv)

    rows, plans = [], {}
    with tempfile.TemporaryDirectory(prefix="plan-table-") as tmp:
        folder = Path(tmp)
        for model in args.models:
            files = _forms(model, args.forms, folder)
            for target in args.targets:
                for precision in args.precisions:
                    for mode, path in files.items():
                        plan = _plan(path, precision, target, folder, model)
                        plans[f"{model}/{target}/{precision}/{mode}"] = plan
                        blocks = plan["simam_blocks"] or 1
                        rows.append(
                            (model, target, precision, mode, plan["simam_kernels"] / blocks,
                             plan["layout_kernels_next_to_simam"] / blocks,
                             (plan["simam_bytes"] or 0) / blocks / 1e6, plan["batch"],
                             " ".join(_short(k["name"]) for k in plan["blocks"][0]["kernels"]))
                        )  # fmt: skip
                        print(f"{model} {target} {precision} {mode}: done", file=sys.stderr)
    print("| model | target | precision | form | kernels/block | transposes/block | MB/block | batch | "
          "first block's kernels |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|")
    for model, target, precision, mode, kernels, layout, mb, batch, names in rows:
        cells = (model, target, precision, mode, f"{kernels:.1f}", f"{layout:.1f}", f"{mb:.2f}", batch, names)
        print("| " + " | ".join(map(str, cells)) + " |")
    if args.json:
        args.json.write_text(json.dumps(plans, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
