"""Small helpers shared by the click commands (printing only; no business logic)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console

from simam_deploy.fileio import write_text_atomic

# Piped output (CI logs) gets a wide fixed width instead of rich's 80 columns.
_WIDTH = None if sys.stdout.isatty() else 160
console = Console(stderr=False, highlight=False, width=_WIDTH)
err_console = Console(stderr=True, highlight=False, width=_WIDTH)


def write_json(path: str | Path | None, payload: dict) -> None:
    """Write ``payload`` as JSON to ``path`` ('-' = stdout), atomically."""
    if path is None:
        return
    text = json.dumps(payload, indent=2, sort_keys=False) + "\n"
    if str(path) == "-":
        sys.stdout.write(text)
    else:
        write_text_atomic(path, text)


def shape_option(default: str | None = None, help_text: str = "Input shape NxCxHxW.") -> click.Option:
    return click.option("--input-shape", "input_shape", default=default, metavar="NxCxHxW", help=help_text)
