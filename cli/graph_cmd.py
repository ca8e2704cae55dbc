"""``simam-deploy fuse`` and ``simam-deploy unfuse``: SimAM subgraphs <-> single SimAM nodes."""

from __future__ import annotations

from pathlib import Path

import click

from simam_deploy.cli.common import check_outputs, envelope, human_console, write_json
from simam_deploy.onnx_utils import EXTERNAL_DATA_CHOICES


def _print_fuse_report(report, source: Path, console) -> None:
    from rich.table import Table

    if report.fused:
        table = Table(title=f"SimAM subgraphs fused in {source.name}", title_justify="left")
        for col in ("new node", "input", "output", "e_lambda", "unbiased", "nodes replaced", "max err"):
            table.add_column(col)
        for f in report.fused:
            table.add_row(
                f.name, f.input, f.output, f"{f.e_lambda:.6g}", str(f.unbiased), str(len(f.replaced_nodes)),
                f"{f.max_abs_error:.2e}",
            )  # fmt: skip
        console.print(table)
    if report.rejected:
        table = Table(title="Rejected SimAM-like candidates (left unchanged)", title_justify="left")
        table.add_column("at node")
        table.add_column("reason")
        for r in report.rejected:
            table.add_row(r.node, r.reason)
        console.print(table)
    if report.existing_simam_nodes:
        console.print(
            f"{report.existing_simam_nodes} SimAM node(s) were already in the file (--expect counts them)"
        )
    if report.epilogue is not None:
        console.print(report.epilogue.summary())
    for note in report.notes:
        console.print(f"note: {note}")


FUSE_EPILOG = """\b
Examples:
  simam-deploy fuse model.onnx -o model-fused.onnx
  simam-deploy fuse yolo.onnx -o yolo-fused.onnx --expect 9 --json report.json
  simam-deploy fuse big.onnx -o big-fused.onnx --external-data always   # weights in big-fused.onnx.data
  simam-deploy fuse model.onnx --dry-run --json -                       # report only, JSON on stdout
  simam-deploy fuse r20.onnx -o r20-ep.onnx --epilogue                  # + BN, residual Add, ReLU folded
Exit codes: 0 ok, 1 --expect did not hold, 2 usage or input error. JSON schema: simam-deploy/fuse/v1."""

UNFUSE_EPILOG = """\b
Examples:
  simam-deploy unfuse model-fused.onnx -o model-plain.onnx
  simam-deploy unfuse r50-plugin.onnx -o r50.onnx --expect 16 --json -
Exit codes: 0 ok, 1 --expect did not hold, 2 usage or input error. JSON schema: simam-deploy/unfuse/v1."""


def _json_option():
    return click.option(
        "--json", "json_path", metavar="FILE", help="Write the report as JSON ('-' = stdout)."
    )


def _external_data_option():
    return click.option(
        "--external-data", type=click.Choice(EXTERNAL_DATA_CHOICES), default="auto", show_default=True,
        help="Weights in OUT.onnx.data: auto = when the input had external data or the model passes 2 GB.",
    )  # fmt: skip


def _expect_option(what: str):
    return click.option("--expect", type=int, metavar="N", help=f"Exit 1 unless exactly N {what}.")


def _written(files) -> str:
    return " + ".join(str(f) for f in files)


@click.command(
    help="Replace SimAM subgraphs in IN.onnx by single SimAM nodes (domain com.simam_deploy). "
    "OUT is always written (unchanged when nothing matched) and carries SimAM as a model-local ONNX "
    "function, so runtimes without the SimAM op still run it.",
    epilog=FUSE_EPILOG,
)
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Fused ONNX file to write."
)
@_json_option()
@click.option("--atol", type=float, default=1e-4, show_default=True,
              help="Tolerance of the numeric check of each match (relative to 1+|y|).")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Report what would be fused; write no model.")
