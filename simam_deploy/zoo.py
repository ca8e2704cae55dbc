"""Model resolution and strict checkpoint loading.

A model is named by a zoo name (``simam-deploy models``), by ``package.module:callable`` or by
``path/to/file.py:callable``; the callable takes no arguments and returns an ``nn.Module``.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import logging
import os
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from simam_deploy.errors import InputError, SimamDeployError, UserModelError
from simam_deploy.fileio import check_input_file
from simam_deploy.models import ZOO, ZooEntry

log = logging.getLogger(__name__)

# Buffers left in checkpoints by FLOP-counting tools (thop); they are not weights.
PROFILER_BUFFER_SUFFIXES = ("total_ops", "total_params")
WRAPPER_KEYS = ("state_dict", "model")


@dataclass
class CheckpointReport:
    path: str
    tensors_loaded: int = 0
    dropped_profiler_keys: list[str] = field(default_factory=list)
    stripped_prefix: str | None = None
    wrapper_key: str | None = None
    metadata: dict[str, object] = field(default_factory=dict)

    def notices(self) -> list[str]:
        out = []
        if self.wrapper_key:
            out.append(f"read the weights under the checkpoint's '{self.wrapper_key}' key")
        if self.stripped_prefix:
            out.append(f"stripped the '{self.stripped_prefix}' prefix (a DataParallel checkpoint)")
        if self.dropped_profiler_keys:
            out.append(
                f"dropped {len(self.dropped_profiler_keys)} profiler buffers "
                f"({', '.join(PROFILER_BUFFER_SUFFIXES)}) left by a FLOP-counting tool"
            )
        return out


def list_models() -> list[ZooEntry]:
    return list(ZOO.values())


def zoo_entry(spec: str) -> ZooEntry | None:
    return ZOO.get(spec)


def default_input_shape(spec: str) -> tuple[int, int, int, int] | None:
    entry = ZOO.get(spec)
    return entry.input_shape if entry else None


def build_model(
    spec: str, checkpoint: str | os.PathLike | None = None, *, seed: int = 0
) -> tuple[nn.Module, CheckpointReport | None]:
    """Instantiate ``spec`` in eval mode; load ``checkpoint`` strictly if given, else seeded weights."""
    torch.manual_seed(seed)
    model = _instantiate(spec)
    report = load_checkpoint(model, checkpoint) if checkpoint is not None else None
    return model.eval(), report


def check_model_spec(spec: str) -> None:
    """Refuse an unknown model name before any other check (so the error blames the name)."""
    if spec in ZOO or ":" in spec:
        return
    raise InputError(
        f"unknown model '{spec}'",
        f"known models: {', '.join(ZOO)}; or give your own as package.module:callable "
        "or path/to/file.py:callable",
    )


def _instantiate(spec: str) -> nn.Module:
    entry = ZOO.get(spec)
    if entry is not None:
        return entry.builder()
    check_model_spec(spec)
    target, _, attr = spec.rpartition(":")
    factory = getattr(_import_target(target), attr, None)
    if factory is None or not callable(factory):
        raise InputError(f"'{attr}' is not a callable in {target}", "check the name after the ':'")
    _check_no_required_arguments(spec, factory)
    try:
        model = factory()
    except (Exception, SystemExit) as exc:  # the user's code failed: theirs, with its own message
        # SystemExit too: a factory calling sys.exit(0) must not end simam-deploy with "ok"
        raise InputError(
            f"the model factory {spec} raised {type(exc).__name__}: {_first_line(exc)}",
            "fix the factory so that calling it with no arguments returns an nn.Module",
        ) from exc
    if not isinstance(model, nn.Module):
        raise InputError(
            f"the model factory {spec} returned {type(model).__name__}, not a torch.nn.Module",
            "return the network (an nn.Module instance) from the factory",
        )
    return model


def _user_frame(exc: BaseException, files: set[str]) -> traceback.FrameSummary | None:
    """The innermost frame of ``exc`` (or the exceptions it wraps) that runs in one of ``files``."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if os.path.realpath(f.filename) in files]
        if frames:
            return frames[-1]
        exc = exc.__cause__ or exc.__context__
    return None


@contextlib.contextmanager
def user_code_errors(spec: str | None, role: str = "model") -> Iterator[None]:
    """Inside the block the user's code runs (the forward of a ``file.py:callable`` model, an
    inputs callable): an exception raised in the user's file, or a SystemExit, is the user's error
    (exit 2, naming the spec and the line), not a bug of simam-deploy (exit 3). Zoo models are ours:
    their failures stay bugs."""
    if spec is None or ":" not in spec:
        yield
        return
    from simam_deploy.fileio import spec_file

    found = spec_file(spec)
    files = {os.path.realpath(found)} if found is not None else set()
    try:
        yield
    except UserModelError as exc:
        raise UserModelError(f"the {role} {spec}: {exc.message}", exc.hint) from exc
    except SimamDeployError:
        raise
    except (Exception, SystemExit) as exc:
        frame = _user_frame(exc, files)
        if frame is None and not isinstance(exc, SystemExit):
            raise
        where = f" at {Path(frame.filename).name}:{frame.lineno} in {frame.name}" if frame else ""
        raise InputError(
            f"the {role} {spec} failed{where}: {type(exc).__name__}: {_first_line(exc)}",
            f"this is an error in your {role}'s code, not in simam-deploy; run it in plain PyTorch to debug",
        ) from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else "(no message)"


