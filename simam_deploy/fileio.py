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
import importlib.machinery
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


def check_input_file(path: PathLike, what: str, hint: str = "check the path") -> Path:
    """An input file must exist, be a regular file (not a folder) and not be empty: one wording for
    every command, so that a folder given as a model is called a folder, not "does not exist"."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{what} {path} is a directory, not a file", hint)
    if not path.is_file():
        raise InputError(f"{what} {path} does not exist", hint)
    if path.stat().st_size == 0:
        raise InputError(f"{what} {path} is empty (0 bytes)", hint)
    return path


def spec_file(spec: PathLike) -> Path | None:
    """The Python file behind a ``path/file.py:callable`` or ``package.module:callable`` spec.

    Found without importing anything (the user's module may have side effects, and the output
    check runs before any work): file specs are taken as they are, module specs are looked up on
    sys.path the way the import system would. None when ``spec`` names no file we can find."""
    text = str(spec)
    if ":" not in text:
        return None
    target = text.rpartition(":")[0]
    if target.endswith(".py") or os.sep in target:
        return Path(target)
    path = None
    try:
        for part in target.split("."):
            found = importlib.machinery.PathFinder.find_spec(part, path)
            if found is None:
                return None
            path = list(found.submodule_search_locations or [])
            origin = found.origin
    except (ImportError, ValueError):
        return None
    return Path(origin) if origin and origin not in ("namespace", "built-in", "frozen") else None


def _input_files(inputs: Iterable[PathLike | None]) -> list[Path]:
    """Every file an input names: paths as given, and the Python file of a ``module:callable`` spec."""
    files = []
    for item in inputs:
        if item is None or is_stdout(item):
            continue
        path = Path(item)
        if ":" in str(item) and not path.exists():
            found = spec_file(item)
            if found is not None:
                files.append(found)
            continue
        files.append(path)
    return files


def refuse_stdout(option: str) -> InputError:
    """The error for '-' given to an output that is not a JSON report (binary files, folders)."""
    return InputError(
        f"{option} - : this output cannot go to standard output (only --json can)",
        f"give {option} a file name; '-' is never used as a file name",
    )


def check_output_path(
    output: PathLike,
    inputs: Iterable[PathLike | None] = (),
    others: Iterable[PathLike | None] = (),
    *,
    stdout_ok: bool = False,
    option: str = "-o",
) -> Path:
    """Validate an output path before any work.

    Its folder must exist and be writable, it must not be a directory, not be (or link to) any of
    ``inputs`` (files, or the Python file of a ``module:callable`` spec) and not be the same file as
    any of the other outputs ``others``. '-' (stdout) passes only where ``stdout_ok`` (JSON
    reports); elsewhere it is refused rather than written as a file named '-'.
    """
    if is_stdout(output):
        if stdout_ok:
            return Path(STDOUT)
        raise refuse_stdout(option)
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
    for src in _input_files(inputs):
        if _same_file(src, out):
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


def check_output_folder(
    folder: PathLike,
    inputs: Iterable[PathLike | None] = (),
    others: Iterable[PathLike | None] = (),
    *,
    option: str = "-o",
) -> Path:
    """Validate an output folder (written whole, e.g. --save-inputs) before any work: new or
    empty, in an existing writable folder, not an input nor inside one, not another output."""
    if is_stdout(folder):
        raise refuse_stdout(option)
    target = Path(folder)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"{target} exists and is not an empty folder", "give a new folder name")
    parent = target.resolve().parent
    if not parent.is_dir():
        raise InputError(
            f"folder {target.parent} does not exist", f"create it first: mkdir -p {target.parent}"
        )
    if not os.access(parent, os.W_OK):
        raise OutputWriteError(
            f"cannot write {target}: {target.parent} is read-only or not writable by you",
            "choose a folder in a writable place",
        )
    for src in _input_files(inputs):
        if _same_file(src, target) or (src.is_dir() and target.resolve().is_relative_to(src.resolve())):
            raise InputError(f"{target} is also an input; refusing to write into it", "give a new folder")
    for other in others:
        if other is not None and not is_stdout(other) and _same_file(Path(other), target):
            raise InputError(f"two outputs name {target}", "give each output its own path")
    return target


def check_output_paths(
    outputs: Mapping[str, PathLike | None],
    inputs: Iterable[PathLike | None] = (),
    *,
    folders: Mapping[str, PathLike | None] | None = None,
    stdout_ok: Iterable[str] = ("--json",),
) -> dict[str, Path]:
    """Check every named output (e.g. {"-o": ..., "--json": ...}) against every input and each other.

    ``folders`` are output folders (e.g. {"--save-inputs": ...}). Only the options in
    ``stdout_ok`` may be '-' (stdout). None entries (option not given) are skipped; the error
    names the option."""
    given = {k: v for k, v in outputs.items() if v is not None}
    given_folders = {k: v for k, v in (folders or {}).items() if v is not None}
    inputs = [i for i in inputs if i is not None]
    stdout_ok = set(stdout_ok)
    checked: dict[str, Path] = {}
    for option, path in given.items():
        if is_stdout(path):
            if option not in stdout_ok:
                raise refuse_stdout(option)
            checked[option] = Path(STDOUT)
            continue
        others = [p for k, p in given.items() if k != option and not is_stdout(p)]
        try:
            checked[option] = check_output_path(path, inputs, [*others, *given_folders.values()])
        except InputError as exc:
            raise type(exc)(f"{option}: {exc.message}", exc.hint) from None
    for option, path in given_folders.items():
        try:
            # the same folder may take both inputs and outputs (--save-inputs D --save-outputs D)
            checked[option] = check_output_folder(path, inputs, option=option)
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
