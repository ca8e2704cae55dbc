"""Errors the library raises on purpose; the CLI maps them to exit codes.

Exit codes (shared by every command, see docs/cli-contract.md): 0 ok, 1 a check failed (parity),
2 usage or input error (including an output file that cannot be written), 3 internal error (a bug:
the traceback is printed), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM).
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_CHECK_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3
EXIT_INTERRUPTED = 130
EXIT_TERMINATED = 143


class SimamDeployError(Exception):
    """Base class. ``hint`` tells the user how to fix the problem."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  fix: {self.hint}"


class InputError(SimamDeployError):
    """Bad input: a file, a shape, an option. Exit code 2."""

    exit_code = EXIT_USAGE


class UserModelError(InputError):
    """The user's own model broke its contract (e.g. forward returned no tensor). Exit code 2; the
    spec of the model is added to the message where it is known (zoo.user_code_errors)."""


class OutputWriteError(InputError):
    """One of OUR output files cannot be written (disk full, read-only, no permission). Exit code 2."""


class MissingDependencyError(SimamDeployError):
    """An optional dependency (TensorRT, pycuda, the compiled extension) is not available."""

    exit_code = EXIT_USAGE


class ParityFailure(SimamDeployError):
    """A numerical check failed. Exit code 1."""

    exit_code = EXIT_CHECK_FAILED


class Terminated(BaseException):
    """Raised in the main thread on SIGTERM so that every ``finally`` / atomic write cleans up.

    A BaseException (like KeyboardInterrupt) so that ``except Exception`` blocks do not swallow it.
    """
