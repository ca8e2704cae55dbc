"""``simam-deploy libs``: where our native libraries are, for trtexec, Triton and C++ programs."""

from __future__ import annotations

import click

from simam_deploy.cli.common import check_outputs, write_json
from simam_deploy.errors import MissingDependencyError
from simam_deploy.libs import library_kinds, library_status

EPILOG = """\b
Examples:
  simam-deploy libs
  trtexec --onnx=r20-plugin.onnx --dynamicPlugins=$(simam-deploy libs --tensorrt)
  tritonserver --model-repository=models --backend-config=tensorrt,plugins=$(simam-deploy libs --tensorrt)
  simam-deploy libs --json -
  ort.SessionOptions().register_custom_ops_library("$(simam-deploy libs --onnxruntime)")
\b
Prints one line per library: KIND PATH. With a kind option, only that path (nothing else, for $(...)).
Exit codes: 0 ok, 2 a library asked for is not built (the message says how to build it)."""


def _kind_options(command: click.Command) -> click.Command:
    # One flag per backend with a native library (the registry), so a new library needs no CLI change.
    for kind in reversed(library_kinds()):
        command = click.option(
            f"--{kind}",
            "kinds",
            flag_value=kind,
            multiple=True,
            help=f"Print only the {kind} library's path.",
        )(command)
    return command


@click.command("libs", epilog=EPILOG, context_settings={"max_content_width": 110})
@_kind_options
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write the list as JSON ('-' = stdout).",
)
def libs(kinds: tuple[str, ...], json_path: str | None) -> None:
    """Print the paths of simam-deploy's native libraries (TensorRT plugin, ONNX Runtime op library)."""
    statuses = library_status(list(kinds) or None)
    check_outputs({"--json": json_path})
    if json_path is not None:
        write_json(
            json_path, {"schema": "simam-deploy/libs/v1", "libraries": [s.to_dict() for s in statuses]}
        )
        if json_path == "-":
            return
    missing = [s for s in statuses if s.path is None]
    if kinds:
        if missing:
            raise MissingDependencyError(f"{missing[0].kind} library: {missing[0].problem}")
        for status in statuses:
            click.echo(str(status.path))
        return
    for status in statuses:
        click.echo(f"{status.kind}\t{status.path if status.path else 'not built: ' + str(status.problem)}")
