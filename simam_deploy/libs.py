"""Our native libraries, by kind, for hosts that load them by path (trtexec, Triton, C++ programs).

``LIBRARIES`` maps a kind to a finder that returns the library's path or raises
:class:`~simam_deploy.errors.SimamDeployError` saying how to get it. Adding a library is one entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from simam_deploy.errors import SimamDeployError


def _tensorrt_plugin() -> Path:
    from simam_deploy.backends.tensorrt.plugin import find_plugin_library

    return find_plugin_library().resolve()


def _onnxruntime_ops() -> Path:
    from simam_deploy.backends.onnxruntime.library import library_path

    return library_path().resolve()


# kind -> finder. Order is the order `simam-deploy libs` prints.
LIBRARIES: dict[str, Callable[[], Path]] = {
    "tensorrt": _tensorrt_plugin,
    "onnxruntime": _onnxruntime_ops,
}


@dataclass
class LibraryStatus:
    kind: str
    path: Path | None
    problem: str | None  # why it was not found, with the fix

    def to_dict(self) -> dict[str, str | None]:
        return {"kind": self.kind, "path": str(self.path) if self.path else None, "problem": self.problem}


def find_library(kind: str) -> Path:
    """Path of the native library of ``kind`` (a key of ``LIBRARIES``); raises when it is not built."""
    return LIBRARIES[kind]()


def library_status(kinds: list[str] | None = None) -> list[LibraryStatus]:
    """Every (or the named) library with its path, or why it is missing."""
    found = []
    for kind in kinds or list(LIBRARIES):
        try:
            found.append(LibraryStatus(kind, LIBRARIES[kind](), None))
        except SimamDeployError as exc:
            found.append(LibraryStatus(kind, None, str(exc)))
    return found
