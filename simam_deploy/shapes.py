"""Shape strings of the command line (torch-free: validate with saved outputs runs without torch).

'1x3x224x224' for an image, '2x200x80' for [B,T,F] features, 'feats=2x200x80,weights=2x200' for a
network with several inputs. Parsed strictly: '1xx3x32x32' is a typo, not a shape."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from simam_deploy.errors import InputError


def parse_shape(text: str | tuple[int, ...] | list[int], rank: int | None = 4) -> tuple[int, ...]:
    """Parse '1x3x224x224' (or a tuple) into a shape of positive sizes; ``rank`` (4: NCHW, the
    default) is required unless None (networks whose input is not an image, e.g. [B,T,80])."""
    if isinstance(text, str):
        # strict: '1xx3x32x32' or a trailing 'x' is a typo, not a shape with an axis left out
        if not re.fullmatch(r"\d+(?:[x,]\d+)*", text.strip().lower()):
            raise InputError(
                f"cannot read input shape '{text}': sizes are integers joined by single 'x'",
                "write it as NxCxHxW, e.g. 1x3x224x224",
            )
        dims = tuple(int(p) for p in re.split(r"[x,]", text.strip().lower()))
    else:
        dims = tuple(int(d) for d in text)
    if rank is None and not dims:
        raise InputError(f"input shape {text!r} is empty", "write it as sizes joined by x, e.g. 2x200x80")
    if rank is not None and len(dims) != rank:
        raise InputError(
            f"input shape {'x'.join(map(str, dims)) or text!r} has {len(dims)} dimensions; SimAM networks "
            "take 4-D NCHW input",
            "write it as NxCxHxW, e.g. 1x3x224x224",
        )
    if any(d <= 0 for d in dims):
        raise InputError(f"input shape {dims} has a non-positive dimension", "every dimension must be >= 1")
    return dims


# 'feats=2x200x80,lengths=2': a ',' followed by the next input's NAME= starts a new entry (a bare
# shape may itself use ',' between sizes, as in '1,3,32,32').
_NEXT_INPUT = re.compile(r",\s*(?=[^,=\s]+=)")


def parse_input_shapes(text: str | Sequence[int]) -> dict[str | None, tuple[int, ...]]:
    """``--input-shape`` for any network: one shape of any rank ('2x200x80', key None: the single
    input) or one per input ('feats=2x200x80,lengths=2'). Only the SimAM tensors inside are 4-D."""
    if not isinstance(text, str):
        return {None: parse_shape(text, rank=None)}
    if "=" not in text:
        return {None: parse_shape(text, rank=None)}
    shapes: dict[str | None, tuple[int, ...]] = {}
    for entry in _NEXT_INPUT.split(text.strip()):
        name, sep, dims = entry.partition("=")
        name = name.strip()
        if not sep or not name:
            raise InputError(
                f"cannot read --input-shape entry {entry!r}",
                "write NAME=SHAPE per input, e.g. feats=2x200x80",
            )
        if name in shapes:
            raise InputError(f"--input-shape names input {name!r} twice", "give each input once")
        shapes[name] = parse_shape(dims, rank=None)
    return shapes


def shapes_for_inputs(
    shapes: Mapping[str | None, tuple[int, ...]], names: Sequence[str]
) -> dict[str, tuple[int, ...]]:
    """Assign parsed ``--input-shape`` entries to the model's input ``names`` (an unnamed shape fits a
    single-input model only); every name must exist, and every input must get a shape."""
    if None in shapes:
        if len(names) != 1:
            raise InputError(
                f"the model has {len(names)} inputs ({', '.join(names)}); one unnamed --input-shape fits one",
                "name each input: --input-shape " + ",".join(f"{n}=SHAPE" for n in names),
            )
        return {names[0]: shapes[None]}
    unknown = [n for n in shapes if n not in names]
    missing = [n for n in names if n not in shapes]
    if unknown or missing:
        raise InputError(
            f"--input-shape names {sorted(shapes)}; the model's inputs are {list(names)}",
            "give one NAME=SHAPE per model input, e.g. --input-shape "
            + ",".join(f"{n}=SHAPE" for n in names),
        )
    return {n: shapes[n] for n in names}
