"""``simam-deploy fuse`` and ``simam-deploy unfuse``: SimAM subgraphs <-> single SimAM nodes."""

from __future__ import annotations

from pathlib import Path

import click

from simam_deploy.cli.common import check_outputs, envelope, human_console, write_json
from simam_deploy.errors import InputError

FUSE_EPILOG = """\b
Examples:
  simam-deploy fuse r20.onnx -o r20-plugin.onnx
  simam-deploy fuse r20.onnx --dry-run --json -      # report only, JSON on stdout
  simam-deploy fuse model.onnx -o fused.onnx --atol 1e-3 --json fuse.json
Exit codes: 0 ok, 2 usage or input error. JSON schema: simam-deploy/fuse/v1."""

UNFUSE_EPILOG = """\b
Examples:
  simam-deploy unfuse r20-plugin.onnx -o r20.onnx
  simam-deploy unfuse r20-plugin.onnx -o r20.onnx --json -
Exit codes: 0 ok, 2 usage or input error. JSON schema: simam-deploy/unfuse/v1."""


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
        console.print(f"{report.existing_simam_nodes} SimAM node(s) were already in the file")


@click.command(
    help="Replace SimAM subgraphs in IN.onnx by single SimAM nodes (domain com.simam_deploy).",
    epilog=FUSE_EPILOG,
)
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Fused ONNX file to write."
)
@click.option("--json", "json_path", metavar="FILE", help="Write the report as JSON ('-' = stdout).")
@click.option("--atol", type=float, default=1e-4, show_default=True,
              help="Tolerance of the numeric check of each match (relative to 1+|y|).")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Report what would be fused; write no model.")
@click.option("--always-write", is_flag=True, help="Write OUT even when nothing was fused (a copy).")
def fuse(source: Path, output: Path | None, json_path: str | None, atol: float, dry_run: bool,
         always_write: bool) -> None:  # fmt: skip
    from simam_deploy.graph.fuse import fuse_simam
    from simam_deploy.graph.io import load_model, save_model

    if output is None and not dry_run:
        raise InputError("no output file given", "add -o OUT.onnx, or --dry-run to only report")
    if not atol > 0:
        raise InputError(f"--atol must be > 0, got {atol}", "e.g. --atol 1e-4")
    check_outputs({"-o": output, "--json": json_path}, [source])
    console = human_console(json_path)
    model = load_model(source)
    fused, report = fuse_simam(model, atol=atol, dry_run=dry_run)
    _print_fuse_report(report, source, console)
    written = bool(report.fused or always_write) and output is not None and not dry_run
    payload = envelope(
        "fuse",
        report.to_dict(),
        inputs={"onnx": source},
        outputs={"onnx": output if written else None, "json": json_path},
    )
    if not report.fused:
        console.print(f"no SimAM subgraph found in {source}" + ("" if always_write else "; nothing written"))
    elif dry_run:
        console.print(f"dry run: {len(report.fused)} subgraph(s) would be fused; nothing written")
    if written:
        save_model(fused, output)
        console.print(f"fused {len(report.fused)} SimAM subgraph(s) in {report.seconds:.2f}s -> {output}")
    write_json(json_path, payload)


@click.command(
    help="Expand every SimAM node of IN.onnx into standard ONNX ops (for the file's opset).",
    epilog=UNFUSE_EPILOG,
)
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="ONNX file to write.")  # fmt: skip
@click.option("--always-write", is_flag=True, help="Write OUT even when the file has no SimAM node (a copy).")
@click.option("--json", "json_path", metavar="FILE", help="Write the report as JSON ('-' = stdout).")
def unfuse(source: Path, output: Path, always_write: bool, json_path: str | None) -> None:
    from simam_deploy.graph.contract import validate_simam_nodes
    from simam_deploy.graph.io import load_model, save_model
    from simam_deploy.graph.unfuse import unfuse_simam

    check_outputs({"-o": output, "--json": json_path}, [source])
    console = human_console(json_path)
    model = load_model(source)
    count = len(validate_simam_nodes(model))
    written = count > 0 or always_write
    if count == 0:
        console.print(f"no SimAM node in {source}" + ("" if always_write else "; nothing written"))
    if written:
        save_model(unfuse_simam(model), output)
        console.print(f"expanded {count} SimAM node(s) into standard ops -> {output}")
    payload = {"simam_nodes_expanded": count if written else 0, "written": written}
    write_json(
        json_path,
        envelope(
            "unfuse",
            payload,
            inputs={"onnx": source},
            outputs={"onnx": output if written else None, "json": json_path},
        ),
    )
