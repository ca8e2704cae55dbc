from __future__ import annotations

import click
from rich.table import Table

from simam_deploy.backends import PRECISIONS
from simam_deploy.cli.common import check_outputs, envelope, human_console, write_json
from simam_deploy.errors import InputError
from simam_deploy.export import DEFAULT_OPSET, DYNAMIC_CHOICES, MAX_OPSET, MIN_OPSET, MODES, export_onnx
from simam_deploy.graph.epilogue import summary_line
from simam_deploy.onnx_utils import EXTERNAL_DATA_CHOICES
from simam_deploy.zoo import build_model, check_model_spec, default_input_shape, user_code_errors

EPILOG = """\b
Examples:
  simam-deploy export cifar-resnet20 -o r20.onnx
  simam-deploy export cifar-resnet20 --checkpoint model_best.pth.tar -o r20.onnx --dynamic all
  simam-deploy export resnet50 --opset 17 --input-shape 8x3x224x224 -o r50.onnx
  simam-deploy export resnet50 --mode plugin -o r50-plugin.onnx      # one SimAM node each
  simam-deploy export resnet50 --mode plugin --epilogue -o r50-ep.onnx   # + BN/residual/ReLU folded
  simam-deploy export resnet50 --precision fp16 -o r50-fp16.onnx     # for strongly typed TensorRT
  simam-deploy export mypkg.nets:build_net --input-shape 1x3x64x64 -o net.onnx
"""


