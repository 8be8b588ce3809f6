"""Tests for npnet.clip: global-norm clipping (exact threshold, untouched below it, no overflow),
value clipping, and the non-finite check's messages."""
import math

import numpy as np
import pytest

import npnet
from npnet.training.clip import NonFiniteError, check_finite, clip_grad_norm, clip_grad_value, global_norm


def grads_345(dtype=np.float64):
    # ||[3]||^2 + ||[[4, 0], [0, 12]]||^2 = 9 + 16 + 144 = 169 -> norm 13
    return {"a": np.array([3.0], dtype), "b": np.array([[4.0, 0.0], [0.0, 12.0]], dtype)}


def test_returns_pre_clip_norm_and_scales_to_threshold():
    g = grads_345()
    ids = {k: id(v) for k, v in g.items()}
    norm = clip_grad_norm(g, 6.5)
    assert norm == 13.0
    np.testing.assert_allclose(g["a"], [1.5], rtol=1e-15)            # scaled by 6.5 / 13 = 0.5
    np.testing.assert_allclose(g["b"], [[2.0, 0.0], [0.0, 6.0]], rtol=1e-15)
    assert {k: id(v) for k, v in g.items()} == ids                    # in place
    assert math.isclose(global_norm(g), 6.5, rel_tol=1e-15)


def test_small_grads_bit_identical():
    rng = np.random.default_rng(0)
    g = {"w": rng.standard_normal((5, 7)) * 1e-3, "b": rng.standard_normal(7) * 1e-3}
    before = {k: v.copy() for k, v in g.items()}
    norm = clip_grad_norm(g, 1.0)
    assert 0 < norm < 1.0
    for k in g:
        assert g[k].tobytes() == before[k].tobytes()
    g = grads_345()
    assert clip_grad_norm(g, 13.0) == 13.0                             # equal to threshold: no-op
    np.testing.assert_array_equal(g["b"], [[4.0, 0.0], [0.0, 12.0]])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_random_grads_scaled_exactly(dtype):
    rng = np.random.default_rng(1)
    g = {"W_x": rng.standard_normal((4, 12)).astype(dtype) * 10,
         "W_h": rng.standard_normal((3, 12)).astype(dtype) * 10,
         "b": rng.standard_normal(12).astype(dtype)}
    expected = math.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in g.values()))
    direction = {k: v.astype(np.float64) / expected for k, v in g.items()}
    norm = clip_grad_norm(g, 2.0)
    assert math.isclose(norm, expected, rel_tol=1e-12)
    tol = 1e-6 if dtype == np.float32 else 1e-14
    new = math.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in g.values()))
    assert math.isclose(new, 2.0, rel_tol=tol)
    for k, v in g.items():
        assert v.dtype == dtype
        np.testing.assert_allclose(v, 2.0 * direction[k], rtol=tol * 10, atol=tol)


def test_huge_float32_grads_do_not_overflow():
    # Squaring 1e20 in float32 overflows (max ~3.4e38); the norm must still be exact.
    g = {"a": np.full((10, 10), 1e20, np.float32), "b": np.full(3, -1e20, np.float32)}
    norm = clip_grad_norm(g, 1.0)                                      # warnings are errors here
    assert math.isclose(norm, math.sqrt(103) * float(np.float32(1e20)), rel_tol=1e-12)
    assert math.isclose(global_norm(g), 1.0, rel_tol=1e-6)
    assert np.isfinite(g["a"]).all() and g["a"].dtype == np.float32


def test_huge_and_tiny_float64_grads():
    g = {"a": np.array([3e200, 4e200])}
    assert math.isclose(clip_grad_norm(g, 1.0), 5e200, rel_tol=1e-15)
    np.testing.assert_allclose(g["a"], [0.6, 0.8], rtol=1e-15)
    g = {"a": np.array([3e-200]), "b": np.array([4e-200])}
    assert math.isclose(global_norm(g), 5e-200, rel_tol=1e-15)


def test_zero_and_empty_grads():
    g = {"a": np.zeros(3), "b": np.zeros((0, 4))}
    assert clip_grad_norm(g, 1.0) == 0.0
    np.testing.assert_array_equal(g["a"], 0.0)
    assert clip_grad_norm({}, 1.0) == 0.0


def test_non_finite_norm_leaves_grads_alone():
    g = {"a": np.array([1.0, np.inf]), "b": np.array([5.0])}
    assert clip_grad_norm(g, 1.0) == math.inf
    assert g["b"][0] == 5.0
    g = {"a": np.array([1.0, np.nan]), "b": np.array([np.inf])}
    assert math.isnan(clip_grad_norm(g, 1.0))


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan")])
def test_max_norm_validation(bad):
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(grads_345(), bad)
    with pytest.raises(ValueError, match="clip"):
        clip_grad_value(grads_345(), bad)


def test_grads_validation():
    with pytest.raises(ValueError, match="dict"):
        clip_grad_norm([np.zeros(2)], 1.0)
    with pytest.raises(ValueError, match="'w' must be a float ndarray"):
        clip_grad_norm({"w": [1.0, 2.0]}, 1.0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_clip_grad_value(dtype):
    g = {"a": np.array([-3.0, -0.5, 0.0, 0.25, 7.0], dtype), "b": np.array([[2.0, -2.0]], dtype)}
    ids = {k: id(v) for k, v in g.items()}
    assert clip_grad_value(g, 1.0) is None
    np.testing.assert_array_equal(g["a"], np.array([-1.0, -0.5, 0.0, 0.25, 1.0], dtype))
    np.testing.assert_array_equal(g["b"], np.array([[1.0, -1.0]], dtype))
    assert all(v.dtype == dtype for v in g.values())
    assert {k: id(v) for k, v in g.items()} == ids


def test_check_finite_passes_on_finite():
    assert check_finite(1.5, grads_345(), step=3) is None
    assert check_finite(np.float32(2.0), grads_345(np.float32), step=0) is None
    assert check_finite(None, grads_345(), step=0) is None


@pytest.mark.parametrize("loss", [float("nan"), float("inf"), np.array(-np.inf)])
def test_check_finite_names_the_loss(loss):
    with pytest.raises(NonFiniteError, match=r"loss is (nan|inf|-inf) at step 17"):
        check_finite(loss, grads_345(), step=17)


def test_check_finite_names_first_bad_parameter():
    g = {"cells.0.W_x": np.ones((2, 2)), "cells.0.W_h": np.array([[np.nan, np.inf], [np.nan, 0]]),
         "out.W": np.array([np.inf])}
    with pytest.raises(NonFiniteError) as info:
        check_finite(0.3, g, step=42)
    msg = str(info.value)
    assert "'cells.0.W_h'" in msg and "step 42" in msg and "2 NaN, 1 inf of 4" in msg
    assert "out.W" not in msg


def test_non_finite_error_hierarchy():
    assert issubclass(NonFiniteError, npnet.NpnetError)
    assert issubclass(NonFiniteError, ValueError)
    with pytest.raises(ValueError, match="scalar"):
        check_finite(np.array([1.0, 2.0]), {}, step=0)
