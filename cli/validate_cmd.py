from __future__ import annotations

import click
from click.core import ParameterSource
from rich.table import Table

from simam_deploy.backends import PRECISIONS, backend_names
from simam_deploy.cli.common import check_outputs, envelope, human_console, progress, write_json
from simam_deploy.errors import InputError
from simam_deploy.parity import ParityReport, RunResult
from simam_deploy.precision import DEFAULT_TOLERANCES
from simam_deploy.shapes import parse_input_shapes

_DEFAULTS = ", ".join(f"{p} atol {a:g} rtol {r:g}" for p, (a, r) in DEFAULT_TOLERANCES.items())
EPILOG = f"""\b
An element passes when |target - reference| <= atol + rtol*|reference|; the verdict prints how
much of that margin the worst element uses. Tolerances not given default per precision
({_DEFAULTS}); the precision is read from an ONNX file's tensor types
(--precision auto); engines need --precision fp16|bf16 when they are not fp32.
NaN or Inf in either side's outputs fails the check (with the count and where) unless
--allow-nonfinite; top-1 agreement counts only rows that are finite on both sides.
Exit codes: 0 parity holds, 1 mismatch (or NaN/Inf), 2 usage or input error.

\b
Examples:
  simam-deploy validate r20.onnx --reference cifar-resnet20 --checkpoint model_best.pth.tar
  simam-deploy validate r20.onnx --reference cifar-resnet20 --inputs batch.npz --json report.json
  simam-deploy validate r20-fp16.onnx --reference cifar-resnet20      # fp16 defaults, picked from the file
  simam-deploy validate r50.engine --reference resnet50 --precision fp16
  simam-deploy validate r20.onnx --reference cifar-resnet20 --per-layer --plot layers.png
  simam-deploy validate r20.onnx --reference cifar-resnet20 --inputs photos/ --save-inputs io/
  simam-deploy validate r20.engine --reference cifar-resnet20 --per-layer --onnx-source r20.onnx
  simam-deploy validate r20-fused.onnx --reference cifar-resnet20 --backend openvino
  simam-deploy validate r20.engine --reference-outputs io/          # on the device: no torch needed
  simam-deploy validate r20.engine --reference-outputs out.json --load-inputs in.json   # Polygraphy's

\b
--per-layer compares every SimAM block's input and output (module paths, network order) and names the
first diverging block; see docs/per-layer.md.

\b
--reference-outputs compares with outputs saved on the host instead of running PyTorch (torch need not
be installed): a folder written by --save-outputs (its inputs are read from the same folder unless
--inputs names them) or Polygraphy's --save-outputs JSON with --inputs/--load-inputs of its
--save-inputs JSON. Names, counts and shapes of saved inputs and outputs must match the target.
"""


