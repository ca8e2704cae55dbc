"""Every first-party import in the tree resolves, including the ones inside functions.

Most of simam-deploy imports lazily (TensorRT, OpenVINO, the Triton client... are imported where they
are used), so a module that moved leaves ``from simam_deploy.old import x`` lines that only fail when
that branch runs: on a GPU, say, which CI has none of. This test reads every ``import`` statement of
the package, the CLI, the zoo models, the tests and the scripts, and imports what it names.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIRST_PARTY = ("simam_deploy", "tests")
SOURCES = ("simam_deploy", "cli", "models", "tests", "scripts", "examples", "benchmarks")
# Module-level imports of third-party packages that are optional in an install; the files that
# need them are still parsed, their first-party imports still checked.
OPTIONAL = {"simam_deploy.triton.python_model"}  # imports triton_python_backend_utils (inside Triton)


def _sources() -> list[Path]:
    files = []
    for folder in SOURCES:
        root = REPO / folder
        if root.is_dir():
            files += sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    return files


def _first_party_imports(path: Path) -> list[tuple[int, str, str | None]]:
    """(line, module, name or None) for every first-party import statement in ``path``."""
    found: list[tuple[int, str, str | None]] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name, None) for a in node.names if a.name.split(".")[0] in FIRST_PARTY]
        elif (
            isinstance(node, ast.ImportFrom)
            and node.level == 0
            and node.module
            and node.module.split(".")[0] in FIRST_PARTY
        ):
            found += [(node.lineno, node.module, a.name) for a in node.names if a.name != "*"]
    return found


def _package_modules() -> list[str]:
    """The installed package's modules, named from the source tree (cli/ and models/ install as
    simam_deploy.cli and simam_deploy.models)."""
    names = []
    for folder, package in (
        ("simam_deploy", "simam_deploy"),
        ("cli", "simam_deploy.cli"),
        ("models", "simam_deploy.models"),
    ):
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = path.relative_to(REPO / folder).with_suffix("").parts
            parts = parts[:-1] if parts[-1] == "__init__" else parts
            names.append(".".join((package, *parts)))
    return [n for n in names if n not in OPTIONAL]


def _resolves(module: str, name: str | None) -> str | None:
    """None when ``from module import name`` (or ``import module``) works, else why not."""
    try:
        imported = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        return f"no module {exc.name}"
    if name is None or hasattr(imported, name):
        return None
    try:
        importlib.import_module(f"{module}.{name}")
    except ModuleNotFoundError:
        return f"{module} has no {name}"
    return None


def test_every_first_party_import_in_the_tree_resolves():
    files = _sources()
    assert len(files) > 50  # the walk found the tree
    broken = []
    for path in files:
        for line, module, name in _first_party_imports(path):
            why = _resolves(module, name)
            if why:
                broken.append(f"{path.relative_to(REPO)}:{line}: {why}")
    assert not broken, "imports of things that do not exist:\n" + "\n".join(broken)


@pytest.mark.parametrize("module", _package_modules())
def test_every_module_of_the_package_imports(module):
    importlib.import_module(module)


def test_the_checker_sees_a_stale_import(tmp_path):
    stale = tmp_path / "stale.py"
    stale.write_text("def f():\n    from simam_deploy.trt_build import build_engine\n")
    [(line, module, name)] = _first_party_imports(stale)
    assert (line, name) == (2, "build_engine")
    assert _resolves(module, name) == "no module simam_deploy.trt_build"
    assert _resolves("simam_deploy.backends", "no_such_name") == "simam_deploy.backends has no no_such_name"
