from __future__ import annotations

import click
from rich.table import Table

from simam_deploy.cli.common import check_outputs, envelope, human_console, write_json
from simam_deploy.zoo import list_models

EPILOG = """\b
Examples:
  simam-deploy models
  simam-deploy models --json -            # machine-readable, schema simam-deploy/models/v1
  simam-deploy export cifar-resnet20 -o r20.onnx
  simam-deploy export path/to/net.py:build --input-shape 1x3x64x64 -o net.onnx
"""


@click.command("models", epilog=EPILOG)
@click.option("--json", "json_path", metavar="FILE", help="Write the list as JSON too ('-' = stdout).")
def models(json_path: str | None) -> None:
    """List the model zoo: names to pass as MODEL to export, validate and bench.

    Your own network works too: MODEL may be `package.module:callable` or `path/file.py:callable`,
    a callable with no arguments that returns an nn.Module containing simam_deploy.nn.SimAM layers.
    """
    check_outputs({"--json": json_path})
    entries = list_models()
    payload = envelope("models", {"models": [_entry_dict(e) for e in entries]}, outputs={"json": json_path})
    console = human_console(json_path)
    table = Table(title="simam-deploy model zoo")
    for col in ("name", "input", "lambda", "classes", "description"):
        table.add_column(col)
    for e in entries:
        table.add_row(
            e.name, "x".join(map(str, e.input_shape)), f"{e.e_lambda:g}", str(e.num_classes), e.description
        )
    console.print(table)
    write_json(json_path, payload)


def _entry_dict(e) -> dict:
    return {
        "name": e.name,
        "input_shape": list(e.input_shape),
        "e_lambda": e.e_lambda,
        "num_classes": e.num_classes,
        "description": e.description,
    }
