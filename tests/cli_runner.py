"""Run the simam-deploy command line in-process, as a user would call it, and read its exit code."""

import pytest

from simam_deploy.cli.main import main


def exit_code(*args: str) -> int:
    """Run ``simam-deploy ARGS`` and return its exit code (main always ends with sys.exit)."""
    with pytest.raises(SystemExit) as exc:
        main(list(args))
    return int(exc.value.code or 0)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run ``simam-deploy ARGS``; return (exit code, stdout, stderr)."""
    code = exit_code(*args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err
