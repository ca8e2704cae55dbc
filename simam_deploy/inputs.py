"""Inputs for ``validate`` that look like the user's data, and files that carry them to other tools.

Sources (``--inputs``):

* a folder of images (``.png``/``.jpg``/``.jpeg``/``.bmp``/``.webp``): each is converted to RGB, its
  shorter side scaled to ``resize`` (when given) and centre-cropped to ``size``, scaled to [0, 1] and
  normalised with ``(x - mean) / std``; zoo models carry the preprocessing they were trained with;
* a folder written by ``--save-inputs`` (it holds ``inputs.manifest.json``): loaded back bit for bit;
* ``package.module:callable`` or ``path/file.py:callable``: a function with no arguments returning an
  iterable of input dicts ``{name: array}`` or arrays (single-input models); one item = one batch;
* ``FILE.npz`` as before;
* ``FILE.json``: Polygraphy's ``--save-inputs`` (a list of feed dicts, one batch each).

Saved tensors (``--save-inputs`` / ``--save-outputs``) are written three ways in one folder:
``<tensor>.bin`` raw little-endian C-order data, which ``trtexec --loadInputs=name:file`` (and
TensorRT 11.1's ``--loadRefOutputs=name:file``) read; ``inputs.json`` / ``outputs.json`` in
Polygraphy's JSON (a list of feed dicts for ``--load-inputs``, a ``RunResults`` for
``--load-outputs``); and a manifest with names, dtypes, shapes and a ready trtexec command line.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simam_deploy.errors import InputError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
# The SimAM authors' CIFAR normaliser (main_cifar.py, used for CIFAR-10 and CIFAR-100 alike).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_BATCH = 32
MAX_IMAGES = 10_000
MANIFEST_SCHEMA = "simam-deploy/tensors/v1"
POLYGRAPHY_CLASS = "polygraphy_class"


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a network input."""

    size: tuple[int, int]  # H, W after the centre crop
    mean: tuple[float, ...]
    std: tuple[float, ...]
    resize: int | None = None  # shorter side before the crop (None: scale straight to fit the crop)

    def to_dict(self) -> dict:
        return {
            "size": list(self.size),
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": self.resize,
        }


ZOO_PREPROCESS: dict[str, Preprocess] = {
    "cifar-resnet20": Preprocess((32, 32), CIFAR_MEAN, CIFAR_STD),
    "cifar-resnet56": Preprocess((32, 32), CIFAR_MEAN, CIFAR_STD),
    "resnet18": Preprocess((224, 224), IMAGENET_MEAN, IMAGENET_STD, resize=256),
    "resnet50": Preprocess((224, 224), IMAGENET_MEAN, IMAGENET_STD, resize=256),
    "mobilenetv2": Preprocess((224, 224), IMAGENET_MEAN, IMAGENET_STD, resize=256),
}


@dataclass
class InputSet:
    """Batches to run, where they came from, and how many samples they hold."""

    source: str
    kind: str  # "npz" | "images" | "callable" | "saved"
    batches: list[dict[str, np.ndarray]]
    files: list[str] = field(default_factory=list)
    preprocess: Preprocess | None = None

    @property
    def count(self) -> int:
        return sum(int(next(iter(b.values())).shape[0]) if b else 0 for b in self.batches)

    def shapes(self) -> list[tuple[int, ...]]:
        """The shape of the first input in every batch."""
        return [tuple(next(iter(b.values())).shape) for b in self.batches]

    def to_dict(self) -> dict:
        out = {"source": self.source, "kind": self.kind, "batches": len(self.batches), "samples": self.count}
        if self.preprocess is not None:
            out["preprocess"] = self.preprocess.to_dict()
        return out


InputSpec = Sequence[tuple[str, tuple, np.dtype]]


# -- choosing the preprocessing -----------------------------------------------------------------------


