"""LinearLayer: gradients on any leading shape, accumulation, dtypes and errors."""
import numpy as np
import pytest

import npnet


@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 3), (1, 1, 3), (2, 2, 2, 3)])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck(shape, bias, rng):
    layer = npnet.LinearLayer(3, 2, bias=bias, rng=0)
    errors = npnet.gradcheck(layer, rng.standard_normal(shape))
    assert max(errors.values()) < 1e-6, errors
    assert ("param b" in errors) == bias


def test_forward_values(rng):
    layer = npnet.LinearLayer(3, 2, rng=0)
    x = rng.standard_normal((4, 3))
    np.testing.assert_allclose(layer.fprop(x), x @ layer.params["W"] + layer.params["b"])


def test_float32_and_untouched_dy(rng):
    layer = npnet.LinearLayer(3, 2, dtype=np.float32, rng=0)
    y = layer.fprop(rng.standard_normal((2, 5, 3)).astype(np.float32))
    dy = np.ones_like(y)
    dx = layer.bprop(dy)
    assert y.dtype == dx.dtype == layer.grads["W"].dtype == np.float32
    assert (dy == 1).all()


def test_errors():
    layer = npnet.LinearLayer(3, 2)
    with pytest.raises(ValueError, match="last dimension 3"):
        layer.fprop(np.zeros((2, 4)))
    with pytest.raises(npnet.NotForwardedError):
        layer.bprop(np.zeros((2, 2)))
    layer.fprop(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=r"dy must have shape \(4, 2\)"):
        layer.bprop(np.zeros((5, 2)))
    with pytest.raises(ValueError, match=">= 1"):
        npnet.LinearLayer(0, 2)
