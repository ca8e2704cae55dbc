"""``simam-deploy build``: ONNX (with SimAM nodes) -> TensorRT engine, with the SimAM plugin."""

from __future__ import annotations

import click
from rich.console import Console

from simam_deploy.backends.tensorrt.modes import BUILD_MODES, DEFAULT_RUNS
from simam_deploy.cli.common import check_outputs, envelope, human_console, progress, write_json

EPILOG = """\b
Examples:
  simam-deploy build r20-plugin.onnx -o r20.engine
  simam-deploy build r20-plugin.onnx -o r20.engine --runtime tensorrt-rtx --compute-capability sm86,sm120
  simam-deploy build r20-plugin.onnx -o r20.engine --embed-plugin --json -
  simam-deploy build r20-plugin.onnx -o r20.engine --fp16       (11 and RTX: converted to fp16 on the way)
  simam-deploy build r20-plugin.onnx -o r20.engine --shapes input=1x3x32x32:32x3x32x32:128x3x32x32
  simam-deploy build model.onnx -o model.engine --bf16 --workspace 2048 --timing-cache trt.cache
  simam-deploy build r20.onnx -o r20.engine --mode auto --fp16    (build each form, keep the best)
  simam-deploy build r20-plugin.onnx -o r20.engine --minShapes=input:1x3x32x32 \\
          --optShapes=input:32x3x32x32 --maxShapes=input:128x3x32x32      (trtexec's syntax works too)
\b
trtexec equivalent (TensorRT >= 8.6; on 8.5 use --plugins=PATH instead of --dynamicPlugins; trtexec 11
has no --fp16: give it `simam-deploy convert r20-plugin.onnx --precision fp16 -o r20-fp16.onnx` instead):
  trtexec --onnx=r20-plugin.onnx --saveEngine=r20.engine --fp16 \\
          --dynamicPlugins=$(simam-deploy libs --tensorrt) \\
          --minShapes=input:1x3x32x32 --optShapes=input:32x3x32x32 --maxShapes=input:128x3x32x32
\b
--runtime auto tries TensorRT (module tensorrt), then TensorRT for RTX (tensorrt_rtx_bindings,
which builds engines without a GPU). The plugin library is found automatically (--plugin-lib,
$SIMAM_TRT_PLUGIN, the installed package, then build/); build it with
`make plugin TENSORRT_ROOT=/path/to/TensorRT` (for RTX: the 11.x headers).
\b
--mode: as-is builds the file as given; plugin its fused form (SimAM subgraphs -> SimAM nodes, as
`fuse` writes it); plugin+epilogue that with the BatchNorm/residual Add/ReLU after each SimAM folded
into its node (`fuse --epilogue`); decomposed its standard-op form (`unfuse`); auto builds every
distinct form, reads each plan (kernels and transposes per SimAM block, estimated bytes), times each
engine when a GPU is present (median of --runs), and writes only the best: the fastest, else the
fewest bytes, then the fewest kernels. A form that fails to build is reported and skipped.
Exit codes: 0 ok, 2 bad input, a failed build (auto: every form failed), or TensorRT missing."""


