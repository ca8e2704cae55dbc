"""Small helpers shared by the click commands (printing and the JSON envelope; no business logic)."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import click
from rich.console import Console

from simam_deploy.fileio import check_output_paths, is_stdout, write_text_atomic

# In a terminal rich fits the window; in logs and CI (no terminal) nothing is ever cut or wrapped:
# a width no table reaches, so numbers and node names stay whole.
_UNLIMITED = 100_000


def _make_console(stream) -> Console:
    tty = stream.isatty()
    return Console(file=None, stderr=stream is sys.stderr, highlight=False, width=None if tty else _UNLIMITED)


console = _make_console(sys.stdout)
err_console = _make_console(sys.stderr)

# Canonical dtype spelling in every JSON report.
_DTYPE_SPELLING = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float64": "fp64"}


def dtype_name(dtype: object) -> str:
    """One spelling of dtypes everywhere: fp32, fp16, bf16 (numpy/torch names are mapped)."""
    text = str(dtype).removeprefix("torch.")
    return _DTYPE_SPELLING.get(text, text)


def schema_id(command: str) -> str:
    return f"simam-deploy/{command}/v1"


def envelope(
    command: str,
    payload: Mapping,
    inputs: Mapping[str, object] | None = None,
    outputs: Mapping[str, object] | None = None,
) -> dict:
    """The JSON report of ``command``: schema id first, then the input and output paths, then the
    command's own fields (a library 'schema' key is replaced by the CLI's)."""
    body = {k: v for k, v in payload.items() if k != "schema"}
    return {
        "schema": schema_id(command),
        "inputs": {k: _path_text(v) for k, v in (inputs or {}).items() if v is not None},
        "outputs": {k: _path_text(v) for k, v in (outputs or {}).items() if v is not None},
        **body,
    }


def _path_text(value: object) -> object:
    return str(value) if isinstance(value, Path) else value


def write_json(path: str | Path | None, payload: dict) -> None:
    """Write ``payload`` as JSON to ``path`` ('-' = stdout), atomically."""
    if path is None:
        return
    text = json.dumps(_json_safe(payload), indent=2, sort_keys=False, allow_nan=False)
    write_text_atomic(path, text + "\n")


def _json_safe(value: object) -> object:
    """Standard JSON has no NaN/Inf: write them as the strings "nan", "inf", "-inf"."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def check_outputs(
    outputs: Mapping[str, str | Path | None],
    inputs: Iterable[str | Path | None] = (),
    folders: Mapping[str, str | Path | None] | None = None,
) -> None:
    """Check every output option (and output folder) against every input and each other, before any
    long work. Inputs may be ``file.py:callable`` / ``module:callable`` specs: their file is protected."""
    check_output_paths(outputs, inputs, folders=folders)


def human_console(json_path: str | Path | None) -> Console:
    """Where human output goes: stderr when the JSON report owns stdout (`--json -`)."""
    return err_console if is_stdout(json_path) else console


def progress(message: str) -> None:
    """A progress line on stderr (never mixes with JSON on stdout)."""
    err_console.print(f"[dim]{message}[/dim]")


def shape_option(default: str | None = None, help_text: str = "Input shape NxCxHxW.") -> click.Option:
    return click.option("--input-shape", "input_shape", default=default, metavar="NxCxHxW", help=help_text)
