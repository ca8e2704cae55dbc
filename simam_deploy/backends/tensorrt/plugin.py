"""The SimAM TensorRT plugin library: find it, load it, register it with a TensorRT runtime.

Finding and loading need no TensorRT (ctypes), so they work, and are tested, everywhere.
"""

from __future__ import annotations

import ctypes
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simam_deploy.backends.tensorrt.runtime import Runtime
from simam_deploy.errors import InputError, MissingDependencyError

PLUGIN_LIBRARY_NAME = "libsimam_trt_plugin.so"
PLUGIN_ENV = "SIMAM_TRT_PLUGIN"
PLUGIN_NAME = "SimAM"
PLUGIN_VERSION = "1"
PLUGIN_BUILD_HINT = (
    f"build it with `make plugin TENSORRT_ROOT=/path/to/TensorRT` (or `make install TENSORRT_ROOT=...`), "
    f"then pass --plugin-lib PATH or set {PLUGIN_ENV}=PATH"
)
_PACKAGE = Path(__file__).resolve().parents[2]
_REPO_ROOT = _PACKAGE.parent


# ---- the plugin library (no TensorRT needed) -------------------------------------------------------


def _plugin_candidates() -> Iterator[Path]:
    """Where a built plugin may be, most specific first."""
    env = os.environ.get(PLUGIN_ENV)
    if env:
        yield Path(env)
    yield _PACKAGE / "lib" / PLUGIN_LIBRARY_NAME  # installed wheel
    build = _REPO_ROOT / "build"
    if build.is_dir():
        # editable builds (build/<wheel tag>/...) and `make plugin` (build/plugin/...), newest first
        found = sorted(build.glob(f"*/plugins/tensorrt/{PLUGIN_LIBRARY_NAME}"), key=_mtime, reverse=True)
        yield from found


def _mtime(path: Path) -> float:
    return path.stat().st_mtime


def find_plugin_library(explicit: str | os.PathLike | None = None) -> Path:
    """Locate ``libsimam_trt_plugin.so``: ``explicit``, then ``$SIMAM_TRT_PLUGIN``, then the installed
    package (simam_deploy/lib/), then the repository's build/ trees."""
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise InputError(f"plugin library {path} does not exist", PLUGIN_BUILD_HINT)
        return path
    env = os.environ.get(PLUGIN_ENV)
    if env and not Path(env).is_file():
        raise InputError(f"{PLUGIN_ENV}={env} does not point to a file", PLUGIN_BUILD_HINT)
    for candidate in _plugin_candidates():
        if candidate.is_file():
            return candidate
    raise MissingDependencyError(
        f"the SimAM TensorRT plugin ({PLUGIN_LIBRARY_NAME}) was not found", PLUGIN_BUILD_HINT
    )


@dataclass
class PluginLibrary:
    """A loaded plugin library and what it reports about itself."""

    path: Path
    handle: ctypes.CDLL
    entry_points: list[str]
    info: dict[str, str] = field(default_factory=dict)


# The entry points TensorRT's IPluginRegistry::loadLibrary looks up: getCreators (TensorRT >= 10)
# or getPluginCreators (8.x), plus setLoggerFinder.
_CREATOR_LISTS = ("getCreators", "getPluginCreators")


