"""The CUDA kernels against the float64 reference (run with: pytest -m gpu tests/test_kernel_gpu.py).

Covers every launch path of plugins/simam/simam_cuda.cu: warp per plane (P <= 256), block per
plane with 128-bit and scalar loads (P <= 16384), several blocks per plane with workspace
(Chan merge) and the no-workspace sweep fallback (P > 16384); in-place, unaligned pointers,
non-default streams, NaN isolation, grids beyond 2^20 planes and more than 2^31 elements.
Accuracy contract as in tests/test_kernel.py.
"""

from __future__ import annotations

import pytest
import torch

from simam_deploy import ops
from simam_deploy.nn import simam_reference
from tests.test_kernel import assert_matches_reference, make_input

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(), reason="needs an NVIDIA GPU (torch.cuda.is_available() is False)"
    ),
    pytest.mark.skipif(
        not ops.has_cuda(), reason="simam_deploy._C was built without the CUDA kernels (no nvcc)"
    ),
]

DTYPES = [torch.float32, torch.float16, torch.bfloat16]
# plane sizes chosen to hit each path: 2, 32 | 49, 196, 256 (warp) | 289, 784, 3136, 11303, 16384
# (block) | 16641, 1048576 (several blocks per plane)
SHAPES = [
    (3, 5, 1, 2),
    (2, 3, 4, 8),
    (4, 16, 7, 7),
    (2, 8, 14, 14),
    (2, 4, 16, 16),
    (2, 4, 17, 17),
    (2, 8, 28, 28),
    (2, 4, 56, 56),
    (1, 3, 113, 97),
    (1, 2, 128, 128),
    (1, 2, 129, 129),
    (1, 1, 1024, 1024),
]


def cuda_simam(x_cpu: torch.Tensor, e_lambda: float, unbiased: bool) -> torch.Tensor:
    y = ops.simam(x_cpu.cuda(), e_lambda, unbiased)
    torch.cuda.synchronize()
    return y.cpu()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("unbiased", [True, False])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_cuda_matches_reference(shape, unbiased, dtype):
    x = make_input(shape, dtype, mean=0.5, std=2.0, seed=sum(shape))
    assert_matches_reference(cuda_simam(x, 1e-4, unbiased), x, 1e-4, unbiased)


@pytest.mark.parametrize("shape", [(2, 3, 56, 56), (1, 2, 7, 7), (1, 1, 300, 300)], ids=str)
def test_cuda_mean_much_larger_than_std(shape):
    x = make_input(shape, torch.float32, mean=1e4, std=1e-1, seed=3)
    assert_matches_reference(cuda_simam(x, 1e-4, True), x, 1e-4, True)


def test_cuda_fp16_where_the_decomposed_graph_overflows():
    x = make_input((2, 4, 56, 56), torch.float16, mean=0.0, std=400.0, seed=11)
    assert_matches_reference(cuda_simam(x, 1e-4, True), x, 1e-4, True)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("hw", [(129, 129), (1024, 1024), (56, 56)], ids=str)
def test_no_workspace_fallback_and_inplace(hw, dtype):
    """The sweep kernel (no scratch) and in-place operation (y == x) give the reference too."""
    from simam_deploy import _C

    shape = (1, 2, *hw)
    x = make_input(shape, dtype, mean=-1.0, std=3.0, seed=9)
    d = x.cuda()
    _C.forward_cuda(d.data_ptr(), d.data_ptr(), *shape, ops.DTYPE_CODES[dtype], 0.1, True,
                    torch.cuda.current_stream().cuda_stream, 0, 0)  # fmt: skip
    torch.cuda.synchronize()
    assert_matches_reference(d.cpu(), x, 0.1, True)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_unaligned_pointers_use_scalar_loads(dtype):
    shape = (2, 3, 28, 28)
    x = make_input(shape, dtype, 0.0, 1.0, seed=4)
    storage = torch.zeros(x.numel() + 1, dtype=dtype, device="cuda")
    view = storage[1:].view(shape)  # data_ptr is 2 or 4 bytes past a 16-byte boundary
    view.copy_(x.cuda())
    assert view.data_ptr() % 16 != 0
    y = ops.simam(view)
    torch.cuda.synchronize()
    assert_matches_reference(y.cpu(), x, 1e-4, True)


def test_runs_on_the_current_stream():
    x = make_input((4, 64, 28, 28), torch.float16, 0.0, 1.0, seed=8)
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        d = x.cuda(non_blocking=False)
        y = ops.simam(d)
    stream.synchronize()
    assert_matches_reference(y.cpu(), x, 1e-4, True)


@pytest.mark.parametrize("hw", [(7, 7), (28, 28), (1024, 1024)], ids=str)
def test_nan_poisons_only_its_plane(hw):
    x = make_input((1, 3, *hw), torch.float32, 0.0, 1.0, seed=6)
    clean = cuda_simam(x, 1e-4, True)
    x[0, 1, 3, 4] = float("nan")
    y = cuda_simam(x, 1e-4, True)
    assert torch.isnan(y[0, 1]).all()
    assert torch.equal(y[0, [0, 2]], clean[0, [0, 2]])


def _check_some_planes(x: torch.Tensor, y: torch.Tensor, planes: list[int]) -> None:
    n, c, h, w = x.shape
    xf, yf = x.view(n * c, 1, h, w), y.view(n * c, 1, h, w)
    for p in planes:
        assert_matches_reference(yf[p : p + 1].cpu(), xf[p : p + 1].cpu(), 1e-4, True)


def test_millions_of_planes_stride_past_the_grid_cap():
    """2.1 million 17x17 planes: more blocks than the 2^20 grid cap, so blocks loop."""
    x = torch.randn(3, 700_000, 17, 17, device="cuda", dtype=torch.float16)
    y = ops.simam(x)
    torch.cuda.synchronize()
    _check_some_planes(x, y, [0, 1, 1_048_576, 1_048_577, 2_099_999])


def test_more_than_2_to_the_31_elements():
    """64-bit indexing: the last planes start beyond element 2^31."""
    c = (2**31) // 784 + 64
    x = torch.randn(1, c, 28, 28, device="cuda", dtype=torch.float16)
    assert x.numel() > 2**31
    y = ops.simam(x)
    torch.cuda.synchronize()
    _check_some_planes(x, y, [0, c // 2, c - 2, c - 1])
    del x, y
    torch.cuda.empty_cache()


def test_compiled_model_on_cuda_matches_eager():
    from torch import nn

    from simam_deploy.nn import SimAM

    model = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), SimAM(fused=True)).cuda().eval()
    x = torch.randn(4, 3, 32, 32, device="cuda")
    with torch.no_grad():
        eager = model(x)
        compiled = torch.compile(model, fullgraph=True)(x)
    torch.testing.assert_close(compiled, eager)
    ref = simam_reference(model[0](x).detach().cpu())
    assert ((eager.double().cpu() - ref).abs() <= 1e-5 * ref.abs()).all()
