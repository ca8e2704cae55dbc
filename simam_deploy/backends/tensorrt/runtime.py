"""Which TensorRT is installed, and what it can do.

Two Python modules offer the same builder API: ``tensorrt`` (TensorRT 8.6, 10.x, 11.x) and
``tensorrt_rtx_bindings`` (TensorRT for RTX 1.x, which also builds engines ahead of time on a
machine without a GPU). Code asks :class:`Runtime` for a feature, never for a version number: RTX
calls itself 1.7 while it has TensorRT 11's API.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from simam_deploy.errors import InputError, MissingDependencyError

# --runtime choices; "auto" tries them in this order (plain TensorRT first).
RUNTIMES = ("tensorrt", "tensorrt-rtx")
RUNTIME_CHOICES = ("auto", *RUNTIMES)
_MODULES = {"tensorrt": "tensorrt", "tensorrt-rtx": "tensorrt_rtx_bindings"}
RTX_WHEELS = "tensorrt-rtx-cu13-libs==1.7.1.116 tensorrt-rtx-cu13-bindings==1.7.1.116"
INSTALL_HINT = (
    'pip install "simam-deploy[trt]" (TensorRT, x86_64 with an NVIDIA driver), or '
    f'"simam-deploy[trt-rtx]" ({RTX_WHEELS}: builds engines without a GPU), or on a Jetson the '
    "TensorRT Python package that JetPack installs (python3-libnvinfer)"
)
# TensorRT for RTX's parser dlopens this name, but the wheel ships only the .so.1 (see rtx_parser_link).
RTX_LIBRARY = "libtensorrt_rtx.so.1"
RTX_LIBRARY_LINK = "libtensorrt_rtx.so"


@dataclass(frozen=True)
class Runtime:
    """An imported TensorRT module and the features the build path depends on."""

    name: str  # "tensorrt" | "tensorrt-rtx"
    module: ModuleType = field(repr=False)
    version: str
    # TensorRT 8.x networks need the EXPLICIT_BATCH creation flag; 10 ignores it; 11 and RTX lack it.
    explicit_batch_flag: bool
    # No FP16/BF16 builder flags (TensorRT 11, RTX): precision comes from the ONNX file's types.
    strongly_typed_only: bool
    # Engine targets an ahead-of-time builder accepts (RTX: SM75, SM86, ...); empty elsewhere.
    compute_capabilities: tuple[str, ...]
    # The IPluginRegistry layout (= TensorRT major of the headers a plugin must be built against).
    registry_layout: int
    # Whether the ONNX parser takes a registered plugin over a model-local function of the same name
    # (TensorRT >= 10.7 and RTX); older parsers import the function's body first. A parser behaviour,
    # not an API feature, so this one is read from the version.
    plugin_over_local_function: bool = True

    @property
    def label(self) -> str:
        return f"{'TensorRT for RTX' if self.name == 'tensorrt-rtx' else 'TensorRT'} {self.version}"


def _registry_layout(name: str, module: ModuleType) -> int:
    if name == "tensorrt-rtx":
        return 11  # RTX 1.x has TensorRT 11's plugin registry (no deprecated V2 methods)
    return int(str(module.__version__).split(".")[0])


def probe(name: str, module: ModuleType) -> Runtime:
    """Feature flags of an imported TensorRT module."""
    flags = module.NetworkDefinitionCreationFlag.__members__
    builder_flags = module.BuilderFlag.__members__
    capability = getattr(module, "ComputeCapability", None)
    targets = tuple(
        member
        for member in (capability.__members__ if capability is not None else ())
        if member.startswith("SM")
    )
    return Runtime(
        name=name,
        module=module,
        version=str(module.__version__),
        explicit_batch_flag="EXPLICIT_BATCH" in flags and not hasattr(module, "IPluginV3"),
        strongly_typed_only="FP16" not in builder_flags,
        compute_capabilities=targets,
        registry_layout=_registry_layout(name, module),
        plugin_over_local_function=name == "tensorrt-rtx" or _version_tuple(module) >= (10, 7),
    )


def _version_tuple(module: ModuleType) -> tuple[int, ...]:
    parts = []
    for piece in str(module.__version__).split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def import_runtime(runtime: str = "auto") -> Runtime:
    """Import TensorRT (``tensorrt``), TensorRT for RTX (``tensorrt-rtx``) or the first installed (auto)."""
    if runtime not in RUNTIME_CHOICES:
        raise InputError(f"unknown TensorRT runtime {runtime!r}", f"use one of {', '.join(RUNTIME_CHOICES)}")
    names = RUNTIMES if runtime == "auto" else (runtime,)
    problems = []
    for name in names:
        try:
            module = importlib.import_module(_MODULES[name])
        except ImportError as exc:  # also a wheel whose native libraries are missing
            problems.append(f"{_MODULES[name]}: {exc}")
            continue
        if name == "tensorrt-rtx":
            rtx_parser_link()
        return probe(name, module)
    raise MissingDependencyError(
        f"no TensorRT Python package could be imported ({'; '.join(problems)})", INSTALL_HINT
    )


def _loaded_library(name: str) -> Path | None:
    """Path of a shared library this process has mapped, by file name (Linux: /proc/self/maps)."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    for line in maps.splitlines():
        path = line.split(maxsplit=5)[-1] if line.count(" ") >= 5 else ""
        if path.endswith("/" + name):
            return Path(path)
    return None


