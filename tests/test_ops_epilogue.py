"""The fused epilogue from Python (scale/bias, residual, activation): the numpy entry and the torch op
on the CPU against a float64 numpy reference, their agreement, the gradient, and bad operands."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from simam_deploy import ops
from simam_deploy.errors import InputError
from simam_deploy.formula import simam_decomposed, simam_reference_numpy

pytestmark = pytest.mark.skipif(not ops.native_available(), reason="simam_deploy._C is not built")

SHAPE = (2, 5, 9, 11)


def _reference(x, scale, bias, residual, activation, e_lambda=1e-4, unbiased=True):
    z = simam_reference_numpy(x.astype(np.float64), e_lambda, unbiased)
    terms = np.abs(z)
    if scale is not None:
        s = scale.astype(np.float64).reshape(1, -1, 1, 1)
        b = bias.astype(np.float64).reshape(1, -1, 1, 1)
        z = z * s + b
        terms = terms * np.abs(s) + np.abs(b)
    if residual is not None:
        r = residual.astype(np.float64)
        z = z + r
        terms = terms + np.abs(r)
    if activation == "relu":
        z = np.maximum(z, 0.0)
    elif activation == "silu":
        z = z / (1.0 + np.exp(-z))
    return z, terms


def _operands(dtype, affine, residual, seed=0):
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(SHAPE) * 2 + 0.5).astype(dtype)
    s = rng.uniform(-1.5, 1.5, SHAPE[1]).astype(dtype) if affine else None
    b = rng.uniform(-1.0, 1.0, SHAPE[1]).astype(dtype) if affine else None
    r = rng.standard_normal(SHAPE).astype(dtype) if residual else None
    return x, s, b, r


def _dtypes():
    out = [np.float32, np.float16]
    try:
        import ml_dtypes

        out.append(ml_dtypes.bfloat16)
    except ImportError:
        pass
    return out


def _torch(a):
    if a is None:
        return None
    if a.dtype.name == "bfloat16":
        return torch.from_numpy(a.view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(a)


@pytest.mark.parametrize("dtype", _dtypes(), ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("activation", ops.ACTIVATIONS)
@pytest.mark.parametrize(("affine", "residual"), [(True, False), (False, True), (True, True), (False, False)])
def test_numpy_epilogue_matches_the_float64_reference(dtype, activation, affine, residual):
    x, s, b, r = _operands(dtype, affine, residual)
    got = ops.simam_numpy(x, 1e-4, True, scale=s, bias=b, residual=r, activation=activation)
    assert got.dtype == x.dtype and got.shape == x.shape
    want, terms = _reference(x, s, b, r, activation)
    got64 = got.astype(np.float64)
    if np.dtype(dtype) == np.float32:
        bound = 1e-5 * terms  # the kernel's fp32 contract, relative to the terms (cancellation)
    else:
        # 2 ULP of the type at the result, or 1e-6 of the terms where they cancel
        bound = np.maximum(2 * np.abs(np.spacing(want.astype(dtype)).astype(np.float64)), 1e-6 * terms)
    assert np.all(np.abs(got64 - want) <= bound), float(np.max(np.abs(got64 - want) / bound))


@pytest.mark.parametrize("dtype", _dtypes(), ids=lambda d: np.dtype(d).name)
def test_torch_op_equals_the_numpy_entry(dtype):
    x, s, b, r = _operands(dtype, True, True, seed=3)
    want = ops.simam_numpy(x, 0.1, False, scale=s, bias=b, residual=r, activation="silu")
    got = ops.simam(
        _torch(x), 0.1, False, scale=_torch(s), bias=_torch(b), residual=_torch(r), activation="silu"
    )
    assert torch.equal(got, _torch(want))


def test_without_epilogue_the_plain_op_runs():
    x = torch.randn(SHAPE)
    assert torch.equal(ops.simam(x), ops.simam(x, scale=None, bias=None, residual=None, activation="none"))
    y = ops.simam(x, scale=torch.ones(SHAPE[1]), bias=torch.zeros(SHAPE[1]))  # identity epilogue
    assert torch.equal(y, ops.simam(x))


def test_epilogue_gradient_matches_the_decomposed_formula():
    torch.manual_seed(0)
    leaves = [torch.randn(SHAPE), torch.rand(SHAPE[1]) + 0.5, torch.randn(SHAPE[1]), torch.randn(SHAPE)]
    fused = [t.clone().requires_grad_(True) for t in leaves]
    plain = [t.clone().double().requires_grad_(True) for t in leaves]
    weights = torch.randn(SHAPE)
    (
        ops.simam(fused[0], scale=fused[1], bias=fused[2], residual=fused[3], activation="silu") * weights
    ).sum().backward()
    z = simam_decomposed(plain[0], 1e-4, True) * plain[1].view(1, -1, 1, 1) + plain[2].view(1, -1, 1, 1)
    (torch.nn.functional.silu(z + plain[3]) * weights.double()).sum().backward()
    for f, p in zip(fused, plain, strict=True):
        assert f.grad is not None and f.grad.shape == f.shape
        torch.testing.assert_close(f.grad.double(), p.grad, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"scale": np.ones(5, np.float32)}, "scale and bias together, got only scale"),
        ({"bias": np.ones(5, np.float32)}, "got only bias"),
        ({"scale": np.ones(4, np.float32), "bias": np.ones(4, np.float32)}, "C=5 elements"),
        ({"residual": np.ones((2, 5, 9, 10), np.float32)}, "residual must have x's shape"),
        ({"residual": np.ones(SHAPE, np.float16)}, "residual is float16 but x is float32"),
        ({"activation": "gelu"}, "unknown SimAM epilogue activation 'gelu'"),
        ({"residual": [[1.0]]}, "residual must be a numpy array"),
    ],
)
def test_bad_epilogue_operands_raise_input_error(kwargs, words):
    x = np.zeros(SHAPE, np.float32)
    with pytest.raises(InputError, match=words):
        ops.simam_numpy(x, **kwargs)
    torch_kwargs = {k: _torch(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    if all(isinstance(v, (torch.Tensor, str)) for v in torch_kwargs.values()):
        with pytest.raises(InputError, match=words.replace("numpy array", "tensor")):
            ops.simam(torch.from_numpy(x), **torch_kwargs)


def test_binding_refuses_an_unknown_layout_code():
    x = np.zeros(SHAPE, np.float32)
    with pytest.raises(ValueError, match="unknown layout code 7"):
        ops._native().run_cpu(x.ctypes.data, x.ctypes.data, *SHAPE, 0, 1e-4, True, layout=7)


def test_binding_runs_nhwc_with_a_channel_stride():
    # The C API's NHWC path through the binding: channels padded to 8, the padding untouched.
    x, s, b, r = _operands(np.float32, True, True, seed=5)
    n, c, h, w = SHAPE
    padded = np.full((n, h, w, 8), np.nan, np.float32)
    padded[..., :c] = x.transpose(0, 2, 3, 1)
    res = np.full_like(padded, np.nan)
    res[..., :c] = r.transpose(0, 2, 3, 1)
    out = np.full_like(padded, 7.0)
    ops._native().run_cpu(
        padded.ctypes.data, out.ctypes.data, n, c, h, w, 0, 1e-4, True,
        scale=s.ctypes.data, bias=b.ctypes.data, residual=res.ctypes.data, activation=1,
        layout=1, channel_stride=8,
    )  # fmt: skip
    assert np.all(out[..., c:] == 7.0)
    want = ops.simam_numpy(x, 1e-4, True, scale=s, bias=b, residual=r, activation="relu")
    np.testing.assert_allclose(out[..., :c].transpose(0, 3, 1, 2), want, rtol=1e-5, atol=1e-6)