def parse_size(text: str | int | Sequence[int] | None) -> tuple[int, int] | None:
    """'32' -> (32, 32); '224x192' -> (224, 192)."""
    if text is None:
        return None
    if isinstance(text, int):
        dims = [text]
    elif isinstance(text, str):
        try:
            dims = [int(p) for p in text.lower().split("x")]
        except ValueError:
            dims = []
    else:
        dims = [int(v) for v in text]
    if len(dims) == 1:
        dims = dims * 2
    if len(dims) != 2 or min(dims) <= 0:
        raise InputError(f"--size {text!r} is not a size", "give S or HxW in pixels, e.g. --size 32")
    return dims[0], dims[1]


def parse_floats(text: str | Sequence[float] | None, what: str) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        values = [float(v) for v in text.split(",")] if isinstance(text, str) else [float(v) for v in text]
    except ValueError:
        values = []
    if not values or not all(np.isfinite(values)):
        raise InputError(f"--{what} {text!r} is not a list of numbers", f"e.g. --{what} 0.485,0.456,0.406")
    return tuple(values)


def preprocess_for(
    reference: str | None,
    spec_shape: Sequence | None,
    *,
    mean: str | Sequence[float] | None = None,
    std: str | Sequence[float] | None = None,
    size: str | Sequence[int] | None = None,
) -> Preprocess:
    """The zoo model's preprocessing, with any of --mean/--std/--size overriding it."""
    base = ZOO_PREPROCESS.get(reference or "")
    mean_v = parse_floats(mean, "mean") or (base.mean if base else None)
    std_v = parse_floats(std, "std") or (base.std if base else None)
    size_v = parse_size(size) or (base.size if base else _static_hw(spec_shape))
    if mean_v is None or std_v is None:
        raise InputError(
            f"{reference} is not a zoo model, so its image normalisation is unknown",
            "give the values it was trained with, e.g. --mean 0.485,0.456,0.406 --std 0.229,0.224,0.225",
        )
    if size_v is None:
        raise InputError("the model's H and W are dynamic and --size is not given", "add --size HxW")
    if len(mean_v) != len(std_v) or any(s <= 0 for s in std_v):
        raise InputError(
            f"--mean has {len(mean_v)} values and --std {len(std_v)}; every std must be > 0",
            "give one mean and one std per channel",
        )
    resize = base.resize if base is not None and size is None else None
    return Preprocess(size_v, mean_v, std_v, resize)


def _static_hw(spec_shape: Sequence | None) -> tuple[int, int] | None:
    if spec_shape is None or len(spec_shape) != 4:
        return None
    h, w = spec_shape[2], spec_shape[3]
    return (h, w) if isinstance(h, int) and isinstance(w, int) and h > 0 and w > 0 else None


# -- images -------------------------------------------------------------------------------------------


def image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(
            f"{folder} holds no images ({', '.join(IMAGE_SUFFIXES)})", "point --inputs at a folder of images"
        )
    if len(files) > MAX_IMAGES:
        raise InputError(f"{folder} holds {len(files)} images; at most {MAX_IMAGES} are read", "use a subset")
    return files


