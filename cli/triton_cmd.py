"""``simam-deploy triton``: write a Triton Inference Server model repository for an artefact."""

from __future__ import annotations

from pathlib import Path

import click

from simam_deploy.cli.common import check_outputs, envelope, human_console, write_json
from simam_deploy.fileio import is_stdout, refuse_stdout
from simam_deploy.triton.repository import BACKENDS

EPILOG = """\b
What gets written (REPO/NAME/):
  engine (.engine/.plan)  platform tensorrt_plan, 1/model.plan, lib/libsimam_trt_plugin.so and the
                          server flag that loads it (--backend-config=tensorrt,plugins=...)
  .onnx                   backend onnxruntime, 1/model.onnx (+ external data) and, when the graph
                          has SimAM nodes, lib/libsimam_ort_ops.so named by model_operations
  .onnx --backend python  a python-backend model running the ONNX file in ONNX Runtime with our
                          op library (servers without the ONNX Runtime backend)
  README.md               how to start the server and query the model

\b
Batching: a model whose batch axis is dynamic gets max_batch_size (--max-batch, default 8) and
dynamic batching; a fixed batch gives max_batch_size 0. Absolute paths in the config (the op
library) use --server-repository, the repository's path inside the server (e.g. /models in a
container); by default the path of -o.

\b
Examples:
  simam-deploy triton r20-fused.onnx -o models --name r20
  simam-deploy triton r20-fused.onnx -o models --backend python --max-batch 32 --instances 2
  simam-deploy triton r20.engine --onnx r20-plugin.onnx -o models --server-repository /models
  simam-deploy triton r20.onnx -o models --json -          # the report as JSON on stdout
Then: tritonserver --model-repository=$PWD/models   and   simam-deploy bench --triton URL r20
Exit codes: 0 written, 2 usage or input error (nothing is left half-written).
"""


def _batch_sizes(_ctx: click.Context, _param: click.Parameter, value: str | None) -> list[int] | None:
    if not value:
        return None
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a comma-separated list of integers, e.g. 4,8") from None


@click.command("triton", epilog=EPILOG)
@click.argument("artefact", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "-o",
    "--output",
    "repository",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Model repository folder (created if missing).",
)
@click.option("--name", help="Model name [default: the artefact's file name without suffix].")
@click.option(
    "--backend",
    type=click.Choice(BACKENDS),
    default="auto",
    show_default=True,
    help="auto: tensorrt for engines, onnxruntime for ONNX.",
)
@click.option(
    "--onnx",
    "onnx_source",
    type=click.Path(dir_okay=False, path_type=Path),
    help="For an engine: the ONNX file it was built from (describes inputs and outputs).",
)
@click.option(
    "--max-batch", type=int, default=None, help="max_batch_size [default: 8, or 0 for a fixed batch]."
)
@click.option(
    "--instances", type=int, default=1, show_default=True, help="Model instances (instance_group count)."
)
@click.option(
    "--instance-kind",
    type=click.Choice(["auto", "cpu", "gpu"]),
    default="auto",
    show_default=True,
    help="Where instances run (auto lets the server choose; python models run on the CPU).",
)
@click.option(
    "--dynamic-batching/--no-dynamic-batching",
    default=True,
    show_default=True,
    help="Let the server group requests into batches.",
)
@click.option(
    "--max-queue-delay-us",
    type=int,
    default=100,
    show_default=True,
    help="How long a request may wait for others to batch with.",
)
@click.option(
    "--preferred-batch",
    callback=_batch_sizes,
    metavar="LIST",
    help="Preferred batch sizes for dynamic batching, e.g. 4,8.",
)
@click.option(
    "--server-repository",
    metavar="ABS_PATH",
    help="The repository's absolute path as the server sees it [default: the absolute -o path].",
)
@click.option(
    "--library",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Native library to ship [default: the one this installation built; see simam-deploy libs].",
)
@click.option("--force", is_flag=True, help="Replace REPO/NAME if it exists.")
@click.option("--json", "json_path", metavar="FILE", help="Write the report as JSON ('-' = stdout).")
def triton(artefact, repository, name, backend, onnx_source, max_batch, instances, instance_kind,
           dynamic_batching, max_queue_delay_us, preferred_batch, server_repository, library, force,
           json_path) -> None:  # fmt: skip
    """Write a Triton Inference Server model repository serving ARTEFACT (engine or ONNX)."""
    from simam_deploy.triton import write_repository

    if is_stdout(repository):
        raise refuse_stdout("-o")
    check_outputs({"--json": json_path}, [artefact, onnx_source, library])
    report = write_repository(
        artefact,
        repository,
        name=name,
        backend=backend,
        onnx_source=onnx_source,
        max_batch=max_batch,
        instances=instances,
        instance_kind=instance_kind,
        dynamic_batching=dynamic_batching,
        max_queue_delay_us=max_queue_delay_us,
        preferred_batch_sizes=preferred_batch,
        server_repository=server_repository,
        library=library,
        force=force,
    )
    payload = envelope(
        "triton",
        report.to_dict(),
        inputs={"artefact": artefact, "onnx": onnx_source, "library": library},
        outputs={"repository": repository, "json": json_path},
    )
    write_json(json_path, payload)
    _print_report(report, human_console(json_path))


def _print_report(report, console) -> None:
    from rich.table import Table

    table = Table(title=f"Triton model {report.model!r} ({report.backend})", title_justify="left")
    for column in ("tensor", "kind", "type", "dims"):
        table.add_column(column)
    for kind, specs in (("input", report.inputs), ("output", report.outputs)):
        for spec in specs:
            table.add_row(spec.name, kind, spec.data_type, str(spec.dims))
    console.print(table)
    batching = "on" if report.dynamic_batching else "off"
    console.print(
        f"max_batch_size {report.max_batch_size}, dynamic batching {batching}, {report.instances} instance(s)"
    )
    if report.simam_nodes is not None:
        console.print(f"SimAM nodes in the graph: {report.simam_nodes}")
    for note in report.notes:
        console.print(f"note: {note}")
    model_dir = Path(report.repository) / report.model
    console.print(f"wrote {model_dir}/: " + ", ".join(report.files))
    console.print(f"serve with: {report.server_command}")
