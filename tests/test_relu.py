"""npnet.ReLU: values by hand, float64 gradient check, dtype kept, inputs untouched, errors."""
import numpy as np
import pytest

import npnet
from npnet.layer import NotForwardedError, ShapeError


def test_values_and_gradient_by_hand():
    relu = npnet.ReLU()
    x = np.array([[-2.0, -0.0, 0.0, 0.5, 3.0]])
    y = relu.fprop(x)
    np.testing.assert_array_equal(y, [[0.0, 0.0, 0.0, 0.5, 3.0]])
    dx = relu.bprop(np.array([[1.0, 2.0, 3.0, 4.0, 5.0]]))
    np.testing.assert_array_equal(dx, [[0.0, 0.0, 0.0, 4.0, 5.0]])   # 0 at x = 0, as PyTorch


@pytest.mark.parametrize("shape", [(1,), (3, 4), (2, 3, 4), (2, 1, 3, 5, 5)])
def test_gradcheck_float64_any_shape(rng, shape):
    x = rng.standard_normal(shape)
    x[np.abs(x) < 1e-3] = 0.5                      # keep the finite differences off the kink
    errs = npnet.gradcheck(npnet.ReLU(), x)
    assert errs.keys() == {"input x"} and errs["input x"] < 1e-8, errs


def test_float32_stays_float32_and_inputs_are_not_modified(rng):
    relu = npnet.ReLU(dtype=np.float32)
    x = rng.standard_normal((4, 5)).astype(np.float32)
    x0 = x.copy()
    y = relu.fprop(x)
    dy = rng.standard_normal((4, 5)).astype(np.float32)
    dy0 = dy.copy()
    dx = relu.bprop(dy)
    assert y.dtype == np.float32 and dx.dtype == np.float32
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)
    np.testing.assert_array_equal(relu.forward(x), y)
    assert relu.params == {} and relu.get_config() == {"dtype": "float32"}


def test_errors(rng):
    relu = npnet.ReLU()
    with pytest.raises(NotForwardedError):
        relu.bprop(np.ones(3))
    relu.fprop(np.ones((2, 3)))
    assert relu.has_cache and relu.cache_nbytes() == 6        # one bool per element
    with pytest.raises(ShapeError, match=r"expects dy of shape \(2, 3\)"):
        relu.bprop(np.ones((3, 2)))
    with pytest.raises(ShapeError, match="NaN"):
        relu.fprop(np.array([1.0, np.nan]))