def load_image(path: Path, pre: Preprocess) -> np.ndarray:
    """One image as float32 CHW, preprocessed."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            rgb = img.convert("RGB")
    except (UnidentifiedImageError, OSError) as exc:
        raise InputError(
            f"cannot read image {path}: {exc}", "remove the file or convert it to PNG/JPEG"
        ) from exc
    h, w = pre.size
    # shorter side to `resize`, or just enough to cover the crop
    scale = pre.resize / min(rgb.size) if pre.resize is not None else max(h / rgb.size[1], w / rgb.size[0])
    new_w, new_h = max(w, round(rgb.size[0] * scale)), max(h, round(rgb.size[1] * scale))
    rgb = rgb.resize((new_w, new_h), Image.BILINEAR)  # type: ignore[attr-defined]  # Pillow 9.0: no Image.Resampling
    left, top = (new_w - w) // 2, (new_h - h) // 2
    rgb = rgb.crop((left, top, left + w, top + h))
    x = np.asarray(rgb, dtype=np.float32).transpose(2, 0, 1) / 255.0
    mean = np.asarray(pre.mean, np.float32).reshape(-1, 1, 1)
    std = np.asarray(pre.std, np.float32).reshape(-1, 1, 1)
    if mean.shape[0] not in (1, 3):
        raise InputError(f"--mean/--std have {mean.shape[0]} values for an RGB image", "give 1 or 3 values")
    return ((x - mean) / std).astype(np.float32)


def load_image_folder(folder: Path, spec: InputSpec, pre: Preprocess, batch_size: int) -> InputSet:
    if len(spec) != 1:
        raise InputError(
            f"a folder of images feeds one input, the model has {len(spec)}",
            "write a module:callable that yields input dicts",
        )
    name, shape, dtype = spec[0]
    if len(shape) == 4 and isinstance(shape[1], int) and shape[1] != 3:
        raise InputError(f"input {name} takes {shape[1]} channels, images give 3", "use module:callable")
    files = image_files(folder)
    images = np.stack([load_image(p, pre) for p in files]).astype(dtype)
    batches = [{name: b} for b in _split_batches(images, shape, batch_size)]
    return InputSet(str(folder), "images", batches, [p.name for p in files], pre)


def _split_batches(x: np.ndarray, shape: Sequence, batch_size: int) -> list[np.ndarray]:
    """Batches of ``batch_size`` (dynamic batch axis) or of the file's fixed batch, the last one padded by
    repeating its final sample (a fixed-batch engine cannot take fewer)."""
    fixed = shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None
    step = fixed or max(1, batch_size)
    out = []
    for start in range(0, len(x), step):
        part = x[start : start + step]
        if fixed and len(part) < fixed:
            part = np.concatenate([part, np.repeat(part[-1:], fixed - len(part), axis=0)])
        out.append(np.ascontiguousarray(part))
    return out


# -- module:callable ----------------------------------------------------------------------------------


def load_callable(spec_text: str, spec: InputSpec) -> InputSet:
    from simam_deploy.zoo import _import_target, user_code_errors

    target, _, attr = spec_text.rpartition(":")
    factory = getattr(_import_target(target), attr, None)
    if factory is None or not callable(factory):
        raise InputError(f"'{attr}' is not a callable in {target}", "check the name after the ':'")
    with user_code_errors(spec_text, "inputs callable"):
        try:
            items = factory()
            iterator = iter(items)
        except TypeError as exc:
            raise InputError(f"{spec_text} must return an iterable of input dicts or arrays ({exc})") from exc
        batches = [_as_feed(item, spec, spec_text, i) for i, item in enumerate(_take(iterator))]
    if not batches:
        raise InputError(f"{spec_text} yielded no inputs", "yield at least one batch")
    return InputSet(spec_text, "callable", batches)


def _take(iterator: Iterator) -> Iterator:
    for i, item in enumerate(iterator):
        if i >= MAX_IMAGES:
            raise InputError(f"the inputs callable yielded more than {MAX_IMAGES} batches", "yield fewer")
        yield item


def _as_feed(item: object, spec: InputSpec, source: str, index: int) -> dict[str, np.ndarray]:
    names = [n for n, _, _ in spec]
    if isinstance(item, Mapping):
        feed = dict(item)
    elif len(names) == 1:
        feed = {names[0]: item}
    else:
        raise InputError(
            f"{source} item {index} is a {type(item).__name__}; the model has inputs {names}",
            "yield dicts {name: array}",
        )
    missing, extra = set(names) - set(feed), set(feed) - set(names)
    if missing or extra:
        raise InputError(
            f"{source} item {index}: missing inputs {sorted(missing)}, unexpected {sorted(extra)}",
            f"name them as the model does: {names}",
        )
    out = {}
    for name, shape, dtype in spec:
        arr = _to_numpy(feed[name])
        if arr.dtype.kind not in "fiub" or (shape and arr.ndim != len(shape)):
            raise InputError(
                f"{source} item {index}: input {name} is {arr.dtype} with shape {arr.shape}; the model takes "
                f"{len(shape)}-D {np.dtype(dtype)}",
                "yield numeric arrays of the model's rank",
            )
        out[name] = np.ascontiguousarray(arr.astype(dtype, copy=False))
    return out


def _to_numpy(value: object) -> np.ndarray:
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # a torch tensor
        value = value.detach().cpu().numpy()
    return np.asarray(value)


# -- one entry point ----------------------------------------------------------------------------------


def load_inputs(
    source: str | os.PathLike,
    spec: InputSpec,
    *,
    reference: str | None = None,
    mean: str | Sequence[float] | None = None,
    std: str | Sequence[float] | None = None,
    size: str | Sequence[int] | None = None,
    batch_size: int = DEFAULT_BATCH,
) -> InputSet:
    """Read ``--inputs``: a .npz, a folder of images, a saved-tensors folder, or module:callable.

    Every batch must hold at least one sample: 0 samples would make any comparison pass vacuously."""
    found = _load_inputs(
        source, spec, reference=reference, mean=mean, std=std, size=size, batch_size=batch_size
    )
    for i, batch in enumerate(found.batches):
        empty = [name for name, arr in batch.items() if arr.ndim == 0 or arr.shape[0] == 0 or arr.size == 0]
        if empty or not batch:
            where = f" (batch {i + 1})" if len(found.batches) > 1 else ""
            raise InputError(
                f"--inputs {found.source}{where} holds 0 samples"
                + (f" in {', '.join(empty)}" if empty else "")
                + "; nothing would be compared",
                "give at least one sample per input (batch axis >= 1)",
            )
    return found


def _load_inputs(
    source: str | os.PathLike,
    spec: InputSpec,
    *,
    reference: str | None,
    mean: str | Sequence[float] | None,
    std: str | Sequence[float] | None,
    size: str | Sequence[int] | None,
    batch_size: int,
) -> InputSet:
    text = str(source)
    path = Path(text)
    if path.suffix.lower() == ".npz":
        from simam_deploy.parity import load_inputs_npz

        return InputSet(text, "npz", [load_inputs_npz(path, [n for n, _, _ in spec])])
    if path.suffix.lower() == ".json":
        return InputSet(text, "polygraphy", load_polygraphy_inputs(path))
    if path.is_dir():
        if (path / "inputs.manifest.json").is_file():
            return InputSet(text, "saved", [load_tensors(path, "inputs")])
        pre = preprocess_for(reference, spec[0][1] if spec else None, mean=mean, std=std, size=size)
        return load_image_folder(path, spec, pre, batch_size)
    if ":" in text and not path.exists():
        return load_callable(text, spec)
    raise InputError(
        f"--inputs {text!r} is neither an .npz file, Polygraphy JSON, a folder, nor module:callable",
        "e.g. --inputs batch.npz, --inputs photos/, --inputs inputs.json, --inputs mypkg.data:batches",
    )


def concat_batches(batches: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """All batches as one tensor per name (along the batch axis), for saving."""
    if not batches:
        raise InputError("no batches to save")
    out = {}
    for name in batches[0]:
        parts = [b[name] for b in batches]
        if any(p.shape[1:] != parts[0].shape[1:] or p.dtype != parts[0].dtype for p in parts):
            raise InputError(
                f"the batches of {name} differ in shape beyond the batch axis; they cannot form one file",
                "yield batches of one shape",
            )
        out[name] = np.ascontiguousarray(np.concatenate(parts, axis=0))
    return out


# -- saved tensors: trtexec raw files, Polygraphy JSON, a manifest ---------------------------------------


def _file_stem(name: str, taken: set[str]) -> str:
    """A file name for a tensor name (tensor names may hold '/', ':' and more)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "tensor"
    base, k = stem, 1
    while stem in taken:
        stem, k = f"{base}_{k}", k + 1
    taken.add(stem)
    return stem


