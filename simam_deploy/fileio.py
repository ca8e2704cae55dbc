"""File helpers shared by every command: output-path checks, atomic writes, '-' = stdout.

The contract (docs/cli-contract.md): every output path is checked before the long work starts
(its folder exists and is writable, it is not an input, two outputs are not the same file); files
are written to a hidden temporary beside the target and renamed into place, so a failure, Ctrl-C
or SIGTERM never leaves a half-written file or an overwritten input; the result gets the usual
mode under the user's umask (0644 under 022) rather than mkstemp's 0600.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

from simam_deploy.errors import InputError, OutputWriteError

STDOUT = "-"

# errno values that mean "this output cannot be written here", not a bug in simam-deploy.
_WRITE_ERRNOS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EFBIG: "the file is too large for this file system or ulimit",
}

# Temporary files being written right now; removed by cleanup_temporaries() on a signal.
_LIVE_TEMPS: set[Path] = set()

PathLike = str | os.PathLike


def is_stdout(path: PathLike | None) -> bool:
    """'-' means standard output for every --json / report option."""
    return path is not None and str(path) == STDOUT


def current_umask() -> int:
    """The process umask, read without changing it where /proc allows (thread-safe)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _same_file(a: Path, b: Path) -> bool:
    with contextlib.suppress(OSError):
        if a.exists() and b.exists() and os.path.samefile(a, b):
            return True
    return a.resolve() == b.resolve()


def check_output_path(
    output: PathLike,
    inputs: Iterable[PathLike | None] = (),
    others: Iterable[PathLike | None] = (),
) -> Path:
    """Validate an output path before any work.

    Its folder must exist and be writable, it must not be a directory, not be (or hard-link to)
    any of ``inputs`` and not be the same file as any of the other outputs ``others``.
    '-' (stdout) always passes.
    """
    if is_stdout(output):
        return Path(STDOUT)
    out = Path(output)
    if out.is_dir():
        raise InputError(f"output path {out} is a directory", "give a file name, e.g. -o model.onnx")
    parent = out.resolve().parent
    if not parent.is_dir():
        raise InputError(
            f"output directory {out.parent} does not exist", f"create it first: mkdir -p {out.parent}"
        )
    if not os.access(parent, os.W_OK):
        raise OutputWriteError(
            f"cannot write {out}: its directory {out.parent} is read-only or not writable by you",
            "choose an output path in a writable directory",
        )
    for src in inputs:
        if src is not None and not is_stdout(src) and _same_file(Path(src), out):
            raise InputError(
                f"output {out} is the same file as input {src}; refusing to overwrite an input",
                "choose a different output path",
            )
    for other in others:
        if other is not None and not is_stdout(other) and _same_file(Path(other), out):
            raise InputError(
                f"two outputs name the same file {out}", "give each output (-o, --json, --plot) its own path"
            )
    return out


def check_output_paths(
    outputs: Mapping[str, PathLike | None], inputs: Iterable[PathLike | None] = ()
) -> dict[str, Path]:
    """Check every named output (e.g. {"-o": ..., "--json": ...}) against every input and each other.

    None entries (option not given) are skipped; the error names the option."""
    given = {k: v for k, v in outputs.items() if v is not None}
    inputs = [i for i in inputs if i is not None]
    checked: dict[str, Path] = {}
    for option, path in given.items():
        if is_stdout(path):
            checked[option] = Path(STDOUT)
            continue
        others = [p for k, p in given.items() if k != option and not is_stdout(p)]
        try:
            checked[option] = check_output_path(path, inputs, others)
        except InputError as exc:
            raise type(exc)(f"{option}: {exc.message}", exc.hint) from None
    return checked


def _write_error(final: Path, exc: OSError) -> OutputWriteError:
    reason = _WRITE_ERRNOS.get(exc.errno or 0, exc.strerror or str(exc))
    return OutputWriteError(
        f"cannot write {final}: {reason} (errno {errno.errorcode.get(exc.errno or 0, exc.errno)})",
        "free some space or choose another output path in a writable directory",
    )


def _is_our_write_error(exc: OSError, *paths: Path) -> bool:
    """An OSError about writing one of ``paths`` (or an anonymous write() failure inside the block)."""
    if exc.errno not in _WRITE_ERRNOS:
        return False
    names = {str(p) for p in paths} | {str(p.resolve()) for p in paths}
    return exc.filename is None or str(exc.filename) in names


@contextlib.contextmanager
def write_errors_name(final: PathLike, *scratch: PathLike) -> Iterator[None]:
    """Turn an environment write error (disk full, read-only, permission) inside the block, on
    ``final`` or on the ``scratch`` paths (temporary files or folders) or an anonymous write, into
    :class:`OutputWriteError` naming ``final`` (exit 2); other errors pass through."""
    paths = [Path(final), *(Path(p) for p in scratch)]
    try:
        yield
    except OSError as exc:
        folders = [p for p in paths[1:] if p.is_dir()]
        inside = exc.filename is not None and any(Path(str(exc.filename)).is_relative_to(f) for f in folders)
        if exc.errno in _WRITE_ERRNOS and (inside or _is_our_write_error(exc, *paths)):
            raise _write_error(paths[0], exc) from exc
        raise


@contextlib.contextmanager
def atomic_output(path: PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; move it into place only if the block succeeds.

    A failure (exception, Ctrl-C, SIGTERM via the CLI's handler) leaves no partial file behind and
    the old file untouched. Writing errors of the environment (disk full, read-only, permission)
    become :class:`OutputWriteError` (exit 2); the file gets mode 0666 minus the umask.
    """
    final = Path(path)
    try:
        fd, tmp_name = tempfile.mkstemp(
            prefix=f".{final.name}.", suffix=suffix + ".tmp", dir=final.resolve().parent
        )
    except OSError as exc:
        if exc.errno in _WRITE_ERRNOS:
            raise _write_error(final, exc) from exc
        raise
    os.close(fd)
    tmp = Path(tmp_name)
    _LIVE_TEMPS.add(tmp)
    try:
        try:
            yield tmp
            os.chmod(tmp, 0o666 & ~current_umask())
            os.replace(tmp, final)
        except OSError as exc:
            if _is_our_write_error(exc, tmp, final):
                raise _write_error(final, exc) from exc
            raise
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    finally:
        _LIVE_TEMPS.discard(tmp)


def cleanup_temporaries() -> None:
    """Remove every temporary file still being written (called on SIGTERM / fatal signals)."""
    for tmp in list(_LIVE_TEMPS):
        with contextlib.suppress(OSError):
            tmp.unlink()
        _LIVE_TEMPS.discard(tmp)


def write_bytes_atomic(path: PathLike, data: bytes) -> None:
    with atomic_output(path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(path: PathLike, text: str) -> None:
    """Write ``text`` to ``path`` atomically; '-' writes it to stdout instead."""
    if is_stdout(path):
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with atomic_output(path) as tmp:
        tmp.write_text(text)