@click.command("validate", epilog=EPILOG)
@click.argument("target", type=click.Path(dir_okay=False))
@click.option("--reference", metavar="MODEL", help="The PyTorch model (zoo name or module:callable).")
@click.option(
    "--reference-outputs",
    metavar="DIR|FILE.json",
    help="Instead of --reference: outputs saved on the host (--save-outputs folder, Polygraphy JSON).",
)
@click.option("--checkpoint", metavar="PATH", help="Weights for the reference model.")
@click.option("--atol", type=float, help="Absolute tolerance [default: per precision].")
@click.option("--rtol", type=float, help="Relative tolerance [default: per precision].")
@click.option(
    "--precision",
    type=click.Choice(["auto", *PRECISIONS, "int8"]),
    default="auto",
    show_default=True,
    help="Precision the target computes in, for default tolerances (auto: from an ONNX file's types).",
)
@click.option(
    "--inputs",
    "--load-inputs",
    "inputs",
    default="random",
    show_default=True,
    metavar="random|FILE.npz|FILE.json|DIR|module:callable",
    help="Random inputs (3 seeds, plus other batch/H/W sizes where the file is dynamic), an .npz, "
    "Polygraphy --save-inputs JSON, a folder of images (or one written by --save-inputs), or a callable "
    "yielding input dicts/arrays.",
)
@click.option("--mean", metavar="R,G,B", help="Image normalisation mean [default: the zoo model's].")
@click.option("--std", metavar="R,G,B", help="Image normalisation std [default: the zoo model's].")
@click.option("--size", metavar="S|HxW", help="Image crop size [default: the zoo model's / the file's].")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Images per run."
)
@click.option(
    "--per-layer", is_flag=True, help="Also compare every SimAM block; name the first that diverges."
)
@click.option(
    "--onnx-source", metavar="FILE.onnx", help="--per-layer on an engine: the ONNX it was built from."
)
@click.option(
    "--probe-precision",
    type=click.Choice(PRECISIONS),
    default="fp32",
    show_default=True,
    help="--per-layer on an engine: precision of the debug engine.",
)
@click.option("--save-inputs", metavar="DIR", help="Write the inputs (trtexec .bin, Polygraphy JSON).")
@click.option(
    "--save-outputs", metavar="DIR", help="Write PyTorch's outputs on them (--loadRefOutputs, JSON)."
)
@click.option(
    "--plot", metavar="FILE.png", help="Write the error per SimAM block as a PNG (--per-layer; log scale)."
)
@click.option("--seeds", default="0,1,2", show_default=True, help="Comma-separated seeds for random inputs.")
@click.option(
    "--input-shape",
    metavar="SHAPE|NAME=SHAPE,...",
    help="Shape for random inputs, any rank (1x3x32x32, 2x200x80), or one per input "
    "(feats=2x200x80,mask=2x200) [default: from the file / zoo].",
)
@click.option("--plugin-lib", metavar="PATH", help="TensorRT plugin library (engines only).")
@click.option(
    "--backend",
    type=click.Choice(backend_names(lambda b: bool(b.suffixes))),
    help="Run TARGET on this backend [default: by file type: .onnx onnxruntime, .engine tensorrt].",
)
@click.option(
    "--allow-nonfinite",
    is_flag=True,
    help="Expect NaN/Inf: they pass when both sides have them in the same places.",
)
@click.option("--json", "json_path", metavar="FILE", help="Write the report as JSON ('-' = stdout).")
@click.pass_context
def validate(
    ctx, target, reference, reference_outputs, checkpoint, atol, rtol, precision, inputs, mean, std, size,
    batch_size, per_layer, onnx_source, probe_precision, save_inputs, save_outputs, plot, seeds, input_shape,
    plugin_lib, backend, allow_nonfinite, json_path,
) -> None:  # fmt: skip
    """Run TARGET (.onnx in ONNX Runtime, or OpenVINO with --backend openvino; .engine in TensorRT) and
    the PyTorch reference (or outputs saved on the host) on the same inputs and report, per output: max
    abs / max rel / mean error, the fraction outside tolerance, NaN/Inf counts and top-1 agreement for
    classifiers."""
    from simam_deploy.validate import validate as run_validate

    seed_list = _parse_seeds(seeds)
    if reference_outputs is not None and ctx.get_parameter_source("seeds") is ParameterSource.COMMANDLINE:
        raise InputError(
            "--seeds cannot be combined with --reference-outputs: the saved inputs are used",
            "leave out --seeds",
        )
    npz = None if inputs == "random" else inputs
    check_outputs(
        {"--json": json_path, "--plot": plot},
        [
            target,
            checkpoint,
            npz,
            plugin_lib,
            onnx_source,
            reference_outputs,
            reference if reference and ":" in reference else None,
        ],
        folders={"--save-inputs": save_inputs, "--save-outputs": save_outputs},
    )
    shape = parse_input_shapes(input_shape) if input_shape else None
    out = human_console(json_path)
    table = _make_table("saved outputs" if reference_outputs else "PyTorch")
    against = f"the PyTorch reference {reference}"
    if reference_outputs:
        against = f"the saved outputs {reference_outputs}"
    progress(f"validate: loading {target} and {against} ...")

    def on_run(run: RunResult) -> None:
        for name, s in run.outputs.items():
            table.add_row(
                str(run.seed) if run.seed is not None else "file",
                ", ".join("x".join(map(str, s)) for s in run.input_shapes.values()),
                name,
                f"{s.max_abs:.3g}",
                f"{s.max_rel:.3g}",
                f"{s.mean_abs:.3g}",
                f"{s.frac_outside:.2%}",
                "-" if s.top1_agreement is None else f"{s.top1_agreement:.0%} of {s.top1_rows}",
                f"{s.nan_target}/{s.inf_target} | {s.nan_reference}/{s.inf_reference}",
                "[green]ok[/green]" if s.passed else "[red]FAIL[/red]",
            )

    report = run_validate(
        target,
        reference,
        reference_outputs=reference_outputs,
        checkpoint=checkpoint,
        atol=atol,
        rtol=rtol,
        precision=precision,
        inputs=npz,
        seeds=seed_list,
        input_shape=shape,
        plugin_lib=plugin_lib,
        backend=backend,
        on_run=on_run,
        allow_nonfinite=allow_nonfinite,
        on_start=lambda i, n, what: progress(f"run {i + 1}/{n}: {what}"),
        per_layer=per_layer,
        onnx_source=onnx_source,
        probe_precision=probe_precision,
        mean=mean,
        std=std,
        size=size,
        batch_size=batch_size,
        save_inputs=save_inputs,
        save_outputs=save_outputs,
        plot=plot,
    )
    write_json(
        json_path,
        envelope(
            "validate",
            report.to_dict(),
            inputs={
                "target": target,
                "reference": reference,
                "reference_outputs": reference_outputs,
                "checkpoint": checkpoint,
                "inputs": npz,
            },
            outputs={
                "json": json_path,
                "plot": plot,
                "save_inputs": save_inputs,
                "save_outputs": save_outputs,
            },
        ),
    )
    out.print(table)
    _print_nonfinite(out, report)
    _print_sections(out, report)
    _print_verdict(out, report)
    raise SystemExit(0 if report.passed else 1)