def _encode_ndarray(arr: np.ndarray) -> dict:
    buffer = io.BytesIO()
    np.save(buffer, arr, allow_pickle=False)
    return {"array": base64.b64encode(buffer.getvalue()).decode("ascii"), POLYGRAPHY_CLASS: "ndarray"}


def _decode_ndarray(obj: Mapping, where: str) -> np.ndarray:
    if not isinstance(obj, Mapping) or obj.get(POLYGRAPHY_CLASS) != "ndarray" or "array" not in obj:
        raise InputError(f"{where} is not a Polygraphy ndarray entry", "write it with --save-inputs")
    try:
        raw = base64.b64decode(str(obj["array"]).encode("ascii"), validate=True)
        return np.load(io.BytesIO(raw), allow_pickle=False)
    except Exception as exc:
        raise InputError(f"{where}: cannot decode the array ({exc})") from exc


def polygraphy_inputs(feeds: Sequence[Mapping[str, np.ndarray]]) -> list:
    """Polygraphy's ``--load-inputs`` JSON: a list of feed dicts (one per iteration)."""
    return [{k: _encode_ndarray(v) for k, v in feed.items()} for feed in feeds]


def polygraphy_outputs(outputs: Sequence[Mapping[str, np.ndarray]], runner: str = "pytorch") -> dict:
    """Polygraphy's ``--load-outputs`` JSON: RunResults with one IterationResult per feed."""
    iterations = [
        {
            "outputs": {
                k: {"values": _encode_ndarray(v), POLYGRAPHY_CLASS: "LazyArray"} for k, v in out.items()
            },
            "runtime": 0.0,
            "runner_name": runner,
            POLYGRAPHY_CLASS: "IterationResult",
        }
        for out in outputs
    ]
    return {"lst": [[runner, iterations]], POLYGRAPHY_CLASS: "RunResults"}


