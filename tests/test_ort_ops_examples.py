"""The two documented examples of docs/onnxruntime.md, for real: the C++ program (built against the
libonnxruntime.so.1 of the onnxruntime wheel, run on a fused model) and the Triton config.pbtxt."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, text_format

from simam_deploy.backends.onnxruntime import library as simam_ort
from simam_deploy.errors import MissingDependencyError
from tests.conftest import REPO, SHARED
from tests.onnx_corpus import simam_node_model

DOC = REPO / "docs" / "onnxruntime.md"
CPP_DIR = REPO / "examples" / "ort_cpp"
TRITON_CONFIG = REPO / "examples" / "triton" / "cifar_resnet20_simam" / "config.pbtxt"


def _headers() -> Path | None:
    for candidate in (
        os.environ.get("ONNXRUNTIME_ROOT"),
        SHARED / "third_party/onnxruntime-headers/1.21/include",
    ):
        if candidate and (Path(candidate) / "onnxruntime_cxx_api.h").is_file():
            return Path(candidate)
    return None


def _library() -> Path | None:
    try:
        return simam_ort.library_path()
    except MissingDependencyError:
        return None


def _wheel_runtime() -> Path | None:
    found = sorted((Path(ort.__file__).parent / "capi").glob("libonnxruntime.so.1*"))
    return found[0] if found else None


# ---- C++ -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cpp_example(tmp_path_factory) -> Path:
    headers, runtime = _headers(), _wheel_runtime()
    if headers is None:
        pytest.skip("no ONNX Runtime C++ headers (set ONNXRUNTIME_ROOT, or ../shared/third_party is absent)")
    if runtime is None:
        pytest.skip("this onnxruntime wheel ships no libonnxruntime.so.1")
    if shutil.which("cmake") is None or shutil.which("c++") is None:
        pytest.skip("needs cmake and a C++ compiler")
    build = tmp_path_factory.mktemp("ort_cpp")
    configure = ["cmake", "-S", str(CPP_DIR), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"]
    configure += [f"-DONNXRUNTIME_ROOT={headers}", f"-DONNXRUNTIME_LIBRARY={runtime}"]
    subprocess.run(configure, check=True, capture_output=True, text=True)
    result = subprocess.run(["cmake", "--build", str(build)], check=True, capture_output=True, text=True)
    assert "warning" not in (result.stdout + result.stderr).lower()
    return build / "simam_ort_example"


@pytest.mark.skipif(_library() is None, reason="libsimam_ort_ops.so is not built (set ONNXRUNTIME_ROOT)")
def test_cpp_example_runs_a_fused_model(cpp_example, tmp_path):
    model = simam_node_model(18, 1e-4, 1, dims=(2, 4, 6, 5))
    path, out = tmp_path / "fused.onnx", tmp_path / "y.bin"
    onnx.save(model, path)
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}  # only the wheel's runtime
    run = subprocess.run(
        [str(cpp_example), str(path), str(_library()), str(out)], capture_output=True, text=True, env=env
    )
    assert run.returncode == 0, run.stderr
    assert "shape [ 2 4 6 5 ]" in run.stdout
    # the same deterministic input the program builds, through the Python API
    x = ((np.arange(2 * 4 * 6 * 5, dtype=np.int64) * 7919 % 1000) / np.float32(500.0) - 1).astype(np.float32)
    session = ort.InferenceSession(str(path), simam_ort.session_options(), providers=["CPUExecutionProvider"])
    want = session.run(None, {"X": x.reshape(2, 4, 6, 5)})[0]
    np.testing.assert_allclose(np.fromfile(out, np.float32).reshape(want.shape), want, rtol=1e-6, atol=1e-7)


def test_cpp_example_reports_a_library_that_is_not_ours(cpp_example, tmp_path):
    path = tmp_path / "fused.onnx"
    onnx.save(simam_node_model(18), path)
    run = subprocess.run(
        [str(cpp_example), str(path), str(tmp_path / "missing.so")], capture_output=True, text=True
    )
    assert run.returncode == 1 and "onnxruntime:" in run.stderr


# ---- Triton ------------------------------------------------------------------------------------
def _triton_config_class():
    """The part of Triton's ModelConfig message (model_config.proto) the example uses, by its
    documented field names and types, so that text_format refuses any misspelt or misplaced field."""
    f = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(name="simam_triton_subset.proto", package="inference")
    data_type = file.enum_type.add(name="DataType")
    names = "INVALID BOOL UINT8 UINT16 UINT32 UINT64 INT8 INT16 INT32 INT64 FP16 FP32 FP64 STRING BF16"
    for number, name in enumerate(names.split()):
        data_type.value.add(name=f"TYPE_{name}", number=number)

    def add(message, name, number, kind, label=f.LABEL_OPTIONAL, type_name=None):
        field = message.field.add(name=name, number=number, type=kind, label=label)
        if type_name:
            field.type_name = type_name

    tensor = file.message_type.add(name="ModelTensor")
    add(tensor, "name", 1, f.TYPE_STRING)
    add(tensor, "data_type", 2, f.TYPE_ENUM, type_name=".inference.DataType")
    add(tensor, "dims", 3, f.TYPE_INT64, f.LABEL_REPEATED)
    group = file.message_type.add(name="ModelInstanceGroup")
    kind = group.enum_type.add(name="Kind")
    for number, name in enumerate(["KIND_AUTO", "KIND_GPU", "KIND_CPU", "KIND_MODEL"]):
        kind.value.add(name=name, number=number)
    add(group, "kind", 4, f.TYPE_ENUM, type_name=".inference.ModelInstanceGroup.Kind")
    add(group, "count", 2, f.TYPE_INT32)
    operations = file.message_type.add(name="ModelOperations")
    add(operations, "op_library_filename", 1, f.TYPE_STRING, f.LABEL_REPEATED)
    config = file.message_type.add(name="ModelConfig")
    add(config, "name", 1, f.TYPE_STRING)
    add(config, "platform", 2, f.TYPE_STRING)
    add(config, "backend", 17, f.TYPE_STRING)
    add(config, "max_batch_size", 4, f.TYPE_INT32)
    add(config, "input", 5, f.TYPE_MESSAGE, f.LABEL_REPEATED, ".inference.ModelTensor")
    add(config, "output", 6, f.TYPE_MESSAGE, f.LABEL_REPEATED, ".inference.ModelTensor")
    add(config, "instance_group", 7, f.TYPE_MESSAGE, f.LABEL_REPEATED, ".inference.ModelInstanceGroup")
    add(config, "model_operations", 18, f.TYPE_MESSAGE, type_name=".inference.ModelOperations")
    pool = descriptor_pool.DescriptorPool()
    pool.Add(file)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("inference.ModelConfig"))


def test_triton_config_is_well_formed_and_fits_the_exported_model(tmp_path):
    config = text_format.Parse(TRITON_CONFIG.read_text(), _triton_config_class()())
    assert config.backend == "onnxruntime"
    assert [Path(p).name for p in config.model_operations.op_library_filename] == [simam_ort.LIBRARY_NAME]
    assert TRITON_CONFIG.parent.name == config.name  # Triton requires the folder name
    # the model the docs put into the repository: cifar-resnet20, exported and fused
    from simam_deploy.export import export_onnx
    from simam_deploy.zoo import build_model

    model, _ = build_model("cifar-resnet20")
    path = tmp_path / "model.onnx"
    export_onnx(model, path, input_shape=(1, 3, 32, 32), dynamic="batch")
    graph = onnx.load(path).graph
    for declared, actual in ((config.input[0], graph.input[0]), (config.output[0], graph.output[0])):
        dims = [d.dim_value for d in actual.type.tensor_type.shape.dim]
        assert declared.name == actual.name and list(declared.dims) == dims[1:]
        assert declared.data_type == 11  # TYPE_FP32, the exported file's type
    assert config.max_batch_size >= 1  # batch is dynamic in the file, so Triton may batch


def test_triton_config_rejects_a_misspelt_field():
    bad = TRITON_CONFIG.read_text().replace("op_library_filename", "op_library_file")
    with pytest.raises(text_format.ParseError):
        text_format.Parse(bad, _triton_config_class()())


def test_docs_show_the_tested_examples():
    text = DOC.read_text()
    blocks = re.findall(r"```(?:protobuf|pbtxt)\n(.*?)```", text, re.S)
    config_body = "\n".join(
        line for line in TRITON_CONFIG.read_text().splitlines() if not line.startswith("#")
    ).strip()
    assert any(block.strip() == config_body for block in blocks), "docs/onnxruntime.md must show config.pbtxt"
    assert "examples/ort_cpp" in text and "RegisterCustomOpsLibrary" in text
