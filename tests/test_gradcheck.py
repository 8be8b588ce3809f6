"""The gradient checker itself: its error measure, and that it catches a wrong gradient."""
import numpy as np
import pytest

import npnet
from npnet.gradcheck import rel_error


def test_rel_error_zero_over_zero_is_zero():
    assert rel_error(np.zeros(3), np.zeros(3)) == 0.0


def test_rel_error_scale_invariant_and_symmetric():
    a = np.array([1.0, -2.0, 3.0])
    n = a + np.array([0.0, 1e-3, 0.0])
    assert rel_error(a, n) == pytest.approx(1e-3 / 3.0)
    assert rel_error(1e-20 * a, 1e-20 * n) == pytest.approx(1e-3 / 3.0)
    assert rel_error(n, a) == rel_error(a, n)


def test_rel_error_shape_mismatch():
    with pytest.raises(ValueError, match="shape"):
        rel_error(np.zeros(3), np.zeros(4))


class PlantedBug(npnet.BasicRNNCell):
    """A tanh RNN whose recurrent-weight gradient forgets the last step's contribution."""

    def bprop(self, dout, dstate=None):
        dx, dh0 = super().bprop(dout, dstate)
        return dx, dh0 * 1.0001  # wrong initial-state gradient by 0.01%


def test_checker_catches_planted_state_bug(rng):
    cell = PlantedBug(3, 4, rng=0)
    errors = npnet.gradcheck(cell, rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 4)))
    assert errors["state 0"] > 5e-5
    assert errors["param W_h"] < 1e-6


def test_checker_catches_missing_term(rng, monkeypatch):
    cell = npnet.BasicRNNCell(3, 4, rng=0)
    real = cell.bprop

    def wrong(dout, dstate=None):
        before = cell.grads["W_h"].copy()
        out = real(dout, dstate)
        cell.grads["W_h"][:] = before + 0.9 * (cell.grads["W_h"] - before)  # drop 10% of dW_h
        return out

    monkeypatch.setattr(cell, "bprop", wrong)
    errors = npnet.gradcheck(cell, rng.standard_normal((2, 5, 3)))
    assert errors["param W_h"] > 1e-2
    assert errors["param W_x"] < 1e-6


def test_checker_works_on_linear_with_leading_axes(rng):
    layer = npnet.LinearLayer(3, 2, rng=0)
    errors = npnet.gradcheck(layer, rng.standard_normal((2, 4, 5, 3)))
    assert max(errors.values()) < 1e-7


def test_checker_refuses_float32():
    with pytest.raises(ValueError, match="float64"):
        npnet.gradcheck(npnet.LinearLayer(2, 2, dtype=np.float32), np.zeros((1, 2)))
