"""libsimam_ort_ops.so in a real ONNX Runtime session: types, attributes, errors, registration."""

from __future__ import annotations

import ctypes
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from simam_deploy.backends.onnxruntime import library as simam_ort
from simam_deploy.backends.onnxruntime.runner import OnnxRuntimeRunner
from simam_deploy.errors import InputError, MissingDependencyError
from simam_deploy.nn import simam_reference_numpy
from tests.onnx_corpus import simam_node_model


def _library() -> Path | None:
    try:
        return simam_ort.library_path()
    except MissingDependencyError:
        return None


LIBRARY = _library()
pytestmark = pytest.mark.skipif(
    LIBRARY is None,
    reason="libsimam_ort_ops.so is not built (no ONNX Runtime headers: set ONNXRUNTIME_ROOT and reinstall)",
)

# Half an ulp of the storage type at 1.0 is the rounding of the result; one ulp leaves room for the
# fp32 arithmetic before it.
TYPE_RTOL = {np.float32: 1e-5, np.float16: 2.0**-10, ml_dtypes.bfloat16: 2.0**-7}


def session(model: onnx.ModelProto) -> ort.InferenceSession:
    return ort.InferenceSession(
        model.SerializeToString(), simam_ort.session_options(), providers=["CPUExecutionProvider"]
    )


def simam_cast_model(elem_type: int, e_lambda: float, unbiased: int) -> onnx.ModelProto:
    """float X -> Cast(elem_type) -> SimAM -> Cast(float) -> Y, plus XR = the cast input read back
    (the exact values SimAM saw), so that numpy needs no bfloat16 feeds."""
    nodes = [
        helper.make_node("Cast", ["X"], ["xs"], to=elem_type),
        helper.make_node(
            "SimAM",
            ["xs"],
            ["ys"],
            name="simam_cast",
            domain="com.simam_deploy",
            e_lambda=e_lambda,
            unbiased=unbiased,
        ),
        helper.make_node("Cast", ["ys"], ["Y"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["xs"], ["XR"], to=TensorProto.FLOAT),
    ]
    dims = ["n", "c", "h", "w"]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, dims) for n in ("Y", "XR")],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 18), helper.make_opsetid("com.simam_deploy", 1)]
    )
    model.ir_version = 9
    return model


def assert_matches_reference(got, x_seen, e_lambda, unbiased, np_type):
    want = simam_reference_numpy(np.asarray(x_seen, np.float64), e_lambda, bool(unbiased))
    rtol = TYPE_RTOL[np_type]
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=rtol, atol=rtol * 1e-3)


@pytest.mark.parametrize(("e_lambda", "unbiased"), [(1e-4, 1), (0.1, 0), (2.5, 1)])
def test_float32_matches_reference_on_dynamic_shapes(e_lambda, unbiased):
    s = session(simam_node_model(18, e_lambda, unbiased, dims=("n", 4, "h", "w")))
    rng = np.random.default_rng(3)
    for shape in [(2, 4, 6, 5), (1, 4, 13, 3), (3, 4, 2, 2), (2, 4, 150, 150)]:
        x = (rng.standard_normal(shape) * 4 + 1).astype(np.float32)
        got = s.run(None, {"X": x})[0]
        assert got.dtype == np.float32
        assert_matches_reference(got, np.maximum(x, 0), e_lambda, unbiased, np.float32)


@pytest.mark.parametrize(
    ("elem_type", "np_type"), [(TensorProto.FLOAT16, np.float16), (TensorProto.BFLOAT16, ml_dtypes.bfloat16)]
)
@pytest.mark.parametrize(("e_lambda", "unbiased"), [(1e-4, 1), (0.1, 0)])
def test_16_bit_types_match_reference_within_their_precision(elem_type, np_type, e_lambda, unbiased):
    s = session(simam_cast_model(elem_type, e_lambda, unbiased))
    rng = np.random.default_rng(5)
    for shape in [(2, 8, 7, 9), (1, 3, 56, 56)]:
        x = (rng.standard_normal(shape) * 3 + 0.5).astype(np.float32)
        y, seen = s.run(None, {"X": x})
        assert_matches_reference(y, seen, e_lambda, unbiased, np_type)