def rtx_cache_dir() -> Path:
    """A folder we own for the link when the wheel's folder is read-only."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "simam-deploy" / "tensorrt-rtx"


def _link_on_library_path(library: Path) -> Path | None:
    """A ``libtensorrt_rtx.so`` on LD_LIBRARY_PATH, if one is there; raises if it is another copy."""
    for folder in filter(None, os.environ.get("LD_LIBRARY_PATH", "").split(":")):
        candidate = Path(folder) / RTX_LIBRARY_LINK
        if not candidate.exists():
            continue
        if not candidate.samefile(library):
            raise MissingDependencyError(
                f"{candidate} on LD_LIBRARY_PATH is another copy of TensorRT for RTX than the one loaded "
                f"({library}); two copies in one process make the build fail",
                f"make it a symbolic link to {library}, or drop {folder} from LD_LIBRARY_PATH",
            )
        return candidate
    return None


def rtx_parser_link() -> Path | None:
    """Make sure the parser finds ``libtensorrt_rtx.so``: returns the link it will load.

    TensorRT for RTX's ONNX parser dlopens ``libtensorrt_rtx.so`` (searching LD_LIBRARY_PATH, then its
    own folder: RPATH $ORIGIN) when it meets a plugin node, and the wheel ships only ``.so.1``: without
    that name the process aborts. A symbolic link is the same file, so the loader reuses the copy
    already loaded (a second copy of the library breaks the build instead). The link is created once
    inside the installed wheel when that folder is writable; otherwise a link is made in a cache
    folder we own, and this raises with the two ways to use it (LD_LIBRARY_PATH must be set before
    the process starts, so it cannot be done from here)."""
    library = _loaded_library(RTX_LIBRARY)
    if library is None:
        return None  # not the pip wheel layout (e.g. a tarball on LD_LIBRARY_PATH): nothing to do
    on_path = _link_on_library_path(library)
    if on_path is not None:
        return on_path
    link = library.with_name(RTX_LIBRARY_LINK)
    if link.exists():
        return link
    try:
        if link.is_symlink():
            link.unlink()  # a dangling link (the wheel was reinstalled elsewhere): make it anew
        os.symlink(RTX_LIBRARY, link)
    except FileExistsError:
        pass  # another process made it first
    except OSError as exc:
        cache = _cache_link(library)
        raise MissingDependencyError(
            f"TensorRT for RTX's ONNX parser needs {link} (the wheel ships only {RTX_LIBRARY}), and it "
            f"cannot be created there ({exc.strerror})",
            (
                f"export LD_LIBRARY_PATH={cache.parent}:$LD_LIBRARY_PATH (a link made for you), or "
                if cache
                else ""
            )
            + f"create it once as the owner of that folder: ln -s {RTX_LIBRARY} {link}",
        ) from exc
    return link


def _cache_link(library: Path) -> Path | None:
    folder = rtx_cache_dir()
    link = folder / RTX_LIBRARY_LINK
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(library)
    except OSError:
        return None
    return link
