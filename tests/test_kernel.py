"""The fused CPU kernel against the float64 reference, and the C API's refusals.

Accuracy contract (what "fp32 rel. error <= 1e-5" and "within 2 ULP" mean here):
  * fp32: every element satisfies |y - ref| <= 1e-5 * |ref|, where ref is
    ``simam_reference`` (float64) of the same fp32 input. Per element, not relative to the max:
    y = x * s with s in (0.62, 1], so a relative bound is meaningful even where x is tiny.
  * fp16 / bf16: every element is at most 2 units in the last place of the output type away
    from the float64 reference rounded to that type (ULP distance = difference of the
    sign-magnitude bit patterns mapped to ordered integers).
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simam_deploy import ops
from simam_deploy.nn import simam_decomposed, simam_reference

pytestmark = pytest.mark.skipif(not ops.native_available(), reason="simam_deploy._C is not built")

FP32_REL_TOL = 1e-5
MAX_ULPS = 2


def ordered_bits(t: torch.Tensor) -> torch.Tensor:
    """16-bit floats as integers whose difference counts representable values between them."""
    bits = t.contiguous().view(torch.int16).to(torch.int32)
    return torch.where(bits < 0, -(bits & 0x7FFF), bits)


def ulp_distance(y: torch.Tensor, ref64: torch.Tensor) -> torch.Tensor:
    return (ordered_bits(y) - ordered_bits(ref64.to(y.dtype))).abs()


def assert_matches_reference(y: torch.Tensor, x: torch.Tensor, e_lambda: float, unbiased: bool) -> None:
    ref = simam_reference(x, e_lambda, unbiased)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert torch.isfinite(ref).all(), "test data must have a finite reference"
    if x.dtype == torch.float32:
        err = (y.double() - ref).abs()
        bound = FP32_REL_TOL * ref.abs()
        worst = (err / ref.abs().clamp_min(1e-300)).max().item()
        assert bool((err <= bound).all()), f"fp32 relative error {worst:.3g} > {FP32_REL_TOL}"
    else:
        ulps = ulp_distance(y, ref)
        assert int(ulps.max()) <= MAX_ULPS, f"{x.dtype}: {int(ulps.max())} ULP from the rounded reference"


def make_input(shape, dtype, mean, std, seed) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * std + mean).to(dtype)


# ---- fixed shapes: every size class, both variance modes, all dtypes --------------------------
SHAPES = [(1, 1, 1, 2), (2, 3, 7, 7), (1, 4, 14, 14), (2, 2, 28, 28), (1, 3, 56, 56), (1, 2, 113, 97)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_fixed_shapes_match_reference(shape, unbiased, dtype):
    x = make_input(shape, dtype, mean=0.5, std=2.0, seed=hash(shape) % 1000)
    assert_matches_reference(ops.simam(x, 1e-4, unbiased), x, 1e-4, unbiased)


def test_single_huge_plane_matches_reference():
    x = make_input((1, 1, 1024, 1024), torch.float32, mean=-3.0, std=5.0, seed=7)
    for unbiased in (True, False):
        assert_matches_reference(ops.simam(x, 0.1, unbiased), x, 0.1, unbiased)


def test_mean_much_larger_than_std_stays_accurate():
    """|mean| / std = 1e5: a one-pass or fp32-mean-only algorithm loses ~3 digits here."""
    x = make_input((2, 3, 56, 56), torch.float32, mean=1e4, std=1e-1, seed=3)
    for unbiased in (True, False):
        assert_matches_reference(ops.simam(x, 1e-4, unbiased), x, 1e-4, unbiased)
    decomposed_err = (
        (simam_decomposed(x, 1e-4).double() - simam_reference(x)).abs() / simam_reference(x).abs()
    ).max()
    assert decomposed_err > FP32_REL_TOL  # the test data really is hard


# ---- random shapes, dtypes, scales, both modes -------------------------------------------------
SCALES = [(0.0, 1.0), (1.0, 1e-1), (-50.0, 30.0), (1e4, 1e-1), (0.0, 300.0)]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 4),
    h=st.integers(1, 40),
    w=st.integers(1, 40),
    dtype=st.sampled_from([torch.float32, torch.float16, torch.bfloat16]),
    scale=st.sampled_from(SCALES),
    unbiased=st.booleans(),
    e_lambda=st.sampled_from([1e-4, 0.1, 3.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_random_inputs_match_reference(n, c, h, w, dtype, scale, unbiased, e_lambda, seed):
    if unbiased and h * w == 1:
        unbiased = False  # the 0/0 case is an error, tested below
    mean, std = scale
    x = make_input((n, c, h, w), dtype, mean, std, seed)
    assert_matches_reference(ops.simam(x, e_lambda, unbiased), x, e_lambda, unbiased)


def test_fp16_where_the_decomposed_graph_overflows():
    """(x - mean)^2 > 65504 and its plane sum overflow fp16: the decomposed graph returns inf/nan,
    the fused kernel (fp32 statistics) stays within 2 ULP."""
    x = make_input((2, 4, 56, 56), torch.float16, mean=0.0, std=400.0, seed=11)
    decomposed = simam_decomposed(x, 1e-4)
    assert not torch.isfinite(decomposed).all()
    fused = ops.simam(x, 1e-4)
    assert torch.isfinite(fused).all()
    assert_matches_reference(fused, x, 1e-4, True)


def test_inplace_equals_out_of_place():
    from simam_deploy import _C

    x = make_input((2, 3, 20, 20), torch.float32, 1.0, 2.0, seed=5)
    expected = ops.simam(x)
    _C.forward_cpu(x.data_ptr(), x.data_ptr(), 2, 3, 20, 20, _C.FLOAT32, 1e-4, True)
    assert torch.equal(x, expected)


# ---- NaN / Inf: propagate per plane, never leak into neighbours --------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
def test_non_finite_poisons_only_its_plane(bad, dtype):
    x = make_input((2, 3, 9, 11), dtype, 0.0, 1.0, seed=2)
    clean = ops.simam(x)
    x[1, 2, 4, 5] = bad
    y = ops.simam(x)
    ref = simam_reference(x)
    assert torch.isnan(ref[1, 2]).all()  # what the reference does: the whole plane is NaN
    assert torch.isnan(y[1, 2]).all()
    mask = torch.ones(2, 3, dtype=torch.bool)
    mask[1, 2] = False
    assert torch.equal(y[mask], clean[mask])


# ---- the C API's refusals, as the binding raises them ------------------------------------------
def _call_cpu(x_ptr=None, y_ptr=None, shape=(1, 1, 2, 2), dtype=0, e_lambda=1e-4, unbiased=True):
    from simam_deploy import _C

    buf = torch.zeros(64)
    ptr = buf.data_ptr()
    _C.forward_cpu(
        ptr if x_ptr is None else x_ptr, ptr if y_ptr is None else y_ptr, *shape, dtype, e_lambda, unbiased
    )


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"x_ptr": 0}, ValueError, "non-null"),
        ({"y_ptr": 0}, ValueError, "non-null"),
        ({"shape": (0, 1, 2, 2)}, ValueError, "must be > 0"),
        ({"shape": (1, -1, 2, 2)}, ValueError, "must be > 0"),
        ({"shape": (1, 1, 0, 2)}, ValueError, "must be > 0"),
        ({"shape": (1 << 40, 1 << 20, 1 << 10, 2)}, ValueError, "overflows"),
        ({"dtype": 7}, TypeError, "unsupported dtype"),
        ({"e_lambda": 0.0}, ValueError, "e_lambda"),
        ({"e_lambda": -1.0}, ValueError, "e_lambda"),
        ({"e_lambda": float("nan")}, ValueError, "e_lambda"),
        ({"e_lambda": float("inf")}, ValueError, "e_lambda"),
        ({"shape": (1, 1, 1, 1)}, ValueError, "H*W-1 = 0"),
    ],
)
def test_c_api_rejects_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words.replace("*", r"\*")):
        _call_cpu(**kwargs)


def test_1x1_plane_with_population_variance_is_defined():
    x = torch.randn(3, 2, 1, 1)
    expected = x * torch.sigmoid(torch.tensor(0.5))
    torch.testing.assert_close(ops.simam(x, 1e-4, unbiased=False), expected, rtol=1e-6, atol=0)


@pytest.mark.skipif(torch.cuda.is_available(), reason="host pointers would reach a real GPU kernel")
def test_cuda_entry_without_a_driver_raises_with_the_cuda_text():
    """On a machine without a GPU driver, the CUDA path reports CUDA's own error, never crashes."""
    from simam_deploy import _C

    buf = torch.zeros(16)
    if not _C.has_cuda():
        with pytest.raises(RuntimeError, match="no CUDA kernels"):
            _C.forward_cuda(buf.data_ptr(), buf.data_ptr(), 1, 1, 4, 4, 0, 1e-4, True)
        return
    with pytest.raises(RuntimeError, match="CUDA error cuda"):
        _C.forward_cuda(buf.data_ptr(), buf.data_ptr(), 1, 1, 4, 4, 0, 1e-4, True)


def test_workspace_size_is_zero_for_on_chip_planes_and_scales_for_huge_ones():
    from simam_deploy import _C

    assert _C.cuda_workspace_size(32, 2048, 7, 7, 0) == 0
    assert _C.cuda_workspace_size(1, 1, 128, 128, 0) == 0  # 16384 elements: still on chip
    # 1024x1024 = 64 chunks of 16384, one float4 each
    assert _C.cuda_workspace_size(2, 3, 1024, 1024, 1) == 2 * 3 * 64 * 16


def test_workspace_size_is_zero_for_shapes_past_64_bit_indexing():
    """Found by make fuzz: these products overflowed int64 (undefined behaviour) instead of
    returning 0 for a shape the launch refuses."""
    from simam_deploy import _C

    # N*C*chunks wrapped to a huge non-zero size here before the fix
    assert _C.cuda_workspace_size(3, 5 * 10**17, 2**15, 2**15, 0) == 0
    assert _C.cuda_workspace_size(2**40, 2**20, 2**10, 4, 0) == 0
    assert _C.cuda_workspace_size(1, 1, 2**15, 2**15, 0) > 0  # big but valid: still sized
