"""Initialisers: shapes, dtypes, the properties each promises, and name lookup."""
import numpy as np
import pytest

from npnet import init


def test_orthogonal_blocks_are_orthogonal(rng):
    w = init.orthogonal()((5, 15), rng, np.float64)
    for g in range(3):
        blk = w[:, g * 5:(g + 1) * 5]
        np.testing.assert_allclose(blk @ blk.T, np.eye(5), atol=1e-12)


def test_orthogonal_rectangular(rng):
    w = init.orthogonal()((6, 4), rng, np.float32)
    assert w.dtype == np.float32
    np.testing.assert_allclose(w.T @ w, np.eye(4), atol=1e-5)


def test_identity_and_errors(rng):
    np.testing.assert_array_equal(init.identity(0.5)((3, 6), rng, np.float64), 0.5 * np.hstack([np.eye(3)] * 2))
    with pytest.raises(ValueError, match=r"\(H, k\*H\)"):
        init.identity()((3, 4), rng, np.float64)


def test_glorot_and_uniform_bounds(rng):
    w = init.glorot_uniform()((30, 20), rng, np.float64)
    assert np.abs(w).max() <= np.sqrt(6 / 50)
    assert np.abs(w).max() > 0.8 * np.sqrt(6 / 50)
    u = init.uniform(0.1)((1000,), rng, np.float64)
    assert np.abs(u).max() <= 0.1


def test_chrono(rng):
    b_i, b_f = init.chrono_forget_bias(100, rng, 1000, np.float64)
    np.testing.assert_array_equal(b_i, -b_f)
    assert b_f.min() >= 0.0 and b_f.max() <= np.log(99)
    with pytest.raises(ValueError, match="t_max"):
        init.chrono_forget_bias(2, rng, 3, np.float64)


def test_get():
    assert init.get("zeros")((2,), None, np.float64).sum() == 0
    with pytest.raises(ValueError, match="unknown initialiser"):
        init.get("bogus")


def test_same_seed_same_weights():
    a = init.orthogonal()((4, 8), np.random.default_rng(3), np.float64)
    b = init.orthogonal()((4, 8), np.random.default_rng(3), np.float64)
    np.testing.assert_array_equal(a, b)
