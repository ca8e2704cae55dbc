import math

import pytest
import torch

from simam_deploy.errors import InputError
from simam_deploy.nn import SimAM, find_simam_modules, set_simam_fused, simam_decomposed, simam_reference


def _paper_formula(x: torch.Tensor, lam: float) -> torch.Tensor:
    # Element-by-element statement of the paper, independent of the vectorised implementation.
    out = torch.empty_like(x, dtype=torch.float64)
    n, c, h, w = x.shape
    for i in range(n):
        for j in range(c):
            plane = [float(v) for v in x[i, j].flatten()]
            mean = sum(plane) / len(plane)
            var = sum((v - mean) ** 2 for v in plane) / (len(plane) - 1)
            vals = [v * (1 / (1 + math.exp(-((v - mean) ** 2 / (4 * (var + lam)) + 0.5)))) for v in plane]
            out[i, j] = torch.tensor(vals, dtype=torch.float64).reshape(h, w)
    return out


def test_reference_matches_paper_formula():
    x = torch.randn(2, 3, 4, 5)
    torch.testing.assert_close(simam_reference(x, 1e-4), _paper_formula(x, 1e-4), rtol=1e-12, atol=1e-12)


def test_module_matches_reference_fp32_both_variances():
    x = torch.randn(2, 8, 7, 9) * 3 + 1
    for unbiased in (True, False):
        y = SimAM(0.1, unbiased=unbiased)(x)
        ref = simam_reference(x, 0.1, unbiased)
        assert y.dtype == torch.float32
        assert torch.allclose(y.double(), ref, rtol=1e-5, atol=1e-6)
    # The two variance modes really differ.
    assert not torch.allclose(simam_reference(x, 1e-4, True), simam_reference(x, 1e-4, False))


def test_decomposed_is_the_module_path():
    x = torch.randn(1, 4, 6, 6)
    assert torch.equal(SimAM(1e-4)(x), simam_decomposed(x, 1e-4))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_lambda_is_refused(bad):
    with pytest.raises(InputError, match="e_lambda"):
        SimAM(bad)


def test_reference_refuses_non_4d():
    with pytest.raises(InputError, match="4-D"):
        simam_reference(torch.randn(3, 4, 5))


def test_find_and_switch_fused():
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), SimAM(), torch.nn.Sequential(SimAM(0.1)))
    names = [n for n, _ in find_simam_modules(net)]
    assert names == ["1", "2.0"]
    assert set_simam_fused(net, True) == 2
    assert all(m.fused for _, m in find_simam_modules(net))