@_expect_option("SimAM nodes are in OUT (fused now or already there)")
@_external_data_option()
@click.option("--no-function", is_flag=True, help="Leave out the model-local SimAM function.")
@click.option(
    "--epilogue", is_flag=True,
    help="Also fold what follows each SimAM node into it (new and existing nodes): a BatchNormalization "
    "or per-channel Mul/Add, then a residual Add, then Relu or x*Sigmoid(x). The fused kernel then needs "
    "the op library / TensorRT plugin of this version; runtimes without it use the local functions "
    "(IR 10 overloads, one per epilogue configuration), and `simam-deploy unfuse` writes standard ops.",
)  # fmt: skip
@click.option(
    "--always-write", is_flag=True, hidden=True, help="Kept for old scripts: OUT is always written."
)
def fuse(source: Path, output: Path | None, json_path: str | None, atol: float, dry_run: bool,
         expect: int | None, external_data: str, no_function: bool, epilogue: bool,
         always_write: bool) -> None:  # fmt: skip
    from simam_deploy.graph.pipeline import check_expected, fuse_count, fuse_file

    check_outputs({"-o": output, "--json": json_path}, [source])
    if expect is not None and expect < 0:
        raise click.BadParameter(f"must be >= 0, got {expect}", param_hint="--expect")
    console = human_console(json_path)
    report, written = fuse_file(
        source, output, atol=atol, dry_run=dry_run, function=not no_function, external_data=external_data,
        epilogue=epilogue,
    )  # fmt: skip
    _print_fuse_report(report, source, console)
    body = {"expect": expect, **report.to_dict(), "files": [str(f) for f in written]}
    outputs = {"onnx": output if written else None, "json": json_path}
    write_json(json_path, envelope("fuse", body, inputs={"onnx": source}, outputs=outputs))
    if dry_run:
        console.print(f"dry run: {len(report.fused)} subgraph(s) would be fused; nothing written")
    elif report.fused:
        console.print(
            f"fused {len(report.fused)} SimAM subgraph(s) in {report.seconds:.2f}s -> {_written(written)}"
        )
    elif report.epilogue is not None and report.epilogue.folded:
        console.print(
            f"folded the epilogue into {len(report.epilogue.folded)} existing SimAM node(s) "
            f"-> {_written(written)}"
        )
    else:
        console.print(
            f"no {'new ' if report.existing_simam_nodes else ''}SimAM subgraph found in {source}; "
            f"wrote the model unchanged -> {_written(written)}"
        )
    count, what = fuse_count(report)
    check_expected(count, expect, what)


@click.command(
    help="Expand every SimAM node of IN.onnx into standard ONNX ops (for the file's opset) and drop the "
    "local SimAM function. OUT is always written (unchanged when the file has no SimAM node).",
    epilog=UNFUSE_EPILOG,
)
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="ONNX file to write.")  # fmt: skip
@_json_option()
@_expect_option("SimAM nodes are expanded")
@_external_data_option()
@click.option(
    "--always-write", is_flag=True, hidden=True, help="Kept for old scripts: OUT is always written."
)
def unfuse(source: Path, output: Path, json_path: str | None, expect: int | None, external_data: str,
           always_write: bool) -> None:  # fmt: skip
    from simam_deploy.graph.pipeline import check_expected, unfuse_file

    check_outputs({"-o": output, "--json": json_path}, [source])
    if expect is not None and expect < 0:
        raise click.BadParameter(f"must be >= 0, got {expect}", param_hint="--expect")
    console = human_console(json_path)
    report, written = unfuse_file(source, output, external_data=external_data)
    count = len(report.expanded)
    body = {
        "simam_nodes_expanded": count,
        "written": True,
        **report.to_dict(),
        "files": [str(f) for f in written],
    }
    outputs = {"onnx": output, "json": json_path}
    write_json(json_path, envelope("unfuse", body, inputs={"onnx": source}, outputs=outputs))
    if count:
        console.print(f"expanded {count} SimAM node(s) into standard ops -> {_written(written)}")
    else:
        console.print(f"no SimAM node in {source}; wrote the model unchanged -> {_written(written)}")
    check_expected(count, expect, "expanded {} SimAM node(s)")