def _trtexec_args(kind: str, entries: list[dict]) -> str:
    pairs = ",".join(f"{e['name']}:{e['file']}" for e in entries)
    if kind == "inputs":
        shapes = ",".join(f"{e['name']}:{'x'.join(map(str, e['shape']))}" for e in entries)
        return f"--loadInputs={pairs} --shapes={shapes}"
    return f"--loadRefOutputs={pairs} --accuracyAlgorithm=lInf --accuracyThreshold=1e-3"


def _write_tensors(folder: Path, kind: str, tensors: Mapping[str, np.ndarray]) -> None:
    taken: set[str] = set()
    entries = []
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        stem = _file_stem(name, taken)
        file = f"{stem}.bin"
        # trtexec reads raw host-order bytes; we write little-endian explicitly.
        (folder / file).write_bytes(arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes(order="C"))
        entries.append({"name": name, "file": file, "dtype": arr.dtype.name, "shape": list(arr.shape)})
    payload = polygraphy_inputs([tensors]) if kind == "inputs" else polygraphy_outputs([tensors])
    (folder / f"{kind}.json").write_text(json.dumps(payload) + "\n")
    manifest = {
        "schema": MANIFEST_SCHEMA,
        "kind": kind,
        "tensors": entries,
        "polygraphy": f"{kind}.json",
        "trtexec": _trtexec_args(kind, entries),
    }
    (folder / f"{kind}.manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def save_tensors(
    folder: str | os.PathLike,
    *,
    inputs: Mapping[str, np.ndarray] | None = None,
    outputs: Mapping[str, np.ndarray] | None = None,
    protect: Iterable[str | os.PathLike] = (),
) -> Path:
    """Write inputs and/or reference outputs into ``folder`` (new or empty), all or nothing."""
    target = Path(folder)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise InputError(f"{target} exists and is not an empty folder", "give a new folder name")
    for src in protect:
        if Path(src).resolve() == target.resolve():
            raise InputError(f"{target} is also an input; refusing to write into it", "give a new folder")
    parent = target.resolve().parent
    if not parent.is_dir():
        raise InputError(
            f"folder {target.parent} does not exist", f"create it first: mkdir -p {target.parent}"
        )
    from simam_deploy.fileio import write_errors_name

    with write_errors_name(target, parent):
        staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=parent))
    try:
        if inputs is not None:
            _write_tensors(staging, "inputs", inputs)
        if outputs is not None:
            _write_tensors(staging, "outputs", outputs)
        if target.exists():
            target.rmdir()
        os.replace(staging, target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def load_tensors(folder: str | os.PathLike, kind: str = "inputs", fmt: str = "raw") -> dict[str, np.ndarray]:
    """Read back what :func:`save_tensors` wrote: ``fmt`` 'raw' (the .bin files) or 'polygraphy'."""
    base = Path(folder)
    manifest_path = base / f"{kind}.manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(
            f"cannot read {manifest_path} ({exc})", "point at a folder written by --save-inputs"
        ) from exc
    if not isinstance(manifest, dict) or manifest.get("schema") != MANIFEST_SCHEMA:
        raise InputError(f"{manifest_path} is not a {MANIFEST_SCHEMA} manifest")
    if fmt == "polygraphy":
        return _load_polygraphy(base / f"{kind}.json", kind)
    if fmt != "raw":
        raise InputError(f"unknown format {fmt!r}", "use 'raw' or 'polygraphy'")
    return {e["name"]: _read_raw(base, e) for e in _manifest_entries(manifest, manifest_path)}


