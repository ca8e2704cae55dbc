import numpy as np
import pytest

from simam_deploy.errors import InputError
from simam_deploy.parity import compare_arrays, input_shapes_to_try


def test_identical_outputs_pass_with_zero_error():
    a = np.random.default_rng(0).standard_normal((4, 10)).astype(np.float32)
    s = compare_arrays(a, a.copy(), 1e-4, 1e-3)
    assert s.passed and s.max_abs == 0 and s.top1_agreement == 1.0 and s.frac_outside == 0


def test_one_element_outside_tolerance_fails_and_is_counted():
    ref = np.zeros((2, 50), np.float32)
    got = ref.copy()
    got[1, 7] = 1e-3  # > atol 1e-4 + rtol*0
    s = compare_arrays(got, ref, 1e-4, 1e-3)
    assert not s.passed and s.frac_outside == pytest.approx(1 / 100) and s.max_abs == pytest.approx(1e-3)
    assert s.top1_agreement == 0.5  # argmax of the second row moved


def test_nan_must_match_positions():
    ref = np.ones((1, 3, 2, 2), np.float32)
    got = ref.copy()
    got[0, 1, 0, 0] = np.nan
    s = compare_arrays(got, ref, 1e-4, 1e-3)
    assert not s.passed and s.nan_target == 1 and s.nan_reference == 0
    assert not compare_arrays(got, got.copy(), 1e-4, 1e-3).passed  # NaN fails unless allowed
    both = compare_arrays(got, got.copy(), 1e-4, 1e-3, allow_nonfinite=True)
    assert both.passed and both.nan_target == both.nan_reference == 1


def test_inf_sign_matters():
    ref = np.array([[np.inf, 1.0]], np.float32)
    assert compare_arrays(ref.copy(), ref, 0, 0, allow_nonfinite=True).passed
    assert not compare_arrays(np.array([[-np.inf, 1.0]], np.float32), ref, 0, 0, allow_nonfinite=True).passed


def test_shape_mismatch_is_an_input_error():
    with pytest.raises(InputError, match="shapes differ"):
        compare_arrays(np.zeros((1, 2)), np.zeros((2, 1)), 0, 0)


def test_dynamic_axes_get_other_sizes():
    assert input_shapes_to_try((1, 3, 32, 32), (1, 3, 32, 32)) == [(1, 3, 32, 32)]
    shapes = input_shapes_to_try(("batch", 3, "h", "w"), (1, 3, 224, 224))
    assert shapes == [(1, 3, 224, 224), (3, 3, 224, 224), (1, 3, 280, 168)]