def test_float16_graph_io_runs_natively():
    model = simam_node_model(18, 0.1, 1)
    for value in [*model.graph.input, *model.graph.output]:
        value.type.tensor_type.elem_type = TensorProto.FLOAT16
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 5)).astype(np.float16)
    y = session(model).run(None, {"X": x})[0]
    assert y.dtype == np.float16
    assert_matches_reference(y, np.maximum(x, 0), 0.1, 1, np.float16)


def test_in_place_capable_op_leaves_the_callers_input_alone():
    # X -> Relu -> SimAM: Relu's output has no other reader, so ONNX Runtime may run SimAM in place.
    s = session(simam_node_model(18, 1e-4, 1, dims=("n", 4, "h", "w")))
    x = np.random.default_rng(9).standard_normal((4, 4, 33, 17)).astype(np.float32)
    x_before = x.copy()
    y = s.run(None, {"X": x})[0]
    np.testing.assert_array_equal(x, x_before)  # the caller's input is never written
    assert_matches_reference(y, np.maximum(x, 0), 1e-4, 1, np.float32)


@pytest.mark.parametrize(
    ("attrs", "words"),
    [
        ({"e_lambda": -0.5}, "e_lambda must be a finite number > 0, got -0.5"),
        ({"e_lambda": float("nan")}, "e_lambda must be a finite number > 0"),
        ({"e_lambda": None}, "has no e_lambda attribute"),
        ({"e_lambda": 1}, "attribute e_lambda must be a FLOAT"),
        ({"unbiased": 2}, "unbiased must be 0 or 1, got 2"),
        ({"unbiased": 0.5}, "attribute unbiased must be an INT 0 or 1"),
    ],
)
def test_bad_attributes_are_refused_at_kernel_creation_naming_the_node(attrs, words):
    model = simam_node_model(18, **{"e_lambda": 1e-4, "unbiased": 1, **attrs})
    with pytest.raises(Exception, match="simam_0") as info:
        session(model)
    assert words in str(info.value)
    with pytest.raises(InputError, match="simam_0"):
        OnnxRuntimeRunner(model)


def test_missing_unbiased_defaults_to_the_paper():
    model = simam_node_model(18, 1e-4, None)
    x = np.random.default_rng(1).standard_normal((2, 4, 6, 5)).astype(np.float32)
    assert_matches_reference(session(model).run(None, {"X": x})[0], np.maximum(x, 0), 1e-4, 1, np.float32)


def test_run_time_errors_name_the_node_and_do_not_crash():
    runner = OnnxRuntimeRunner(simam_node_model(18, 1e-4, 1, dims=("n", 4, "h", "w")))
    with pytest.raises(InputError, match=r"simam_0.*1x1 plane"):
        runner.infer({"X": np.ones((2, 4, 1, 1), np.float32)})
    rank3 = simam_node_model(18, 1e-4, 1, dims=(4, 6, 5))
    with pytest.raises(InputError, match=r"simam_0.*rank 3"):
        OnnxRuntimeRunner(rank3).infer({"X": np.ones((4, 6, 5), np.float32)})
    empty = runner.infer({"X": np.ones((0, 4, 3, 3), np.float32)})["Y"]
    assert empty.shape == (0, 4, 3, 3)


def test_the_file_keeps_its_domain(tmp_path):
    path = tmp_path / "fused.onnx"
    onnx.save(simam_node_model(21, 1e-4, 1), path)
    before = path.read_bytes()
    runner = OnnxRuntimeRunner(path)
    x = np.random.default_rng(0).standard_normal((2, 4, 6, 5)).astype(np.float32)
    assert_matches_reference(runner.infer({"X": x})["Y"], np.maximum(x, 0), 1e-4, 1, np.float32)
    assert path.read_bytes() == before
    assert {n.domain for n in onnx.load(path).graph.node} == {"", "com.simam_deploy"}


def test_library_exports_only_the_registration_entry_point():
    lib = ctypes.CDLL(str(LIBRARY))
    assert hasattr(lib, "RegisterCustomOps")
    for hidden in ("simam_forward_cpu", "simam_last_error", "cudaMalloc"):
        assert not hasattr(lib, hidden), hidden


def test_library_path_sources(tmp_path, monkeypatch):
    assert simam_ort.library_path().name == "libsimam_ort_ops.so"
    monkeypatch.setenv(simam_ort.LIBRARY_ENV, str(tmp_path / "nope.so"))
    with pytest.raises(InputError, match="SIMAM_ORT_OPS"):
        simam_ort.library_path()
    with pytest.raises(InputError, match="does not exist"):
        simam_ort.library_path(tmp_path / "missing.so")