@click.command("export", epilog=EPILOG)
@click.argument("model")
@click.option("-o", "--output", required=True, metavar="OUT.onnx", help="Where to write the ONNX file.")
@click.option("--checkpoint", metavar="PATH", help="State dict to load strictly (weights_only).")
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="decomposed",
    show_default=True,
    help="decomposed: standard ONNX ops only; plugin: one custom SimAM node per module.",
)
@click.option(
    "--opset",
    type=int,
    default=DEFAULT_OPSET,
    show_default=True,
    help=f"ONNX opset, {MIN_OPSET}-{MAX_OPSET}.",
)
@click.option(
    "--input-shape",
    metavar="SHAPE|NAME=SHAPE,...",
    help="Example input shape, any rank: 1x3x64x64, or 2x200x80 for [B,T,F] features; several inputs as "
    "NAME=SHAPE in forward's argument order (the names become the ONNX input names) [default: the zoo "
    "model's]. --dynamic all on [B,T,F] features keeps F fixed, on [B,T] nothing.",
)
@click.option(
    "--dynamic",
    type=click.Choice(DYNAMIC_CHOICES),
    default="batch",
    show_default=True,
    help="Dynamic axes: batch only, batch+H+W (other ranks: all but the feature/channel axis), or none.",
)
@click.option(
    "--exporter",
    type=click.Choice(["auto", "dynamo", "torchscript"]),
    default="auto",
    show_default=True,
    help="torch exporter; auto = dynamo for opset>=18, torchscript below.",
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    default="fp32",
    show_default=True,
    help="Types in the file (strongly typed TensorRT): fp16/bf16 keep SimAM statistics in fp32, I/O float32.",
)
@click.option("--json", "json_path", metavar="FILE", help="Write the export report as JSON ('-' = stdout).")
@click.option(
    "--allow-none", is_flag=True, help="--mode plugin: write the file even if no SimAM block is found."
)
@click.option("--no-function", is_flag=True, help="--mode plugin: leave out the model-local SimAM function.")
@click.option(
    "--epilogue",
    is_flag=True,
    help="--mode plugin: fold what follows each SimAM (BatchNormalization or per-channel Mul/Add, then a "
    "residual Add, then Relu or x*Sigmoid(x)) into its node. The fused kernel then needs the op "
    "library / TensorRT plugin of this version; elsewhere the local function overloads (IR 10) run, "
    "or `simam-deploy unfuse` writes standard ops.",
)
@click.option(
    "--external-data", type=click.Choice(EXTERNAL_DATA_CHOICES), default="auto", show_default=True,
    help="Weights in OUT.onnx.data: auto = only past 2 GB.",
)  # fmt: skip
def export(model, output, checkpoint, mode, opset, input_shape, dynamic, exporter, precision, json_path,
           allow_none, no_function, epilogue, external_data) -> None:  # fmt: skip
    """Export MODEL (a zoo name or package.module:callable) to ONNX.

    The file is checked with onnx.checker (full_check) before it is moved into place; nodes are
    named after the module they come from (/layer1/0/conv2/simam/Sigmoid) so a viewer shows
    where each SimAM sits.
    """
    model_file = model.rpartition(":")[0] if ":" in model else None
    check_outputs({"-o": output, "--json": json_path}, [checkpoint, model if model_file else None])
    console = human_console(json_path)
    check_model_spec(model)  # blame an unknown name before asking for its input shape
    shape = input_shape or default_input_shape(model)
    if shape is None:
        raise InputError(f"{model} is not a zoo model: give --input-shape", "e.g. --input-shape 1x3x64x64")
    with user_code_errors(model):
        net, ckpt_report = build_model(model, checkpoint)
    if ckpt_report:
        for notice in ckpt_report.notices():
            console.print(f"[dim]checkpoint: {notice}[/dim]")
    with console.status(f"exporting {model} ({mode}, opset {opset})..."), user_code_errors(model):
        report = export_onnx(
            net,
            output,
            mode=mode,
            opset=opset,
            input_shape=shape,
            dynamic=dynamic,
            exporter=exporter,
            inputs_to_protect=tuple(p for p in (checkpoint, model_file) if p),
            allow_none=allow_none,
            function=not no_function,
            external_data=external_data,
            precision=precision,
            epilogue=epilogue,
        )
    payload = envelope(
        "export",
        report.to_dict(),
        inputs={"model": model, "checkpoint": checkpoint},
        outputs={"onnx": output, "json": json_path},
    )
    if report.simam_modules:  # simam_deploy.nn.SimAM modules, with the input each one sees
        table = Table(show_header=True, title=f"{len(report.simam_modules)} SimAM modules found")
        for col in ("module", "e_lambda", "variance", "input"):
            table.add_column(col)
        for m in report.simam_modules:
            variance = "H*W-1" if m["unbiased"] else "H*W"
            table.add_row(m["name"], f"{m['e_lambda']:g}", variance, "x".join(map(str, m["input_shape"])))
        console.print(table)
    _print_blocks(report, console)
    extra = f", {report.simam_nodes} SimAM nodes" if mode == "plugin" else ""
    extra += f", {report.precision}" if report.precision != "fp32" else ""
    for notice in report.notices:
        console.print(f"[yellow]notice:[/yellow] {notice}")
    if report.epilogue is not None:
        console.print(summary_line(report.epilogue))
    console.print(
        f"[green]wrote[/green] {report.output} ({report.file_bytes / 1e6:.1f} MB, {report.onnx_nodes} nodes"
        f"{extra}; {report.exporter} exporter, opset {report.opset}, dynamic {report.dynamic}) "
        f"in {report.seconds:.1f} s"
    )
    write_json(json_path, payload)


def _print_blocks(report, console) -> None:
    """The SimAM blocks recognised in the graph, whatever class implements them."""
    if report.simam_blocks:
        table = Table(title=f"{len(report.simam_blocks)} SimAM blocks in the graph", title_justify="left")
        for col in ("path", "class", "e_lambda", "unbiased"):
            table.add_column(col)
        for b in report.simam_blocks:
            table.add_row(b["path"], b["class"] or "?", f"{b['e_lambda']:g}", str(b["unbiased"]))
        console.print(table)
    for note in report.notes:
        console.print(f"[yellow]note:[/yellow] {note}")
