"""``simam-deploy fuse`` and ``simam-deploy unfuse``: SimAM subgraphs <-> single SimAM nodes."""

from __future__ import annotations

import json
from pathlib import Path

import click

from simam_deploy.errors import InputError
from simam_deploy.fileio import check_output_path, write_text_atomic


def _console():
    from rich.console import Console

    return Console()


def _print_fuse_report(report, source: Path) -> None:
    from rich.table import Table

    console = _console()
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


@click.command(help="Replace SimAM subgraphs in IN.onnx by single SimAM nodes (domain com.simam_deploy).")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Fused ONNX file to write."
)
@click.option(
    "--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the report as JSON."
)
@click.option("--atol", type=float, default=1e-4, show_default=True,
              help="Tolerance of the numeric check of each match (relative to 1+|y|).")  # fmt: skip
@click.option("--dry-run", is_flag=True, help="Report what would be fused; write no model.")
@click.option("--always-write", is_flag=True, help="Write OUT even when nothing was fused (a copy).")
def fuse(source: Path, output: Path | None, json_path: Path | None, atol: float, dry_run: bool,
         always_write: bool) -> None:  # fmt: skip
    from simam_deploy.graph.fuse import fuse_simam
    from simam_deploy.graph.io import load_model, save_model

    if output is None and not dry_run:
        raise InputError("no output file given", "add -o OUT.onnx, or --dry-run to only report")
    if not atol > 0:
        raise InputError(f"--atol must be > 0, got {atol}", "e.g. --atol 1e-4")
    if output is not None:
        check_output_path(output, [source])
    if json_path is not None:
        check_output_path(json_path, [source, *([output] if output else [])])
    model = load_model(source)
    fused, report = fuse_simam(model, atol=atol, dry_run=dry_run)
    _print_fuse_report(report, source)
    if json_path is not None:
        write_text_atomic(json_path, json.dumps(report.to_dict(), indent=2) + "\n")
    if not report.fused:
        click.echo(f"no SimAM subgraph found in {source}" + ("" if always_write else "; nothing written"))
        if not always_write or output is None or dry_run:
            return
    if dry_run:
        click.echo(f"dry run: {len(report.fused)} subgraph(s) would be fused; nothing written")
        return
    save_model(fused, output)
    click.echo(f"fused {len(report.fused)} SimAM subgraph(s) in {report.seconds:.2f}s -> {output}")


@click.command(help="Expand every SimAM node of IN.onnx into standard ONNX ops (for the file's opset).")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="ONNX file to write.")  # fmt: skip
@click.option("--always-write", is_flag=True, help="Write OUT even when the file has no SimAM node (a copy).")
def unfuse(source: Path, output: Path, always_write: bool) -> None:
    from simam_deploy.graph.contract import validate_simam_nodes
    from simam_deploy.graph.io import load_model, save_model
    from simam_deploy.graph.unfuse import unfuse_simam

    check_output_path(output, [source])
    model = load_model(source)
    count = len(validate_simam_nodes(model))
    if count == 0:
        click.echo(f"no SimAM node in {source}" + ("" if always_write else "; nothing written"))
        if not always_write:
            return
    save_model(unfuse_simam(model), output)
    click.echo(f"expanded {count} SimAM node(s) into standard ops -> {output}")
