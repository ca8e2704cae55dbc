"""Loading and saving ONNX files safely, external data included.

Every problem becomes an InputError that names the fix. Files written by torch's dynamo exporter keep
their weights beside the model (``model.onnx.data``); we read those, but only from inside the model's
own folder: a ``location`` that is absolute, climbs out with ``..`` or resolves elsewhere through a
link is refused, so a model file cannot make us read arbitrary files.
"""

from __future__ import annotations

import contextlib
import copy
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath, PureWindowsPath

import onnx

from simam_deploy.errors import InputError
from simam_deploy.fileio import check_input_file, write_errors_name

# The IR version every file we write or hand to ONNX Runtime carries: IR 10 covers every opset up
# to 22 and every ONNX Runtime >= 1.16 reads it, while onnx 1.23's helpers stamp IR 14 (which
# onnxruntime 1.31 refuses) even when nothing newer is used.
READABLE_IR_VERSION = 10
READABLE_IR_MAX_OPSET = 22

# A serialized ModelProto cannot exceed 2 GiB (protobuf); leave room for the graph itself.
PROTOBUF_LIMIT = 2**31 - 1
EXTERNAL_DATA_THRESHOLD = int(1.8 * 2**30)
EXTERNAL_DATA_CHOICES = ("auto", "always", "never")
# Tensors smaller than this stay inside the .onnx file when we write external data: shape
# constants (Reduce axes, Reshape shapes) must stay readable, ONNX Runtime's shape inference does not
# read external data. Shape inference of a > 2 GB model strips only tensors larger than this.
EXTERNAL_SIZE_THRESHOLD = 1024


def opset_version(model: onnx.ModelProto) -> int:
    """The version of the default ('' / ai.onnx) domain as the file states it; 0 when the model does
    not import it. (graph.contract.default_opset is the checked version, for graph surgery.)"""
    return next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)


def name_nodes(model: onnx.ModelProto) -> None:
    """Give every node a unique name, in place: the matcher, fuse/quantize reports and the
    quantizer's exclusion lists refer to nodes by name."""
    seen: set[str] = set()
    for i, node in enumerate(model.graph.node):
        if not node.name or node.name in seen:
            base = f"{node.op_type}_{i}"
            node.name = base if base not in seen else f"{base}_n"
        seen.add(node.name)


def cap_ir_version(model: onnx.ModelProto) -> onnx.ModelProto:
    """Lower ``model.ir_version`` (in place) to READABLE_IR_VERSION when its opset allows; returns it."""
    if opset_version(model) <= READABLE_IR_MAX_OPSET:
        model.ir_version = min(model.ir_version, READABLE_IR_VERSION)
    return model


# -- external data -------------------------------------------------------------------------------


def _graph_tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    yield from graph.initializer
    for node in graph.node:
        yield from _node_tensors(node)


def _node_tensors(node: onnx.NodeProto) -> Iterator[onnx.TensorProto]:
    for attr in node.attribute:
        if attr.HasField("t"):
            yield attr.t
        yield from attr.tensors
        if attr.HasField("g"):
            yield from _graph_tensors(attr.g)
        for sub in attr.graphs:
            yield from _graph_tensors(sub)