def _parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise InputError(f"--seeds {text!r}: seeds must be integers", "e.g. --seeds 0,1,2") from None
    if not seeds:
        raise InputError("--seeds is empty", "give at least one seed, e.g. --seeds 0,1,2")
    if any(s < 0 for s in seeds):
        raise InputError(f"--seeds {text!r}: seeds must be >= 0", "e.g. --seeds 0,1,2")
    return seeds


def _make_table(reference: str) -> Table:
    table = Table(title=f"parity: target vs {reference}")
    for col in (
        "seed",
        "input",
        "output",
        "max abs",
        "max rel",
        "mean abs",
        "outside tol",
        "top-1",
        "NaN/Inf target | ref",
        "",
    ):
        table.add_column(col)
    return table


def _print_nonfinite(out, report: ParityReport) -> None:
    for run in report.runs:
        for name, s in run.outputs.items():
            for where in s.nonfinite_where:
                label = "file" if run.seed is None else f"seed {run.seed}"
                out.print(f"[yellow]non-finite[/yellow] {label}, output {name}: {where}")
    if report.worst()["nonfinite"] and not report.allow_nonfinite:
        out.print("NaN/Inf fail the check; pass --allow-nonfinite if you expect them (same places)")


def _print_verdict(out, report: ParityReport) -> None:
    worst = report.worst()
    verdict = "[green]PASS[/green]" if report.passed else "[red]FAIL[/red]"
    used = worst["tolerance_used"]
    top1 = worst.get("min_top1_agreement")
    out.print(f"tolerances: {report.tolerance_source}")
    out.print(
        f"{verdict} {report.target} ({report.target_backend}) vs {report.reference}: "
        f"{len(report.runs)} run(s); the worst element uses {used:.1%} of its allowed error "
        f"|t-r| <= atol + rtol*|r| (atol {report.atol:g}, rtol {report.rtol:g}; pass <= 100%); "
        f"max abs {worst['max_abs']:.3g}, max rel {worst['max_rel']:.3g}"
        + (f", {worst['nonfinite']} NaN/Inf" if worst["nonfinite"] else "")
        + ("" if top1 is None else f", top-1 agreement >= {top1:.1%}")
        + _quantized_metrics(report, worst)
    )


def _quantized_metrics(report: ParityReport, worst: dict) -> str:
    """int8 targets: the agreement that matters beside the elementwise rule."""
    if report.precision != "int8":
        return ""
    sure, cosine = worst.get("min_confident_top1"), worst.get("min_cosine")
    rows = sum(o.confident_rows for r in report.runs for o in r.outputs.values())
    return ("" if sure is None else f", confident-row (p > 0.5, {rows} rows) agreement >= {sure:.1%}") + (
        "" if cosine is None else f", cosine >= {cosine:.4f}"
    )


def _print_sections(console, report: ParityReport) -> None:
    used = report.sections.get("inputs")
    if used:
        top1 = used.get("top1_agreement")
        console.print(
            f"inputs: {used['samples']} samples from {used['source']} ({used['kind']})"
            + ("" if top1 is None else f", top-1 agreement {top1:.2%}")
        )
    if "layers" in report.sections:
        from simam_deploy.per_layer import layers_table

        console.print(layers_table(report.sections))
        divergence = report.sections.get("divergence")
        console.print(
            f"[red]{divergence['message']}[/red]"
            if divergence
            else "[green]every SimAM block matches[/green]"
        )
