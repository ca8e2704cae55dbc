"""The SimAM custom-op library for ONNX Runtime: find it, register it.

``libsimam_ort_ops.so`` (built from ``plugins/onnxruntime`` over the one kernel library) registers
the op ``SimAM`` in domain ``com.simam_deploy`` for float32, float16 and bfloat16 on the CPU and,
in CUDA builds, the CUDA execution provider. ONNX Runtime loads it through ``RegisterCustomOps``,
so the same file serves Python, C/C++ (``RegisterCustomOpsLibrary``) and Triton
(``model_operations { op_library_filename: ... }``)::

    import onnxruntime as ort
    from simam_deploy.backends.onnxruntime import library as simam_ort

    session = ort.InferenceSession("fused.onnx", simam_ort.session_options())
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from simam_deploy.errors import InputError, MissingDependencyError

LIBRARY_NAME = "libsimam_ort_ops.so"
LIBRARY_ENV = "SIMAM_ORT_OPS"
# The library is built against ONNX Runtime's API version 21 headers: it loads in 1.21 and newer.
MIN_ONNXRUNTIME = (1, 21)
BUILD_HINT = (
    "reinstall simam-deploy with ONNX Runtime's C API headers available: "
    "pip install . -Ccmake.define.ONNXRUNTIME_ROOT=DIR (the include/ of an ONNX Runtime >= 1.21 release), "
    f"or point ${LIBRARY_ENV} at a built {LIBRARY_NAME}; `simam-deploy unfuse` gives a model with "
    "standard ops only"
)

_PACKAGE_DIR = Path(__file__).resolve().parents[2]
_REPO_ROOT = _PACKAGE_DIR.parent


def _candidates() -> list[Path]:
    """Where a built library may be, most specific first: the installed package (simam_deploy/lib/),
    then the repository's build/ trees (editable installs), newest first."""
    found = [_PACKAGE_DIR / "lib" / LIBRARY_NAME]
    build = _REPO_ROOT / "build"
    if build.is_dir():
        built = build.glob(f"*/plugins/onnxruntime/{LIBRARY_NAME}")
        found.extend(sorted(built, key=lambda p: p.stat().st_mtime, reverse=True))
    return found


def library_path(explicit: str | os.PathLike | None = None) -> Path:
    """The path of ``libsimam_ort_ops.so``: ``explicit``, else ``$SIMAM_ORT_OPS``, else the one
    installed with the package (or built in this repository)."""
    chosen = explicit if explicit is not None else os.environ.get(LIBRARY_ENV) or None
    if chosen is not None:
        path = Path(chosen)
        if not path.is_file():
            source = "" if explicit is not None else f" (from ${LIBRARY_ENV})"
            raise InputError(f"ONNX Runtime op library {path}{source} does not exist", BUILD_HINT)
        return path
    for candidate in _candidates():
        if candidate.is_file():
            return candidate
    raise MissingDependencyError(
        f"the SimAM ONNX Runtime op library ({LIBRARY_NAME}) was not found", BUILD_HINT
    )


def _onnxruntime() -> Any:
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError(
            "running SimAM nodes needs ONNX Runtime", "pip install 'onnxruntime>=1.21'"
        ) from exc
    return onnxruntime


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts)


def register(session_options: Any, library: str | os.PathLike | None = None) -> Any:
    """Register the SimAM op library with ``session_options`` (an ``onnxruntime.SessionOptions``)
    and return it. Refuses ONNX Runtime older than 1.21 with the fix (the library itself refuses
    too, for callers outside Python)."""
    ort = _onnxruntime()
    if _version_tuple(ort.__version__) < MIN_ONNXRUNTIME:
        need = ".".join(map(str, MIN_ONNXRUNTIME))
        raise MissingDependencyError(
            f"the SimAM op library needs ONNX Runtime >= {need} (C API version 21); "
            f"this environment has onnxruntime {ort.__version__}",
            f"pip install 'onnxruntime>={need}' (or 'onnxruntime-gpu>={need}')",
        )
    path = library_path(library)
    try:
        session_options.register_custom_ops_library(str(path))
    except Exception as exc:  # onnxruntime raises its own Fail/RuntimeError types
        raise MissingDependencyError(
            f"ONNX Runtime cannot load {path}: {str(exc).strip().splitlines()[0]}", BUILD_HINT
        ) from exc
    return session_options


def session_options(library: str | os.PathLike | None = None) -> Any:
    """A new ``onnxruntime.SessionOptions`` with the SimAM op library registered."""
    return register(_onnxruntime().SessionOptions(), library)