def test_python_refuses_an_old_onnxruntime(monkeypatch):
    monkeypatch.setattr(ort, "__version__", "1.20.1")
    with pytest.raises(MissingDependencyError, match=r">= 1\.21.*1\.20\.1"):
        simam_ort.session_options()


# ---- the library's own refusal of runtimes older than its API version ---------------------------
class _OrtApiBase(ctypes.Structure):
    _fields_ = [("GetApi", ctypes.c_void_p), ("GetVersionString", ctypes.c_void_p)]


_GET_API = ctypes.CFUNCTYPE(ctypes.c_size_t, ctypes.c_uint32)  # an integer address, 0 = NULL
_GET_VERSION = ctypes.CFUNCTYPE(ctypes.c_size_t)  # address of a NUL-terminated string


def _runtime_library() -> ctypes.CDLL:
    capi = Path(ort.__file__).parent / "capi"
    found = sorted(capi.glob("libonnxruntime.so*"))
    if not found:
        pytest.skip("this onnxruntime wheel has no libonnxruntime.so in onnxruntime/capi")
    return ctypes.CDLL(str(found[0]))


def test_library_refuses_a_runtime_older_than_its_api_version():
    """A stand-in OrtApiBase plays ONNX Runtime 1.20: it answers GetApi(v) for v <= 20 with the real
    runtime's table and NULL above, as 1.20 does. RegisterCustomOps must return an error status."""
    runtime = _runtime_library()
    runtime.OrtGetApiBase.restype = ctypes.POINTER(_OrtApiBase)
    real = runtime.OrtGetApiBase().contents
    real_get_api = _GET_API(real.GetApi)
    asked: list[int] = []

    def get_api(version: int) -> int:
        asked.append(version)
        return real_get_api(version) if version <= 20 else 0

    version_text = ctypes.create_string_buffer(b"1.20.0")
    get_api_cb = _GET_API(get_api)
    version_cb = _GET_VERSION(lambda: ctypes.addressof(version_text))
    base = _OrtApiBase(ctypes.cast(get_api_cb, ctypes.c_void_p), ctypes.cast(version_cb, ctypes.c_void_p))
    lib = ctypes.CDLL(str(LIBRARY))
    lib.RegisterCustomOps.restype = ctypes.c_void_p
    lib.RegisterCustomOps.argtypes = [ctypes.c_void_p, ctypes.POINTER(_OrtApiBase)]
    status = lib.RegisterCustomOps(None, ctypes.byref(base))
    assert status, "registration with an older runtime must fail"
    # OrtApi starts with CreateStatus, GetErrorCode, GetErrorMessage (stable since API 1).
    table = ctypes.cast(real_get_api(1), ctypes.POINTER(ctypes.c_void_p))
    message = ctypes.CFUNCTYPE(ctypes.c_char_p, ctypes.c_void_p)(table[2])(status).decode()
    assert "needs ONNX Runtime >= 1.21" in message and "1.20.0" in message
    assert asked[0] >= 21


def contract_nodes(model: onnx.ModelProto) -> int:
    return sum(n.op_type == "SimAM" and n.domain == "com.simam_deploy" for n in model.graph.node)


def test_fuse_numeric_check_does_not_need_the_library(monkeypatch):
    """fuse's numeric check runs only standard ops: it must not need the op library."""
    from simam_deploy.graph.fuse import fuse_simam
    from tests.onnx_corpus import hand_entries

    monkeypatch.setenv(simam_ort.LIBRARY_ENV, "/nonexistent/libsimam_ort_ops.so")
    entry = next(e for e in hand_entries((18,)) if e.name == "hand-paper-op18")
    fused, report = fuse_simam(entry.model)
    assert len(report.fused) == 1 and contract_nodes(fused) == 1


@pytest.mark.parametrize("threads", [1, 2])
def test_planes_split_over_onnx_runtimes_threads_match_reference(threads):
    """Big enough to be split into ranges on the session's intra-op pool (or run inline with 1)."""
    options = simam_ort.session_options()
    options.intra_op_num_threads = threads
    model = simam_node_model(18, 0.1, 0, dims=("n", 64, "h", "w"))
    s = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(threads).standard_normal((3, 64, 57, 43)).astype(np.float32)
    assert_matches_reference(s.run(None, {"X": x})[0], np.maximum(x, 0), 0.1, 0, np.float32)