def _manifest_entries(manifest: dict, where: Path) -> list[dict]:
    entries = manifest.get("tensors")
    if not isinstance(entries, list):
        raise InputError(f"{where} has no tensor list")
    for e in entries:
        ok = (
            isinstance(e, dict)
            and isinstance(e.get("name"), str)
            and isinstance(e.get("file"), str)
            and isinstance(e.get("shape"), list)
            and all(isinstance(d, int) and d >= 0 for d in e["shape"])
        )
        if not ok:
            raise InputError(f"{where}: malformed tensor entry {e!r}")
    return entries


def _read_raw(base: Path, entry: dict) -> np.ndarray:
    file = base / entry["file"]
    # the file name comes from a manifest: it must stay inside the folder
    if Path(entry["file"]).name != entry["file"] or not file.is_file():
        raise InputError(f"tensor file {entry['file']!r} is not a file inside {base}")
    try:
        dtype = np.dtype(entry["dtype"]).newbyteorder("<")
    except TypeError as exc:
        raise InputError(f"{file}: unknown dtype {entry['dtype']!r}") from exc
    if dtype.kind not in "fiub":
        raise InputError(f"{file}: dtype {dtype} is not numeric")
    count = int(np.prod(entry["shape"], dtype=np.int64))
    if file.stat().st_size != count * dtype.itemsize:
        raise InputError(
            f"{file} has {file.stat().st_size} bytes; shape {entry['shape']} of {dtype.name} needs "
            f"{count * dtype.itemsize}",
            "the file is truncated or from another tensor",
        )
    return np.fromfile(file, dtype=dtype).reshape(entry["shape"]).astype(dtype.newbyteorder("="))


def _load_polygraphy(path: Path, kind: str) -> dict[str, np.ndarray]:
    if kind == "inputs":
        return load_polygraphy_inputs(path)[0]
    return load_polygraphy_outputs(path)[1][0]


def _read_json(path: Path) -> object:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read {path} as JSON ({exc})") from exc


def _decode_tensor(obj: object, where: str) -> np.ndarray:
    """A Polygraphy ndarray entry, bare or inside a LazyArray (``{"values": ...}``), numeric only."""
    if isinstance(obj, Mapping) and obj.get(POLYGRAPHY_CLASS) == "LazyArray":
        obj = obj.get("values")
    arr = _decode_ndarray(obj, where)
    if arr.dtype.kind not in "fiub":
        raise InputError(f"{where}: dtype {arr.dtype} is not numeric", "save numeric tensors")
    return arr


def _decode_feed(feed: object, where: str, layout: str) -> dict[str, np.ndarray]:
    if not isinstance(feed, Mapping) or not feed:
        raise InputError(f"{where} is not a dict of tensors", layout)
    return {str(k): _decode_tensor(v, f"{where}:{k}") for k, v in feed.items()}


def load_polygraphy_inputs(path: str | os.PathLike) -> list[dict[str, np.ndarray]]:
    """Polygraphy's ``--save-inputs`` JSON: one feed dict per iteration."""
    layout = "write it with `polygraphy run --save-inputs FILE.json` or `validate --save-inputs DIR`"
    data = _read_json(Path(path))
    if not isinstance(data, list) or not data:
        raise InputError(f"{path} is not Polygraphy input data (a non-empty list of feed dicts)", layout)
    return [_decode_feed(feed, f"{path} iteration {i}", layout) for i, feed in enumerate(data)]


