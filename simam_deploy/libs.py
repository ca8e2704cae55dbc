"""Our native libraries, by kind, for hosts that load them by path (trtexec, Triton, C++ programs).

A kind is a backend that loads a library of ours (``Backend.library`` in the registry,
:mod:`simam_deploy.backends`); its finder returns the library's path or raises
:class:`~simam_deploy.errors.SimamDeployError` saying how to get it. A new backend's library
appears here (and as a ``simam-deploy libs --<kind>`` flag) with no change to this file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from simam_deploy.backends import backends, get_backend
from simam_deploy.errors import SimamDeployError


def library_kinds() -> list[str]:
    """The backends with a native library of ours, in registry order (the order `libs` prints)."""
    return [b.name for b in backends() if b.library is not None]


@dataclass
class LibraryStatus:
    kind: str
    path: Path | None
    problem: str | None  # why it was not found, with the fix

    def to_dict(self) -> dict[str, str | None]:
        return {"kind": self.kind, "path": str(self.path) if self.path else None, "problem": self.problem}


def find_library(kind: str) -> Path:
    """Path of the native library of ``kind`` (one of :func:`library_kinds`); raises when it is not built."""
    return get_backend(kind).find_library().resolve()


def library_status(kinds: list[str] | None = None) -> list[LibraryStatus]:
    """Every (or the named) library with its path, or why it is missing."""
    found = []
    for kind in kinds or library_kinds():
        try:
            found.append(LibraryStatus(kind, find_library(kind), None))
        except SimamDeployError as exc:
            found.append(LibraryStatus(kind, None, str(exc)))
    return found
