"""Write Triton Inference Server model repositories for SimAM artefacts.

One call lays out ``REPO/NAME/`` for one artefact:

- a TensorRT engine -> ``platform: "tensorrt_plan"``, ``1/model.plan``, the SimAM plugin in ``lib/``
  and the server flag that loads it (``--backend-config=tensorrt,plugins=...``);
- an ONNX file -> ``backend: "onnxruntime"``, ``1/model.onnx`` (+ its external data) and, when the
  graph has SimAM nodes, our op library in ``lib/`` named by ``model_operations``;
- an ONNX file with ``backend="python"`` -> a python-backend model (``1/model.py``) that runs the
  ONNX file in ONNX Runtime with our op library, for servers without the ONNX Runtime backend.

The model directory is assembled in a temporary folder beside it and moved into place at the end,
so a failure never leaves a half-written model behind.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import onnx

from simam_deploy.backends import backend_for, get_backend
from simam_deploy.errors import InputError
from simam_deploy.graph import contract

SCHEMA = "simam-deploy/triton/v1"
# Triton backends we write models for: two of the registry's (the same runtime inside the server, our
# native library shipped beside the model) and Triton's python backend (ONNX Runtime in a script).
SERVED = ("tensorrt", "onnxruntime")
BACKENDS = ("auto", *SERVED, "python")
ENGINE_SUFFIXES = get_backend("tensorrt").suffixes
ONNX_SUFFIXES = get_backend("onnxruntime").suffixes
PYTHON_MODEL_TEMPLATE = Path(__file__).with_name("python_model.py")

# ONNX element type -> Triton data type.
_TRITON_TYPES = {
    onnx.TensorProto.FLOAT: "TYPE_FP32",
    onnx.TensorProto.FLOAT16: "TYPE_FP16",
    onnx.TensorProto.BFLOAT16: "TYPE_BF16",
    onnx.TensorProto.DOUBLE: "TYPE_FP64",
    onnx.TensorProto.INT64: "TYPE_INT64",
    onnx.TensorProto.INT32: "TYPE_INT32",
    onnx.TensorProto.INT8: "TYPE_INT8",
    onnx.TensorProto.UINT8: "TYPE_UINT8",
    onnx.TensorProto.BOOL: "TYPE_BOOL",
}
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass
class TensorSpec:
    """One model input or output as Triton sees it (``dims`` exclude the batch axis when batched)."""

    name: str
    data_type: str
    dims: list[int]


@dataclass
class RepositoryReport:
    repository: str
    model: str
    backend: str
    artefact: str
    max_batch_size: int
    instances: int
    instance_kind: str
    dynamic_batching: bool
    simam_nodes: int | None
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    libraries: list[str]
    files: list[str]
    server_command: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"schema": SCHEMA, **asdict(self)}


def write_repository(
    artefact: str | os.PathLike,
    repository: str | os.PathLike,
    *,
    name: str | None = None,
    backend: str = "auto",
    onnx_source: str | os.PathLike | None = None,
    max_batch: int | None = None,
    instances: int = 1,
    instance_kind: str = "auto",
    dynamic_batching: bool = True,
    max_queue_delay_us: int = 100,
    preferred_batch_sizes: list[int] | None = None,
    server_repository: str | None = None,
    library: str | os.PathLike | None = None,
    force: bool = False,
) -> RepositoryReport:
    """Write ``repository/NAME/`` serving ``artefact``; returns what was written.

    ``onnx_source``: for an engine, the ONNX file it was built from (its inputs, outputs and SimAM
    nodes describe the engine). ``server_repository``: the repository's path as the server will see
    it (e.g. ``/models`` in a container); absolute paths in the config use it. ``library``: the
    native library to ship (default: the one this installation built).
    """
    artefact = Path(artefact)
    if not artefact.is_file():
        what = "is a directory" if artefact.is_dir() else "does not exist"
        raise InputError(f"{artefact} {what}", "give a TensorRT engine or an ONNX file")
    if artefact.stat().st_size == 0:
        raise InputError(f"{artefact} is empty (0 bytes)", "build or export the artefact again")
    backend = _resolve_backend(artefact, backend)
    name = name or _default_name(artefact)
    _check_options(name, max_batch, instances, instance_kind, max_queue_delay_us, preferred_batch_sizes)
    repository = Path(repository)
    if repository.exists() and not repository.is_dir():
        raise InputError(f"{repository} exists and is not a directory", "give a folder for -o")
    model_dir = repository / name
    if model_dir.exists() and not force:
        raise InputError(f"{model_dir} already exists", "pass --force to replace it, or choose --name")
    graph_file = _graph_file(artefact, backend, onnx_source)
    graph = _load_graph(graph_file)
    simam_nodes = contract.count_simam_nodes(graph) if graph is not None else None

    inputs, outputs, max_batch_size, notes = _io_specs(graph, max_batch)
    if dynamic_batching and max_batch_size == 0:
        notes.append("dynamic batching is off: the model has no dynamic batch axis (max_batch_size 0)")
        dynamic_batching = False
    lib_source = _library_to_ship(backend, simam_nodes, library)
    server_repo = Path(server_repository) if server_repository else repository.resolve()
    if not server_repo.is_absolute():
        raise InputError(f"--server-repository {server_repo} is not absolute", "give e.g. /models")
    lib_in_repo = f"lib/{lib_source.name}" if lib_source else None
    server_lib = str(server_repo / name / lib_in_repo) if lib_in_repo else None

    config = _config_text(
        name=name,
        backend=backend,
        max_batch_size=max_batch_size,
        inputs=inputs,
        outputs=outputs,
        instances=instances,
        instance_kind=instance_kind,
        dynamic_batching=dynamic_batching,
        max_queue_delay_us=max_queue_delay_us,
        preferred_batch_sizes=preferred_batch_sizes,
        op_library=server_lib if backend == "onnxruntime" else None,
        python_library=lib_in_repo if backend == "python" else None,
    )
    command = server_command(server_repo, backend, server_lib)
    repository.mkdir(parents=True, exist_ok=True)
    with _staged_dir(model_dir) as stage:
        files = _populate(stage, artefact, backend, config, lib_source)
        (stage / "README.md").write_text(
            _readme(name, backend, inputs, outputs, max_batch_size, command, server_lib, simam_nodes)
        )
        files.append("README.md")
    return RepositoryReport(
        repository=str(repository),
        model=name,
        backend={"tensorrt": "tensorrt_plan"}.get(backend, backend),
        artefact=str(artefact),
        max_batch_size=max_batch_size,
        instances=instances,
        instance_kind=instance_kind,
        dynamic_batching=dynamic_batching,
        simam_nodes=simam_nodes,
        inputs=inputs,
        outputs=outputs,
        libraries=[lib_in_repo] if lib_in_repo else [],
        files=sorted(files),
        server_command=command,
        notes=notes,
    )


# ---- choices and checks ------------------------------------------------------------------------


def _resolve_backend(artefact: Path, backend: str) -> str:
    if backend not in BACKENDS:
        raise InputError(f"unknown backend {backend!r}", f"choose one of {', '.join(BACKENDS)}")
    suffix = artefact.suffix.lower()
    is_engine = suffix in ENGINE_SUFFIXES
    if suffix not in (*ENGINE_SUFFIXES, *ONNX_SUFFIXES):
        raise InputError(
            f"don't know how to serve {artefact.name}",
            f"give a TensorRT engine ({', '.join(ENGINE_SUFFIXES)}) or an .onnx file",
        )
    if backend == "auto":
        return backend_for(artefact).name
    if is_engine != (backend == "tensorrt"):
        raise InputError(
            f"--backend {backend} does not fit {artefact.name}",
            "engines are served with --backend tensorrt; ONNX files with onnxruntime or python",
        )
    return backend


def _default_name(artefact: Path) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", artefact.stem).lstrip(".-") or "model"


def _check_options(
    name: str,
    max_batch: int | None,
    instances: int,
    instance_kind: str,
    max_queue_delay_us: int,
    preferred: list[int] | None,
) -> None:
    if not _NAME_RE.match(name):
        raise InputError(f"model name {name!r} is not usable by Triton", "use letters, digits, '_', '.', '-'")
    if max_batch is not None and max_batch < 0:
        raise InputError(f"--max-batch {max_batch} is negative", "give 0 (no batching) or a positive size")
    if instances < 1:
        raise InputError(f"--instances {instances} must be at least 1", "e.g. --instances 2")
    if instance_kind not in ("auto", "cpu", "gpu"):
        raise InputError(f"unknown instance kind {instance_kind!r}", "choose auto, cpu or gpu")
    if max_queue_delay_us < 0:
        raise InputError("--max-queue-delay-us must not be negative", "e.g. --max-queue-delay-us 100")
    if preferred and (min(preferred) < 1 or (max_batch and max(preferred) > max_batch)):
        raise InputError(
            f"preferred batch sizes {preferred} must lie in 1..max batch", "e.g. --preferred-batch 4,8"
        )


def _graph_file(artefact: Path, backend: str, onnx_source: str | os.PathLike | None) -> Path | None:
    if backend != "tensorrt":
        if onnx_source is not None:
            raise InputError("--onnx is only for engines", "an ONNX artefact describes itself")
        return artefact
    if onnx_source is None:
        raise InputError(
            f"cannot read the inputs and outputs of {artefact.name} without a GPU",
            "pass the ONNX file the engine was built from: --onnx model.onnx",
        )
    source = Path(onnx_source)
    if not source.is_file():
        raise InputError(f"--onnx {source} does not exist", "give the ONNX file the engine was built from")
    return source


def _load_graph(path: Path | None) -> onnx.ModelProto | None:
    if path is None:
        return None
    from simam_deploy.onnx_utils import load_onnx

    # the shared loader refuses empty, truncated and random files (an empty file parses as an
    # empty ModelProto, which would ship a model with no inputs)
    return load_onnx(path, load_external=False)


# ---- inputs and outputs ------------------------------------------------------------------------


def _value_spec(value: onnx.ValueInfoProto) -> tuple[str, list[int]]:
    tensor = value.type.tensor_type
    data_type = _TRITON_TYPES.get(tensor.elem_type)
    if data_type is None:
        raise InputError(
            f"tensor {value.name!r} has ONNX type {onnx.TensorProto.DataType.Name(tensor.elem_type)}, "
            "which this repository writer does not map to Triton",
            "serve a model whose inputs and outputs are float, int or bool tensors",
        )
    dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor.shape.dim]
    return data_type, dims


def _io_specs(
    graph: onnx.ModelProto | None, max_batch: int | None
) -> tuple[list[TensorSpec], list[TensorSpec], int, list[str]]:
    assert graph is not None  # engines come with their ONNX source (checked above)
    initializers = {init.name for init in graph.graph.initializer}
    raw_inputs = [(*_value_spec(v), v.name) for v in graph.graph.input if v.name not in initializers]
    raw_outputs = [(*_value_spec(v), v.name) for v in graph.graph.output]
    everything = raw_inputs + raw_outputs
    batched = all(dims and dims[0] == -1 for _, dims, _ in everything)
    notes: list[str] = []
    if max_batch is None:
        max_batch = 8 if batched else 0
    if max_batch > 0 and not batched:
        fixed = next(name for _, dims, name in everything if not dims or dims[0] != -1)
        raise InputError(
            f"--max-batch {max_batch} needs a dynamic batch axis, but {fixed!r} has a fixed first dimension",
            "re-export with a dynamic batch (simam-deploy export --dynamic batch), or pass --max-batch 0",
        )
    if max_batch == 0 and batched:
        notes.append("max_batch_size 0: requests carry the batch axis themselves")

    def spec(data_type: str, dims: list[int], name: str) -> TensorSpec:
        return TensorSpec(name=name, data_type=data_type, dims=dims[1:] if max_batch > 0 else dims)

    return [spec(*i) for i in raw_inputs], [spec(*o) for o in raw_outputs], max_batch, notes


# ---- native libraries --------------------------------------------------------------------------


def _library_to_ship(
    backend: str, simam_nodes: int | None, explicit: str | os.PathLike | None
) -> Path | None:
    """The library the server needs: our TensorRT plugin, or our ONNX Runtime op library when the
    graph has SimAM nodes (a decomposed graph needs nothing)."""
    if backend != "tensorrt" and not simam_nodes:
        return None
    if explicit is not None:
        path = Path(explicit)
        if not path.is_file():
            raise InputError(f"library {path} does not exist", "give the path printed by simam-deploy libs")
        return path
    from simam_deploy.libs import find_library

    return find_library("tensorrt" if backend == "tensorrt" else "onnxruntime")  # python: ONNX Runtime inside


# ---- the files ---------------------------------------------------------------------------------


def _dims(dims: list[int]) -> str:
    return "[ " + ", ".join(str(d) for d in dims) + " ]"


def _tensor_block(kind: str, specs: list[TensorSpec]) -> str:
    rows = [
        f'  {{\n    name: "{s.name}"\n    data_type: {s.data_type}\n    dims: {_dims(s.dims)}\n  }}'
        for s in specs
    ]
    return f"{kind} [\n" + ",\n".join(rows) + "\n]\n"


def _config_text(
    *,
    name: str,
    backend: str,
    max_batch_size: int,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    instances: int,
    instance_kind: str,
    dynamic_batching: bool,
    max_queue_delay_us: int,
    preferred_batch_sizes: list[int] | None,
    op_library: str | None,
    python_library: str | None,
) -> str:
    lines = [f'name: "{name}"']
    if backend == "tensorrt":
        lines.append('platform: "tensorrt_plan"')
    else:
        lines.append(f'backend: "{backend}"')
    lines.append(f"max_batch_size: {max_batch_size}")
    text = "\n".join(lines) + "\n" + _tensor_block("input", inputs) + _tensor_block("output", outputs)
    kind = {"cpu": "\n    kind: KIND_CPU", "gpu": "\n    kind: KIND_GPU"}.get(instance_kind, "")
    if backend == "python" and instance_kind == "auto":
        kind = "\n    kind: KIND_CPU"  # the python model runs ONNX Runtime's CPU provider
    text += f"instance_group [\n  {{\n    count: {instances}{kind}\n  }}\n]\n"
    if dynamic_batching:
        preferred = ""
        if preferred_batch_sizes:
            preferred = f"\n  preferred_batch_size: {_dims(sorted(set(preferred_batch_sizes)))}"
        text += f"dynamic_batching {{\n  max_queue_delay_microseconds: {max_queue_delay_us}{preferred}\n}}\n"
    if op_library:
        text += f'model_operations {{\n  op_library_filename: "{op_library}"\n}}\n'
    if backend == "python":
        params = {"onnx_file": "model.onnx", "op_library": python_library or ""}
        rows = [
            f'  {{\n    key: "{key}"\n    value: {{ string_value: "{value}" }}\n  }}'
            for key, value in params.items()
        ]
        text += "parameters [\n" + ",\n".join(rows) + "\n]\n"
    return text


def _populate(stage: Path, artefact: Path, backend: str, config: str, lib: Path | None) -> list[str]:
    version = stage / "1"
    version.mkdir()
    files = ["config.pbtxt"]
    (stage / "config.pbtxt").write_text(config)
    if backend == "tensorrt":
        shutil.copyfile(artefact, version / "model.plan")
        files.append("1/model.plan")
    else:
        files += _copy_onnx(artefact, version)
    if backend == "python":
        shutil.copyfile(PYTHON_MODEL_TEMPLATE, version / "model.py")
        files.append("1/model.py")
    if lib is not None:
        (stage / "lib").mkdir()
        shutil.copyfile(lib, stage / "lib" / lib.name)
        files.append(f"lib/{lib.name}")
    return files


def _copy_onnx(source: Path, version_dir: Path) -> list[str]:
    """Copy the ONNX file as model.onnx, with its external data files (kept beside it by name; their
    locations are checked to stay inside the model's folder first)."""
    from simam_deploy.onnx_utils import check_external_data_locations

    folder = source.resolve().parent
    data_files = [path.relative_to(folder) for path in check_external_data_locations(source)]
    shutil.copyfile(source, version_dir / "model.onnx")
    for relative in data_files:
        target = version_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / relative, target)
    return ["1/model.onnx", *(f"1/{relative.as_posix()}" for relative in data_files)]


