"""Resource limits checked before the work: an input the machine cannot hold is the user's input
error (exit 2, with the size), not an out-of-memory traceback minutes later."""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from simam_deploy.errors import InputError

# The inputs are a fraction of what a run holds (activations, the other backend's copy, outputs):
# inputs larger than this share of the available memory cannot run.
INPUT_SHARE = 0.5


def available_bytes() -> int:
    """Memory available to new allocations (MemAvailable where /proc has it, else physical memory)."""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _gb(n: float) -> str:
    return f"{n / 1e9:.3g} GB"


def check_input_memory(
    shapes: Mapping[str, Sequence[int]], option: str, itemsize: int = 4, copies: int = 1
) -> None:
    """Refuse input shapes whose tensors alone (``copies`` of them) would not fit in memory."""
    need = copies * sum(math.prod(int(d) for d in shape) * itemsize for shape in shapes.values())
    have = available_bytes()
    if need > INPUT_SHARE * have:
        described = ", ".join(f"{name} {'x'.join(map(str, s))}" for name, s in shapes.items())
        raise InputError(
            f"{option}: the inputs alone need {_gb(need)} ({described}, {itemsize}-byte elements"
            + (f", {copies} copies: ours and the runtime's" if copies > 1 else "")
            + f"); this machine has {_gb(have)} of memory available",
            f"use a smaller batch or shape ({option})",
        )


_OOM_MARKERS = ("out of memory", "can't allocate memory", "failed to allocate memory", "bad_alloc")


@contextlib.contextmanager
def out_of_memory_is_input(option: str) -> Iterator[None]:
    """An allocation failure inside the block (numpy, torch, ONNX Runtime) becomes exit 2 naming
    ``option``: the size the user asked for does not fit this machine."""
    try:
        yield
    except MemoryError as exc:
        raise InputError(
            f"{option}: out of memory ({exc or 'MemoryError'})", f"use a smaller {option}"
        ) from exc
    except RuntimeError as exc:
        text = str(exc).lower()
        if not any(marker in text for marker in _OOM_MARKERS):
            raise
        first = str(exc).strip().splitlines()[0]
        raise InputError(f"{option}: out of memory ({first})", f"use a smaller {option}") from exc
