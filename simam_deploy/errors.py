"""Errors the library raises on purpose; the CLI maps them to exit codes.

Exit codes (shared by every command): 0 ok, 1 a check failed (parity), 2 usage or input error.
"""

from __future__ import annotations


class SimamDeployError(Exception):
    """Base class. ``hint`` tells the user how to fix the problem."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"


class InputError(SimamDeployError):
    """Bad input: a file, a shape, an option. Exit code 2."""

    exit_code = 2


class MissingDependencyError(SimamDeployError):
    """An optional dependency (TensorRT, pycuda, the compiled extension) is not available."""

    exit_code = 2


class ParityFailure(SimamDeployError):
    """A numerical check failed. Exit code 1."""

    exit_code = 1
