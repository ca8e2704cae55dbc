"""``simam-deploy convert``: a float32 ONNX file to float16 / bfloat16 for strongly typed TensorRT."""

from __future__ import annotations

import click

from simam_deploy.cli.common import check_outputs, console, envelope, write_json

EPILOG = """\b
TensorRT >= 11 and TensorRT for RTX build strongly typed networks: the precision comes from the
ONNX file, not from a builder flag. This writes that file. Weights and activations take the reduced
type; SimAM statistics (mean, squared deviations, their sum, the variance) stay float32 in
decomposed graphs; SimAM nodes take the reduced type. Inputs/outputs stay float32 (casts at the
edges) unless --io-types model. bfloat16 needs opset 22 (older files are upgraded, with a notice).

\b
Examples:
  simam-deploy convert r20.onnx --precision fp16 -o r20-fp16.onnx
  simam-deploy convert r50-plugin.onnx --precision bf16 -o r50-plugin-bf16.onnx
  simam-deploy convert model.onnx --precision fp16 --io-types model -o model-fp16io.onnx --json -
"""


@click.command("convert", epilog=EPILOG)
@click.argument("source", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, metavar="OUT.onnx", help="Where to write the converted file.")
@click.option(
    "--precision", type=click.Choice(["fp16", "bf16"]), required=True, help="Reduced type to compute in."
)
@click.option(
    "--io-types",
    type=click.Choice(["float32", "model"]),
    default="float32",
    show_default=True,
    help="float32: inputs/outputs stay float32 with casts at the edges; model: they take the reduced type.",
)
@click.option(
    "--json", "json_path", metavar="FILE", help="Write the conversion report as JSON ('-' = stdout)."
)
def convert(source, output, precision, io_types, json_path) -> None:
    """Convert the float32 ONNX file SOURCE to float16 or bfloat16 (external data is read)."""
    from simam_deploy.precision import convert_file

    check_outputs({"-o": output, "--json": json_path}, [source])
    report = convert_file(source, output, precision, io_types=io_types)
    payload = envelope(
        "convert", report.to_dict(), inputs={"onnx": source}, outputs={"onnx": output, "json": json_path}
    )
    if json_path == "-":
        write_json("-", payload)
        return
    for notice in report.notices:
        console.print(f"[yellow]notice:[/yellow] {notice}")
    stats = (
        f"{report.simam_subgraphs} decomposed SimAM with float32 statistics "
        f"({len(report.float32_nodes)} float32 nodes), "
        if report.simam_subgraphs
        else ""
    )
    nodes = f"{report.simam_nodes} SimAM nodes in {precision}, " if report.simam_nodes else ""
    console.print(
        f"[green]wrote[/green] {report.output} ({report.file_bytes / 1e6:.1f} MB, {precision}, "
        f"I/O {io_types}, opset {report.opset_after}): {stats}{nodes}{report.weights_converted} weights "
        f"converted, {report.casts_added} casts added"
    )
    write_json(json_path, payload)
