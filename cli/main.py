"""Entry point of the ``simam-deploy`` command.

Commands are imported lazily so that ``--help`` is instant and a command whose optional
dependency is missing (TensorRT) cannot break the others.
"""

from __future__ import annotations

import importlib
import sys

import click

from simam_deploy import __version__
from simam_deploy.errors import SimamDeployError

# name -> "module:attribute" under simam_deploy.cli
COMMANDS: dict[str, str] = {
    "models": "models_cmd:models",
    "export": "export_cmd:export",
    "validate": "validate_cmd:validate",
    "fuse": "graph_cmd:fuse",
    "unfuse": "graph_cmd:unfuse",
    "convert": "convert_cmd:convert",
    "build": "build_cmd:build",
    "bench": "bench_cmd:bench",
    "libs": "libs_cmd:libs",
}

SHORT_HELP = {
    "models": "List the model zoo.",
    "export": "Export a SimAM network to ONNX (decomposed ops or one SimAM node each).",
    "validate": "Prove an ONNX file or TensorRT engine computes what PyTorch computes.",
    "fuse": "Replace SimAM subgraphs in any ONNX file by single SimAM nodes.",
    "unfuse": "Expand SimAM nodes back into standard ONNX ops.",
    "convert": "Convert an ONNX file to float16/bfloat16 (SimAM statistics kept float32).",
    "build": "Build a TensorRT engine from ONNX with the SimAM plugin.",
    "bench": "Measure latency: fused kernel, PyTorch, ONNX Runtime, TensorRT side by side.",
    "libs": "Print the paths of our native libraries (e.g. for trtexec --dynamicPlugins).",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        module_name, attr = spec.split(":")
        module = importlib.import_module(f"simam_deploy.cli.{module_name}")
        return getattr(module, attr)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Short help without importing every command (and torch with it).
        rows = [(name, SHORT_HELP.get(name, "")) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Typical path:
  simam-deploy export cifar-resnet20 -o r20.onnx
  simam-deploy validate r20.onnx --reference cifar-resnet20
  simam-deploy fuse r20.onnx -o r20-plugin.onnx
  simam-deploy build r20-plugin.onnx -o r20.engine --fp16
  simam-deploy bench r20.engine --compare torch,onnxruntime
Exit codes: 0 ok, 1 a check failed (parity), 2 usage or input error.""",
)
@click.version_option(__version__, prog_name="simam-deploy")
def cli() -> None:
    """simam-deploy: SimAM networks from PyTorch to ONNX and TensorRT, with parity and speed checks."""


def main(argv: list[str] | None = None) -> None:
    try:
        rv = cli.main(args=argv, prog_name="simam-deploy", standalone_mode=False)
        sys.exit(rv if isinstance(rv, int) else 0)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(2 if exc.exit_code == 2 else exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except SimamDeployError as exc:
        click.secho(f"error: {exc.message}", fg="red", err=True)
        if exc.hint:
            click.echo(f"  fix: {exc.hint}", err=True)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