def _check_no_required_arguments(spec: str, factory) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins without a signature: just try the call
        return
    required = [
        name
        for name, p in signature.parameters.items()
        if p.default is inspect.Parameter.empty
        and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if required:
        raise InputError(
            f"the model factory {spec} needs arguments ({', '.join(required)}); it is called with none",
            "wrap it: def build(): return your_factory(...) and pass file.py:build",
        )


def _import_target(target: str):
    if target.endswith(".py"):
        return _import_file(Path(target))
    try:
        return importlib.import_module(target)
    except ImportError as exc:
        raise InputError(
            f"cannot import module '{target}': {exc}",
            "make sure it is importable (installed, or its folder on PYTHONPATH)",
        ) from exc


def _import_file(path: Path):
    """Import ``path`` as a module with its folder on sys.path, so it can import its siblings."""
    check_input_file(path, "model file", "give the .py file that defines the model factory")
    folder = str(path.resolve().parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    mod_spec = importlib.util.spec_from_file_location(path.stem, path)
    if mod_spec is None or mod_spec.loader is None:
        raise InputError(f"cannot load {path} as a Python module", "give a .py file")
    module = importlib.util.module_from_spec(mod_spec)
    try:
        mod_spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:  # the user's file failed to import: their error
        raise InputError(
            f"importing {path} failed: {type(exc).__name__}: {_first_line(exc)}",
            "run `python " + str(path) + "` to see the full error",
        ) from exc
    return module


def read_state_dict(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], CheckpointReport]:
    """Read a checkpoint file safely (weights_only) and unwrap it into a flat state dict."""
    path = Path(path)
    report = CheckpointReport(path=str(path))
    check_input_file(path, "checkpoint", "check the --checkpoint path")
    with open(path, "rb") as head:
        magic = head.read(4)
    # torch.save writes a zip archive (PK..); very old files are a bare pickle (0x80, protocol 2+).
    # Anything else (a text file, an .onnx, a README) gets a sentence instead of "invalid load key".
    if not magic.startswith(b"PK") and not magic.startswith(b"\x80"):
        raise InputError(
            f"checkpoint {path} is not a PyTorch checkpoint (neither the zip archive torch.save writes "
            f"nor a pickle; it starts with {magic!r})",
            "give the file torch.save(model.state_dict(), PATH) wrote (.pth / .pt / .pth.tar)",
        )
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with code, not a torch file
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(
            f"cannot read checkpoint {path}: {first_line}",
            "give a PyTorch state dict saved with torch.save (arbitrary pickled objects are refused "
            "for safety: weights_only=True)",
        ) from exc
    if not isinstance(obj, dict):
        raise InputError(f"checkpoint {path} holds a {type(obj).__name__}, not a state dict")
    for key in WRAPPER_KEYS:
        if isinstance(obj.get(key), dict):
            report.metadata = {k: v for k, v in obj.items() if isinstance(v, (int, float, str))}
            report.wrapper_key, obj = key, obj[key]
            break
    state = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not state:
        raise InputError(f"checkpoint {path} contains no tensors", "is it a state dict?")
    if all(k.startswith("module.") for k in state):
        report.stripped_prefix = "module."
        state = {k[len("module.") :]: v for k, v in state.items()}
    report.dropped_profiler_keys = [k for k in state if k.rsplit(".", 1)[-1] in PROFILER_BUFFER_SUFFIXES]
    for k in report.dropped_profiler_keys:
        del state[k]
    return state, report


def load_checkpoint(model: nn.Module, path: str | os.PathLike) -> CheckpointReport:
    """Load ``path`` into ``model`` strictly: every weight present, nothing unexpected, same shapes."""
    state, report = read_state_dict(path)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        arch = report.metadata.get("arch")
        parts = [f"checkpoint {path} does not fit {type(model).__name__}"]
        if arch:
            parts.append(f"(the checkpoint says arch={arch!r})")
        parts.append(_describe_keys("missing", missing))
        parts.append(_describe_keys("unexpected", unexpected))
        parts.append(_describe_keys("wrong shape", wrong_shape))
        raise InputError(
            " ".join(p for p in parts if p),
            "pick the model the checkpoint was trained as (simam-deploy models)",
        )
    model.load_state_dict(state, strict=True)
    report.tensors_loaded = len(state)
    for notice in report.notices():
        log.info("%s: %s", path, notice)
    return report


def _describe_keys(kind: str, keys: list[str], limit: int = 8) -> str:
    if not keys:
        return ""
    shown = ", ".join(keys[:limit]) + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")
    return f"\n  {kind} ({len(keys)}): {shown}"