def all_tensors(model: onnx.ModelProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of the model: initializers and attribute tensors, in subgraphs and functions too."""
    yield from _graph_tensors(model.graph)
    for function in model.functions:
        for node in function.node:
            yield from _node_tensors(node)


def uses_external_data(model: onnx.ModelProto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in all_tensors(model))


def _external_fields(tensor: onnx.TensorProto) -> dict[str, str]:
    return {entry.key: entry.value for entry in tensor.external_data}


def _safe_location(location: str, folder: Path, tensor: str, model_path: Path) -> Path:
    """The file ``location`` names, refused unless it is a plain relative path inside ``folder``."""
    fix = (
        "keep the weights file in the model's folder and name it relatively "
        "(onnx.save(model, path, save_as_external_data=True, location='model.onnx.data'))"
    )
    label = f"{model_path}: tensor {tensor!r} keeps its data in {location!r}"
    if not location:
        raise InputError(f"{model_path}: tensor {tensor!r} is external but names no location", fix)
    posix, windows = PurePosixPath(location), PureWindowsPath(location)
    if posix.is_absolute() or windows.is_absolute() or windows.drive or location.startswith(("/", "\\")):
        raise InputError(f"{label}, an absolute path; weights must sit beside the model", fix)
    if ".." in posix.parts or ".." in windows.parts:
        raise InputError(f"{label}, which climbs out of the model's folder with '..'", fix)
    target = (folder / location).resolve()
    if not target.is_relative_to(folder.resolve()):
        raise InputError(f"{label}, which resolves outside the model's folder (a link?)", fix)
    if not target.is_file():
        raise InputError(
            f"{label}, which does not exist next to the model",
            "copy the weights file (often MODEL.onnx.data) into the model's folder with it",
        )
    return target


def _check_range(fields: dict[str, str], target: Path, tensor: str, model_path: Path) -> None:
    size = target.stat().st_size
    try:
        offset = int(fields.get("offset", "0"))
        length = int(fields["length"]) if "length" in fields else None
    except ValueError:
        raise InputError(
            f"{model_path}: tensor {tensor!r} has a non-numeric external-data offset/length",
            "re-save the model with onnx.save(..., save_as_external_data=True)",
        ) from None
    end = offset + (length or 0)
    if offset < 0 or (length is not None and length < 0) or end > size:
        raise InputError(
            f"{model_path}: tensor {tensor!r} reads bytes {offset}..{end} of {target.name} "
            f"({size} bytes): the weights file is truncated or belongs to another model",
            "re-export the model, or copy the matching weights file beside it",
        )


def check_external_data_locations(
    path: str | os.PathLike, model: onnx.ModelProto | None = None
) -> list[Path]:
    """Validate every external-data reference of the file at ``path``; returns the data files.

    ``model`` is the file's proto loaded without external data (read from ``path`` when None).
    """
    path = Path(path)
    if model is None:
        model = onnx.load(str(path), load_external_data=False)
    # readers resolve locations beside the path they were given (ONNX Runtime) or beside the real
    # file (onnx.load after resolve); when the model is a link these differ, so both must be safe
    folders = dict.fromkeys([path.resolve().parent, path.absolute().parent])
    files: dict[Path, None] = {}
    for tensor in all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        fields = _external_fields(tensor)
        for folder in folders:
            target = _safe_location(fields.get("location", ""), folder, tensor.name, path)
            _check_range(fields, target, tensor.name, path)
        files[target] = None
    return list(files)


def external_data_files(path: str | os.PathLike) -> list[Path]:
    """The (validated) weight files an ONNX file reads; empty when it keeps its weights inside."""
    return check_external_data_locations(path)


# -- loading -------------------------------------------------------------------------------------


def _read_proto(path: Path) -> onnx.ModelProto:
    check_input_file(path, "model", "give an .onnx file (re-export it if it is empty)")
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:
        raise InputError(
            f"{path} is not a readable ONNX file ({type(exc).__name__})",
            "give a .onnx model file (is it truncated, or another format?)",
        ) from exc
    if not model.graph.node and not model.graph.output:
        raise InputError(f"{path} parsed as ONNX but holds no graph", "is it really an ONNX model?")
    return model


def check_model_file(path: str | os.PathLike) -> None:
    """onnx's checker on the file itself (it reads external data beside it, and handles > 2 GB)."""
    try:
        onnx.checker.check_model(str(path))
    except onnx.checker.ValidationError as exc:
        raise InputError(f"{path} is not a valid ONNX model: {str(exc).splitlines()[0]}") from exc


def load_onnx(path: str | os.PathLike, *, check: bool = True, load_external: bool = True) -> onnx.ModelProto:
    """Load ``path`` as an ONNX model, with its weights when they live in external data files.

    Missing, empty, corrupt and non-ONNX files, and external-data locations outside the model's
    folder, become InputErrors. ``load_external=False`` returns the graph with external tensors
    left as references (validated all the same), e.g. to count nodes of a huge model.
    """
    path = Path(path)
    model = _read_proto(path)
    external = uses_external_data(model)
    if external:
        check_external_data_locations(path, model)
    if check:
        check_model_file(path)
    if external and load_external:
        try:
            onnx.external_data_helper.load_external_data_for_model(model, str(path.resolve().parent))
        except (OSError, ValueError) as exc:
            raise InputError(f"{path}: cannot read its external data ({exc})") from exc
    return model


def infer_shapes(model: onnx.ModelProto, *, data_prop: bool = False) -> onnx.ModelProto:
    """onnx shape inference that also works past the 2 GB protobuf limit (weights are not needed)."""
    if model.ByteSize() < EXTERNAL_DATA_THRESHOLD:
        return onnx.shape_inference.infer_shapes(model, strict_mode=False, data_prop=data_prop)
    skeleton = copy.deepcopy(model)
    large = [
        t for t in skeleton.graph.initializer if t.raw_data and len(t.raw_data) > EXTERNAL_SIZE_THRESHOLD
    ]
    for tensor in large:
        tensor.ClearField("raw_data")
        tensor.data_location = onnx.TensorProto.EXTERNAL
        tensor.external_data.add(key="location", value="__weights_not_loaded__")
    inferred = onnx.shape_inference.infer_shapes(skeleton, strict_mode=False, data_prop=data_prop)
    by_name = {t.name: t for t in model.graph.initializer}
    del inferred.graph.initializer[:]
    inferred.graph.initializer.extend(by_name[t.name] for t in skeleton.graph.initializer)
    return inferred


# -- saving --------------------------------------------------------------------------------------


def wants_external_data(model: onnx.ModelProto, external_data: str, source_external: bool) -> bool:
    """Decide external data for an output: 'always', 'never', or 'auto' (input had it, or > 2 GB)."""
    if external_data not in EXTERNAL_DATA_CHOICES:
        raise InputError(
            f"unknown --external-data {external_data!r}", f"use one of {', '.join(EXTERNAL_DATA_CHOICES)}"
        )
    too_big = model.ByteSize() >= EXTERNAL_DATA_THRESHOLD
    if external_data == "never":
        if too_big:
            raise InputError(
                "the model is over 2 GB and cannot be saved as one ONNX file",
                "use --external-data auto (or always)",
            )
        return False
    return external_data == "always" or source_external or too_big


def data_file_for(path: str | os.PathLike) -> Path:
    """Where we put the weights of ``path``: ``<name>.data`` beside it (torch's naming)."""
    path = Path(path)
    return path.with_name(path.name + ".data")


def _refuse_overwrite(targets: Iterable[Path], protect: Iterable[str | os.PathLike]) -> None:
    protected = [Path(p) for p in protect]
    for target in targets:
        for src in protected:
            if target.resolve() == src.resolve() or (
                target.exists() and src.exists() and os.path.samefile(target, src)
            ):
                raise InputError(
                    f"writing {target} would overwrite input file {src}",
                    "choose another -o name (its weights go to <name>.data beside it)",
                )


def protected_files(*inputs: str | os.PathLike) -> list[Path]:
    """The given ONNX inputs plus every external-data file they read (for never-overwrite checks)."""
    out: list[Path] = []
    for item in inputs:
        path = Path(item)
        out.append(path)
        if path.suffix == ".onnx" and path.is_file():
            with contextlib.suppress(Exception):
                out.extend(check_external_data_locations(path))
    return out


def save_onnx(
    model: onnx.ModelProto,
    path: str | os.PathLike,
    *,
    external_data: str = "auto",
    source_external: bool = False,
    protect: Iterable[str | os.PathLike] = (),
) -> list[Path]:
    """Write ``model`` to ``path`` (and ``<path>.data`` when external); returns the files written.

    Both files are written into a temporary folder beside the target and moved into place only when
    everything succeeded (data file first, then the model), so a failure leaves no half-written
    output. Files in ``protect`` (inputs and their data files) are never overwritten. The caller's
    ModelProto is not modified. A stale ``<path>.data`` from an earlier external save is removed
    when the new file keeps its weights inside.
    """
    path = Path(path)
    external = wants_external_data(model, external_data, source_external)
    data_path = data_file_for(path)
    _refuse_overwrite([path, data_path] if external else [path], protect)
    to_write = copy.deepcopy(model) if external else model
    cap_ir_version(to_write)
    folder = path.resolve().parent
    with write_errors_name(path):
        tmp_dir = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder))
    try:
        with write_errors_name(path, tmp_dir, data_path):
            tmp_model = tmp_dir / path.name
            if external:
                _write_external(to_write, tmp_dir, data_path.name)
            onnx.save(to_write, str(tmp_model))
            written = [path]
            tmp_data = tmp_dir / data_path.name
            _normal_permissions(tmp_model, tmp_data)
            if external and tmp_data.exists():
                os.replace(tmp_data, folder / data_path.name)
                written.insert(0, data_path)
            os.replace(tmp_model, folder / path.name)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    if not external or data_path not in written:
        _remove_stale_data(path, data_path, protect)
    return written


def _write_external(model: onnx.ModelProto, folder: Path, location: str) -> None:
    """Move the initializers of >= 1 KiB into ``folder/location`` (in place on ``model``).

    Done by hand: onnx.save(save_as_external_data=True) refuses when a file named ``location``
    exists relative to the current directory (not the model's), which breaks re-running a command.
    """
    for tensor in model.graph.initializer:
        if tensor.HasField("raw_data") and len(tensor.raw_data) >= EXTERNAL_SIZE_THRESHOLD:
            onnx.external_data_helper.set_external_data(tensor, location)
    onnx.external_data_helper.write_external_data_tensors(model, str(folder))


def _normal_permissions(*files: Path) -> None:
    """Files made in a private temporary folder get the permissions a plain open() would give."""
    umask = os.umask(0)
    os.umask(umask)
    for f in files:
        if f.exists():
            os.chmod(f, 0o666 & ~umask)


def _remove_stale_data(path: Path, data_path: Path, protect: Iterable[str | os.PathLike]) -> None:
    """An older external save left ``<path>.data``; the new model no longer reads it."""
    if not data_path.exists():
        return
    if any(data_path.resolve() == Path(p).resolve() for p in protect):
        return
    with contextlib.suppress(OSError):
        data_path.unlink()
