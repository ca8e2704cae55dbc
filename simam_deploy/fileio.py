"""File helpers shared by every command: output-path checks and atomic writes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from simam_deploy.errors import InputError


def check_output_path(output: str | os.PathLike, inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Validate an output path before any work: its folder exists and it is not an input."""
    out = Path(output)
    if out.is_dir():
        raise InputError(f"output path {out} is a directory", "give a file name, e.g. -o model.onnx")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise InputError(
            f"output directory {out.parent} does not exist", f"create it first: mkdir -p {out.parent}"
        )
    for src in inputs:
        src_path = Path(src)
        same = src_path.exists() and out.exists() and os.path.samefile(src_path, out)
        if same or src_path.resolve() == out.resolve():
            raise InputError(
                f"output {out} is the same file as input {src_path}; refusing to overwrite an input",
                "choose a different -o path",
            )
    return out


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    A failure (exception, Ctrl-C) leaves no partial file behind and the old file untouched.
    """
    final = Path(path)
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{final.name}.", suffix=suffix + ".tmp", dir=final.resolve().parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(text)