@click.command(epilog=EPILOG, context_settings={"max_content_width": 110})
@click.argument("onnx_file", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Engine file to write.")
@click.option(
    "--fp16",
    "precision",
    flag_value="fp16",
    help="FP16: the builder flag on TensorRT 8.6/10.x; on 11 and RTX the file is converted to fp16 first.",
)
@click.option(
    "--bf16",
    "precision",
    flag_value="bf16",
    help="BF16: the builder flag on TensorRT 9/10 (Ampere+); on 11 and RTX the file is converted first.",
)
@click.option(
    "--shapes",
    "shapes",
    multiple=True,
    metavar="[NAME=]MIN:OPT:MAX",
    help="Optimization profile for a dynamic input, e.g. input=1x3x32x32:8x3x32x32:32x3x32x32. Repeatable.",
)
@click.option(
    "--minShapes",
    "min_shapes",
    metavar="NAME:DIMS[,...]",
    help="trtexec syntax, with --optShapes/--maxShapes.",
)
@click.option(
    "--optShapes", "opt_shapes", metavar="NAME:DIMS[,...]", help="trtexec syntax: the shapes to tune for."
)
@click.option(
    "--maxShapes", "max_shapes", metavar="NAME:DIMS[,...]", help="trtexec syntax: the largest shapes."
)
@click.option("--plugin-lib", type=click.Path(dir_okay=False), help="Path of libsimam_trt_plugin.so.")
@click.option("--workspace", "workspace_mb", type=int, metavar="MB", help="Workspace memory pool limit.")
@click.option(
    "--timing-cache", type=click.Path(dir_okay=False), help="Timing cache file (read, then updated)."
)
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the report as JSON ('-' = stdout).",
)
@click.option(
    "--runtime",
    type=click.Choice(["auto", "tensorrt", "tensorrt-rtx"]),
    default="auto",
    show_default=True,
    help="Which TensorRT builds the engine.",
)
@click.option(
    "--compute-capability",
    "compute_capabilities",
    metavar="SM[,SM...]",
    default="",
    help="TensorRT for RTX targets, e.g. sm86,sm89,sm120 (default: the builder's).",
)
@click.option(
    "--embed-plugin", is_flag=True, help="Store the plugin library in the engine (plugins_to_serialize)."
)
@click.option(
    "--show-plan",
    is_flag=True,
    help="List the kernels TensorRT chose for every SimAM block (the summary line is always printed).",
)
@click.option(
    "--mode",
    type=click.Choice(BUILD_MODES),
    default="as-is",
    show_default=True,
    help="Which form of the network to build; auto builds each and keeps the best (see below).",
)
@click.option(
    "--runs",
    type=click.IntRange(min=0),
    default=DEFAULT_RUNS,
    show_default=True,
    help="--mode auto on a GPU: timed runs per engine (median); 0 = compare plans only.",
)
@click.option("--verbose", is_flag=True, help="TensorRT's verbose log.")
def build(
    onnx_file: str,
    output: str,
    precision: str | None,
    shapes: tuple[str, ...],
    min_shapes: str | None,
    opt_shapes: str | None,
    max_shapes: str | None,
    plugin_lib: str | None,
    workspace_mb: int | None,
    timing_cache: str | None,
    json_path: str | None,
    runtime: str,
    compute_capabilities: str,
    embed_plugin: bool,
    show_plan: bool,
    mode: str,
    runs: int,
    verbose: bool,
) -> None:
    """Build a TensorRT engine from ONNX_FILE; its SimAM nodes run as the SimAM plugin."""
    from simam_deploy.backends.tensorrt import BuildOptions
    from simam_deploy.backends.tensorrt.builder import shapes_from_trtexec
    from simam_deploy.backends.tensorrt.modes import build_with_mode

    # The timing cache is read and rewritten: an output that must not collide with -o, --json or an input.
    check_outputs(
        {"-o": output, "--json": json_path, "--timing-cache": timing_cache}, [onnx_file, plugin_lib]
    )
    console = human_console(json_path)
    options = BuildOptions(
        precision=precision or "fp32",
        shapes=[*shapes, *shapes_from_trtexec(min_shapes, opt_shapes, max_shapes)],
        plugin_lib=plugin_lib,
        workspace_mb=workspace_mb,
        timing_cache=timing_cache,
        verbose=verbose,
        runtime=runtime,
        compute_capabilities=[part for part in compute_capabilities.split(",") if part.strip()],
        embed_plugin=embed_plugin,
    )
    report = build_with_mode(onnx_file, output, mode, options, runs=runs, progress=progress)
    out = Console(stderr=True, highlight=False) if json_path == "-" else console  # stdout: JSON only
    if report.candidates:
        _print_candidates(out, report.candidates, report.reason)
    for notice in report.notices:
        out.print(f"[yellow]notice:[/yellow] {notice}")
    built_by = "TensorRT for RTX" if report.runtime == "tensorrt-rtx" else "TensorRT"
    targets = f", {'/'.join(report.compute_capabilities)}" if report.compute_capabilities else ""
    out.print(
        f"[green]wrote[/green] {report.engine} ({report.engine_bytes / 1e6:.2f} MB, "
        f"{report.precision} network{' with INT8 Q/DQ' if report.qdq_layers else ''}"
        f"{''.join(f' + {flag} flag' for flag in report.builder_flags)}, "
        f"{built_by} {report.tensorrt_version}{targets}, built in {report.build_seconds:.2f} s)"
    )
    embedded = " (embedded in the engine)" if report.plugin_embedded else ""
    out.print(
        f"  {report.simam_plugin_layers}/{report.simam_nodes} SimAM nodes -> SimAM plugin layers "
        f"({report.layers} layers), plugin {report.plugin_library}{embedded}"
    )
    _print_plan(out, report.plan, report.plan_note, show_plan)
    write_json(
        json_path,
        envelope(
            "build",
            report.to_dict(),
            inputs={"onnx": onnx_file, "plugin_lib": plugin_lib},
            outputs={"engine": output, "json": json_path, "timing_cache": timing_cache},
        ),
    )


def _mb(n: int | None) -> str:
    return "?" if n is None else f"{n / 1e6:.1f} MB"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _print_candidates(out: Console, candidates: list[dict], reason: str | None) -> None:
    """--mode: every form tried, its plan and latency, and why the kept one was kept."""
    from rich.table import Table

    table = Table("form", "made", "status", "engine kernels", "per SimAM block", "transposes/block",
                  "SimAM bytes", "latency", title="forms built", title_justify="left")  # fmt: skip
    for c in candidates:
        latency = "-" if c["latency_ms"] is None else f"{c['latency_ms']:.4f} ms"
        status = c["status"] if c["error"] is None else f"{c['status']}: {c['error']}"
        table.add_row(c["form"], c["made"], status,
                      _num(c["kernels"], "d"), _num(c["kernels_per_block"], ".1f"),
                      _num(c["layout_kernels_per_block"], ".1f"),
                      _mb(c["simam_bytes"]) if c["status"] == "built" else "-", latency)  # fmt: skip
    out.print(table)
    out.print(f"[green]kept[/green] {reason}")


def _print_plan(out: Console, plan: dict | None, note: str | None, show: bool) -> None:
    """One line on what the plan does around SimAM; with --show-plan, every block's kernels."""
    if plan is None:
        out.print(f"  plan: not shown ({note})")
        return
    blocks = plan["blocks"]
    if not blocks:
        out.print(f"  plan: {plan['kernels']} kernels, no SimAM block")
        return
    out.print(
        f"  plan: {plan['kernels']} kernels; {plan['simam_blocks']} SimAM blocks take "
        f"{plan['simam_kernels']} kernels ({plan['simam_kernels'] / len(blocks):.1f} per block, epilogue "
        f"included), {plan['layout_kernels_next_to_simam']} of them transposes/reformats; "
        f"~{_mb(plan['simam_bytes'])} moved at batch {plan['batch']} (--show-plan lists them)"
    )
    if not show:
        return
    from rich.table import Table

    table = Table("SimAM block", "kernel", "role", "type", "bytes", box=None, pad_edge=False)
    for block in blocks:
        for i, kernel in enumerate(block["kernels"]):
            table.add_row(block["name"] if i == 0 else "", kernel["name"], kernel["role"],
                          kernel["layer_type"], _mb(kernel["bytes"]))  # fmt: skip
    out.print(table)