def load_polygraphy_outputs(path: str | os.PathLike) -> tuple[str, list[dict[str, np.ndarray]]]:
    """Polygraphy's ``--save-outputs`` JSON (RunResults): the runner's name and one output dict per
    iteration. Results of several runners are refused: which one is the reference would be a guess."""
    layout = "write it with `polygraphy run MODEL --onnxrt --save-outputs FILE.json` (one runner)"
    data = _read_json(Path(path))
    runs = data.get("lst") if isinstance(data, Mapping) else None
    if (
        not isinstance(data, Mapping)
        or not isinstance(runs, list)
        or data.get(POLYGRAPHY_CLASS) != "RunResults"
    ):
        raise InputError(f"{path} is not Polygraphy RunResults JSON", layout)
    ok = all(isinstance(r, list) and len(r) == 2 and isinstance(r[1], list) for r in runs)
    if not ok or not runs:
        raise InputError(f"{path} holds no runner results", layout)
    if len(runs) > 1:
        names = ", ".join(str(r[0]) for r in runs)
        raise InputError(
            f"{path} holds the results of {len(runs)} runners ({names}); the reference must be one",
            "save the reference runner alone (e.g. polygraphy run MODEL --onnxrt --save-outputs FILE.json)",
        )
    runner, iterations = str(runs[0][0]), runs[0][1]
    if not iterations:
        raise InputError(f"{path}: runner {runner} has no iterations", layout)
    outputs = []
    for i, it in enumerate(iterations):
        where = f"{path} runner {runner} iteration {i}"
        if not isinstance(it, Mapping) or it.get(POLYGRAPHY_CLASS) != "IterationResult":
            raise InputError(f"{where} is not an IterationResult", layout)
        outputs.append(_decode_feed(it.get("outputs"), where, layout))
    return runner, outputs


# -- helpers for validate ---------------------------------------------------------------------------------


def overall_top1(report) -> float | None:
    """Top-1 agreement over every sample of every run of a ParityReport (runs weighted by batch size)."""
    agree = total = 0.0
    for run in report.runs:
        n = next(iter(run.input_shapes.values()))[0] if run.input_shapes else 0
        for stats in run.outputs.values():
            if stats.top1_agreement is not None:
                agree += stats.top1_agreement * n
                total += n
    return agree / total if total else None


def check_new_outputs(
    inputs: Sequence[str | os.PathLike],
    *folders_then_plot: str | os.PathLike | None,
) -> None:
    """Refuse bad output paths before any work: save folders must be new or empty and writable, no
    output an input."""
    from simam_deploy.fileio import check_output_folder, check_output_path

    *folders, plot = folders_then_plot
    if plot is not None:
        check_output_path(plot, inputs, option="--plot")
    for folder in folders:
        if folder is not None:
            check_output_folder(folder, inputs)


def random_feed(
    spec: InputSpec, shape: Sequence[int] | Mapping[str, Sequence[int]], seed: int
) -> dict[str, np.ndarray]:
    """The random batch parity draws for ``seed`` (standard normal, per input in order); ``shape``
    is one shape for every input or one per input name."""
    rng = np.random.default_rng(seed)
    shapes = shape if isinstance(shape, Mapping) else {name: shape for name, _, _ in spec}
    return {name: rng.standard_normal(tuple(shapes[name])).astype(dtype) for name, _, dtype in spec}


def save_reference_io(
    batches: Sequence[Mapping[str, np.ndarray]],
    reference,
    save_inputs: str | os.PathLike | None,
    save_outputs: str | os.PathLike | None,
    protect: Iterable[str | os.PathLike] = (),
) -> None:
    """Save ``batches`` and the reference Runner's outputs on them (one tensor per name, all batches)."""
    feeds = concat_batches(batches)
    outputs = None
    if save_outputs is not None:
        names = reference.input_names
        per_batch = [reference.infer(dict(zip(names, b.values(), strict=False))) for b in batches]
        outputs = concat_batches(per_batch)
    protect = list(protect)
    same = save_inputs is not None and save_outputs is not None
    if same and Path(save_inputs).resolve() == Path(save_outputs).resolve():
        save_tensors(save_inputs, inputs=feeds, outputs=outputs, protect=protect)
        return
    if save_inputs is not None:
        save_tensors(save_inputs, inputs=feeds, protect=protect)
    if save_outputs is not None:
        save_tensors(save_outputs, outputs=outputs, protect=protect)
