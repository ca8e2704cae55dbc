"""Entry point of the ``simam-deploy`` command.

Commands are imported lazily so that ``--help`` is instant and a command whose optional
dependency is missing (TensorRT) cannot break the others.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import os
import signal
import sys
import threading
import traceback

import click

from simam_deploy import __version__
from simam_deploy.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_TERMINATED,
    EXIT_USAGE,
    SimamDeployError,
    Terminated,
)
from simam_deploy.fileio import cleanup_temporaries

# name -> "module:attribute" under simam_deploy.cli
COMMANDS: dict[str, str] = {
    "models": "models_cmd:models",
    "export": "export_cmd:export",
    "validate": "validate_cmd:validate",
    "fuse": "graph_cmd:fuse",
    "unfuse": "graph_cmd:unfuse",
    "convert": "convert_cmd:convert",
    "quantize": "quantize_cmd:quantize",
    "build": "build_cmd:build",
    "bench": "bench_cmd:bench",
    "libs": "libs_cmd:libs",
    "triton": "triton_cmd:triton",
}

SHORT_HELP = {
    "models": "List the model zoo.",
    "export": "Export a SimAM network to ONNX (decomposed ops or one SimAM node each).",
    "validate": "Prove an ONNX file or TensorRT engine computes what PyTorch computes.",
    "fuse": "Replace SimAM subgraphs in any ONNX file by single SimAM nodes.",
    "unfuse": "Expand SimAM nodes back into standard ONNX ops.",
    "convert": "Convert an ONNX file to float16/bfloat16 (SimAM statistics kept float32).",
    "quantize": "INT8 (Q/DQ) ONNX calibrated on real inputs, SimAM kept in higher precision.",
    "build": "Build a TensorRT engine from ONNX with the SimAM plugin.",
    "bench": "Measure latency: fused kernel, PyTorch, ONNX Runtime, TensorRT side by side.",
    "libs": "Print the paths of our native libraries (e.g. for trtexec --dynamicPlugins).",
    "triton": "Write a Triton Inference Server model repository for an engine or ONNX file.",
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
  simam-deploy bench r20.engine --reference cifar-resnet20 --compare tensorrt,eager,onnxruntime
\b
Exit codes: 0 ok, 1 a check failed (parity), 2 usage or input error (also an output that cannot be
written), 3 internal error (a bug: traceback printed), 130 Ctrl-C, 143 SIGTERM.
`--json -` writes the report to stdout. Details: docs/cli-contract.md.""",
)
@click.version_option(__version__, prog_name="simam-deploy")
def cli() -> None:
    """simam-deploy: SimAM networks from PyTorch to ONNX and TensorRT, with parity and speed checks."""


def main(argv: list[str] | None = None) -> None:
    """Run the command line and exit with the documented code (see docs/cli-contract.md)."""
    previous = _install_sigterm_handler()
    _terminated.clear()
    try:
        code = _run(argv)
        if _terminated.is_set():
            cleanup_temporaries()
            click.echo("terminated (SIGTERM); no partial output left behind", err=True)
            code = EXIT_TERMINATED
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    sys.exit(code)


# Set on SIGTERM: libraries may wrap the exception we raise (torch's exporter turns it into its
# own error), so the verdict "terminated" must not depend on the exception reaching us intact.
_terminated = threading.Event()


def _raise_terminated(signum, frame) -> None:
    _terminated.set()
    raise Terminated()


def _install_sigterm_handler():
    """SIGTERM unwinds like Ctrl-C, so atomic writes remove their temporary files."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _raise_terminated)


def _run(argv: list[str] | None) -> int:
    """The one top-level handler: known error classes become a message and an exit code; anything
    else is a bug and is shown as one (traceback, exit 3), never dressed up as a user error."""
    try:
        rv = cli.main(args=argv, prog_name="simam-deploy", standalone_mode=False)
        sys.stdout.flush()  # a full disk behind stdout shows up here, inside the handler
        return rv if isinstance(rv, int) else 0
    except (click.exceptions.Abort, KeyboardInterrupt):
        cleanup_temporaries()
        click.echo("aborted", err=True)
        return EXIT_INTERRUPTED
    except Terminated:
        return EXIT_TERMINATED  # main() reports it and removes temporaries
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        exc.show()
        return EXIT_USAGE
    except SimamDeployError as exc:
        if _terminated.is_set():
            return EXIT_TERMINATED  # a library wrapped our SIGTERM exception: report the signal
        click.secho(f"error: {exc.message}", fg="red", err=True)
        if exc.hint:
            click.echo(f"  fix: {exc.hint}", err=True)
        return exc.exit_code
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else EXIT_USAGE)
    except BrokenPipeError:
        # `simam-deploy ... --json - | head`: the reader left; not an error of ours.
        _discard_stdout()
        return 0
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return _internal_error()
        # Our own output files are mapped where they are written (fileio); this is stdout/stderr.
        _discard_stdout()
        click.secho(f"error: cannot write the output: {exc.strerror} (standard output)", fg="red", err=True)
        click.echo("  fix: free some space, or redirect the output elsewhere", err=True)
        return EXIT_USAGE
    except Exception:
        if _terminated.is_set():
            return EXIT_TERMINATED
        return _internal_error()


def _discard_stdout() -> None:
    """Point stdout at /dev/null so that the exit-time flush of unwritable data stays quiet."""
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _internal_error() -> int:
    traceback.print_exc()
    click.echo(
        "internal error: this is a bug in simam-deploy, not a problem with your input; "
        "please report it with the traceback above",
        err=True,
    )
    return EXIT_INTERNAL


if __name__ == "__main__":
    main()
