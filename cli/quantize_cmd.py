"""``simam-deploy quantize``: explicit INT8 (Q/DQ) ONNX with every SimAM kept in higher precision."""

from __future__ import annotations

import contextlib
import sys

import click

from simam_deploy.cli.common import check_outputs, envelope, human_console, progress, write_json

EPILOG = """\b
TensorRT >= 10, TensorRT for RTX and ONNX Runtime take INT8 as QuantizeLinear/DequantizeLinear pairs
in the file. This writes them on the inputs of Conv/Gemm/MatMul layers: activations per tensor,
weights per output channel, both symmetric int8; biases stay float32 (what TensorRT accepts). Every
SimAM block (decomposed or fused) and its statistics stay float32 (--high-precision fp16: float16 with
float32 statistics). The first --samples inputs calibrate; the rest are held out and measure the top-1
agreement with the float32 file. --target-agreement keeps the most sensitive layers float32 until it
holds; when that needs more than --min-quantized allows, the best file within it is written, the
layers it would need are named, and the exit code is 1.

\b
Examples:
  simam-deploy quantize r20.onnx -o r20-int8.onnx --calibrate photos/ --reference cifar-resnet20
  simam-deploy quantize r20.onnx -o r20-int8.onnx --calibrate calib.npz --method percentile
  simam-deploy quantize r20.onnx -o r20-int8.onnx --calibrate photos/ --reference cifar-resnet20 \\
      --samples 256 --target-agreement 0.99 --json report.json
  simam-deploy build r20-int8.onnx -o r20-int8.engine     # INT8 engine (Q/DQ read from the file)
"""


@click.command("quantize", epilog=EPILOG)
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, metavar="OUT.onnx", help="Where to write the Q/DQ file.")
@click.option(
    "--calibrate",
    required=True,
    metavar="DIR|FILE.npz|module:callable",
    help="Calibration inputs: the sources of validate --inputs (images, .npz, saved folder, callable).",
)
@click.option(
    "--method",
    type=click.Choice(["entropy", "percentile", "minmax"]),
    default="minmax",
    show_default=True,
    help="How activation ranges are chosen from the calibration statistics.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=256,
    show_default=True,
    help="Samples used to calibrate; the rest are held out to measure agreement.",
)
@click.option(
    "--quantizer",
    type=click.Choice(["onnxruntime", "modelopt"]),
    default="onnxruntime",
    show_default=True,
    help="onnxruntime.quantization, or NVIDIA ModelOpt where it is installed.",
)
@click.option(
    "--high-precision",
    type=click.Choice(["fp32", "fp16"]),
    default="fp32",
    show_default=True,
    help="What SimAM blocks and other unquantized parts compute in (statistics stay fp32).",
)
@click.option(
    "--target-agreement",
    type=float,
    metavar="F",
    help="Keep the most sensitive layers float32 until top-1 agreement on held-out samples >= F.",
)
@click.option(
    "--min-quantized",
    type=float,
    default=0.8,
    show_default=True,
    help="--target-agreement: share of convolution weights that must stay int8.",
)
@click.option("--exclude", multiple=True, metavar="NODE", help="Keep this layer float32 (repeatable).")
@click.option("--reference", metavar="MODEL", help="Zoo model whose image preprocessing to use for a folder.")
@click.option("--mean", metavar="R,G,B", help="Image normalisation mean [default: the zoo model's].")
@click.option("--std", metavar="R,G,B", help="Image normalisation std [default: the zoo model's].")
@click.option("--size", metavar="S|HxW", help="Image crop size [default: the zoo model's / the file's].")
@click.option(
    "--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="Images per batch."
)
@click.option(
    "--external-data",
    type=click.Choice(["auto", "always", "never"]),
    default="auto",
    show_default=True,
    help="Weights in OUT.onnx.data: auto = when the input had external data or the model is over 2 GB.",
)
@click.option("--json", "json_path", metavar="FILE", help="Write the report as JSON ('-' = stdout).")
def quantize(source, output, calibrate, method, samples, quantizer, high_precision, target_agreement,
             min_quantized, exclude, reference, mean, std, size, batch_size, external_data,
             json_path) -> None:  # fmt: skip
    """Quantize the float32 ONNX file SOURCE to INT8 (Q/DQ), SimAM blocks kept in higher precision."""
    from simam_deploy.quantize import quantize_file

    check_outputs({"-o": output, "--json": json_path}, [source, calibrate])
    out = human_console(json_path)
    # onnxruntime.quantization reports progress with print(): onto stderr, so that stdout holds
    # only what we write there (the JSON document with --json -)
    with contextlib.redirect_stdout(sys.stderr):
        report = quantize_file(
            source,
            output,
            calibrate,
            samples=samples,
            method=method,
            quantizer=quantizer,
            high_precision=high_precision,
            target_agreement=target_agreement,
            min_quantized=min_quantized,
            exclude=exclude,
            reference=reference,
            mean=mean,
            std=std,
            size=size,
            batch_size=batch_size,
            external_data=external_data,
            on_progress=progress,
        )
    body = report.to_dict()
    outputs = {"onnx": report.output or None, "json": json_path}
    write_json(
        json_path,
        envelope("quantize", body, inputs={"onnx": source, "calibrate": calibrate}, outputs=outputs),
    )
    for notice in report.notices:
        out.print(f"[yellow]notice:[/yellow] {notice}")
    for decision in report.kept:
        out.print(f"kept {decision.name} ({decision.op_type}): {decision.reason}")
    a = report.agreement
    if a is not None:
        conf = "n/a" if a.confident_top1 is None else f"{a.confident_top1:.4f} on {a.confident_rows}"
        top1 = "n/a" if a.top1 is None else f"{a.top1:.4f}"
        out.print(
            f"held-out agreement with float32 ({a.samples} samples): top-1 {top1}, confident rows {conf}, "
            f"cosine {a.cosine:.4f}"
        )
    quantized = len(report.quantized)
    share = f"{report.conv_weight_share:.1%} of convolution weights int8"
    blocks = report.simam_blocks + report.simam_nodes
    out.print(
        f"[green]wrote[/green] {report.output} ({report.file_bytes / 1e6:.2f} MB): {quantized} layers int8 "
        f"({share}), {blocks} SimAM blocks kept {high_precision}, {report.qdq_pairs} activation Q/DQ pairs"
    )
    if report.reached is False:
        out.print(
            f"[red]FAIL[/red] --target-agreement {report.target_agreement} not reached while keeping "
            f">= {min_quantized:.0%} of convolution weights int8 (the file written is the best within "
            f"that); it would need these layers float32: {', '.join(report.would_need)}"
        )
        raise SystemExit(1)