def load_plugin_library(path: str | os.PathLike) -> PluginLibrary:
    """Load the plugin with ctypes (no TensorRT needed) and check it is the SimAM plugin.

    Loading it into a process that already has TensorRT also registers the SimAM creator
    (the library's load-time registration)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"plugin library {path} does not exist", PLUGIN_BUILD_HINT)
    try:
        # RTLD_GLOBAL: TensorRT (and trtexec-style loaders) may look symbols up process-wide.
        handle = ctypes.CDLL(str(path.resolve()), mode=ctypes.RTLD_GLOBAL)
    except OSError as exc:
        raise InputError(
            f"cannot load plugin library {path}: {exc}",
            "check it was built for this machine (architecture, glibc); " + PLUGIN_BUILD_HINT,
        ) from exc
    present = [name for name in (*_CREATOR_LISTS, "setLoggerFinder") if hasattr(handle, name)]
    if not any(name in present for name in _CREATOR_LISTS):
        raise InputError(
            f"{path} is not a TensorRT plugin library: it exports neither getCreators nor getPluginCreators",
            PLUGIN_BUILD_HINT,
        )
    info: dict[str, str] = {}
    if hasattr(handle, "simamTrtPluginInfo"):
        describe = handle.simamTrtPluginInfo
        describe.restype = ctypes.c_char_p
        describe.argtypes = []
        info = parse_plugin_info(describe().decode())
    if info.get("plugin") != PLUGIN_NAME:
        raise InputError(f"{path} is a TensorRT plugin library, but not the SimAM one", PLUGIN_BUILD_HINT)
    # TensorRT >= 8.6 hands its logger to plugin libraries through setLoggerFinder (8.5 has none).
    if _headers_version(info) >= (8, 6) and "setLoggerFinder" not in present:
        raise InputError(f"{path} lacks setLoggerFinder, which TensorRT >= 8.6 requires", PLUGIN_BUILD_HINT)
    return PluginLibrary(path=path, handle=handle, entry_points=present, info=info)


def _headers_version(info: dict[str, str]) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in info.get("tensorrt_headers", "").split("."))
    except ValueError:
        return ()


def parse_plugin_info(text: str) -> dict[str, str]:
    """``key=value`` pairs of simamTrtPluginInfo(); the ``api`` value may contain spaces."""
    pairs = re.findall(r"(\w+)=(.*?)(?=\s+\w+=|$)", text.strip())
    return dict(pairs)


def headers_major(library: PluginLibrary) -> int | None:
    version = _headers_version(library.info)
    return version[0] if version else None


def _get_creator(registry: Any, namespace: str) -> Any:
    getter = getattr(registry, "get_creator", None) or registry.get_plugin_creator
    return getter(PLUGIN_NAME, PLUGIN_VERSION, namespace)


def register_plugin(
    runtime: Runtime, plugin_lib: str | os.PathLike | None = None, namespace: str = ""
) -> Path:
    """Make the SimAM creator visible to the runtime's ONNX parser and deserializer; returns the path.

    The library is first checked with ctypes (which also runs its load-time registration), then
    handed to the registry's ``load_library`` where there is one, so TensorRT gives it its logger
    (plugin messages then reach the build report). A library built against headers whose plugin
    registry has another layout is refused before TensorRT calls into it."""
    path = find_plugin_library(plugin_lib)
    library = load_plugin_library(path)
    built_for = headers_major(library)
    if built_for != runtime.registry_layout:
        headers = library.info.get("tensorrt_headers", "?")
        raise InputError(
            f"{path} was built against TensorRT {headers} headers, but {runtime.label} has the plugin "
            f"registry of TensorRT {runtime.registry_layout}.x",
            f"rebuild it against TensorRT {runtime.registry_layout}.x headers: "
            "make install TENSORRT_ROOT=DIR (for TensorRT for RTX: the 11.x headers)",
        )
    trt = runtime.module
    registry = trt.get_plugin_registry()
    handed_over = library.info.get("registered_by") == "loadLibrary"  # an earlier load_library holds it
    if hasattr(registry, "load_library") and not (handed_over and _get_creator(registry, namespace)):
        handle = registry.load_library(str(path.resolve()))
        if handle is None and _get_creator(registry, namespace) is None:
            raise InputError(
                f"{runtime.label} refused to load the plugin library {path} (see the log above)",
                PLUGIN_BUILD_HINT,
            )
    if _get_creator(registry, namespace) is None:
        raise InputError(
            f"{runtime.label} did not accept the SimAM plugin from {path} "
            f"(built against TensorRT {library.info.get('tensorrt_headers', '?')} headers)",
            "rebuild the plugin against the TensorRT version installed here: make plugin TENSORRT_ROOT=...",
        )
    return path