@contextlib.contextmanager
def _staged_dir(final: Path) -> Iterator[Path]:
    """A temporary folder beside ``final`` that replaces it only when the block succeeds."""
    stage = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
    try:
        yield stage
        _make_readable(stage)
        if final.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{final.name}.old.", dir=final.parent))
            os.replace(final, old / final.name)
            os.replace(stage, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, final)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise


def _make_readable(folder: Path) -> None:
    """mkdtemp makes 0700 folders; a server in a container or another user must read the repository."""
    umask = os.umask(0)
    os.umask(umask)
    for path in [folder, *folder.rglob("*")]:
        path.chmod((0o777 if path.is_dir() else 0o666) & ~umask)


def server_command(repository: Path, backend: str, library: str | None) -> str:
    """The command line that serves the repository (loopback addresses; open them up on purpose)."""
    # quoted for a POSIX shell: paths with spaces or quotes paste as one argument
    command = f"tritonserver --model-repository={shlex.quote(str(repository))}"
    if backend == "tensorrt" and library:
        command += f" --backend-config={shlex.quote(f'tensorrt,plugins={library}')}"
    return command


def _readme(
    name: str,
    backend: str,
    inputs: list[TensorSpec],
    outputs: list[TensorSpec],
    max_batch_size: int,
    command: str,
    library: str | None,
    simam_nodes: int | None,
) -> str:
    shape = [max(d, 1) for d in inputs[0].dims] if inputs else []
    if max_batch_size:
        shape = [1, *shape]
    how = {
        "tensorrt": (
            "A TensorRT engine (`platform: tensorrt_plan`). The SimAM plugin library in `lib/` must be "
            "loaded by the server before the engine is deserialized: the `--backend-config` flag below "
            "does it. Alternatively preload it after TensorRT's runtime (alone it finds no registry): "
            f'`LD_PRELOAD="libnvinfer.so.10:{library}" tritonserver ...`. The engine only '
            "runs on the GPU model and TensorRT version it was built for (and the plugin must come from "
            "the same simam-deploy build)."
        ),
        "onnxruntime": (
            "An ONNX model on the ONNX Runtime backend. "
            + (
                f"Its {simam_nodes} SimAM node(s) run in our op library, loaded through "
                f"`model_operations {{ op_library_filename: ... }}` from `{library}`; that path must exist "
                "inside the server (rewrite the repository with --server-repository for a container)."
                if library
                else "It has no SimAM nodes, so it needs no library."
            )
        ),
        "python": (
            "A python-backend model that runs `1/model.onnx` in ONNX Runtime (CPU) with our op library "
            "from `lib/`. The server's Python environment needs `numpy` and `onnxruntime`: start "
            "`tritonserver` with that environment's `bin/` first on PATH."
        ),
    }[backend]
    dims = "x".join(str(d) for d in shape)
    return f"""# Triton model `{name}`

Written by `simam-deploy triton`. {how}

## Serve

```bash
{command}
```

## Query

```bash
curl -s localhost:8000/v2/models/{name}          # inputs, outputs, shapes
simam-deploy bench --triton http://localhost:8000 {name}
```

```python
import numpy as np, tritonclient.http as http
client = http.InferenceServerClient("localhost:8000")
x = http.InferInput("{inputs[0].name if inputs else "input"}", [{", ".join(map(str, shape))}], "FP32")
x.set_data_from_numpy(np.random.rand({", ".join(map(str, shape))}).astype(np.float32))  # {dims}
print(client.infer("{name}", [x]).as_numpy("{outputs[0].name if outputs else "output"}"))
```
"""
