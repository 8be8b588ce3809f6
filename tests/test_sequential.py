"""npnet.Sequential: float64 gradient checks (dense and the conv read-in composition), equality
with the layers called by hand, linked params/grads, modes, config round trip, errors."""
import json

import numpy as np
import pytest

import npnet
from npnet.layer import NotForwardedError, NpnetError, ShapeError
from npnet.sequential import layer_config, layer_from_config, register_layer

TOL = 1e-7


def conv_read_in(dtype=np.float64, rng=0, size=8, features=3):
    """The digit-sums read-in in small: conv -> pool -> ReLU -> flatten -> dense -> ReLU."""
    g = np.random.default_rng(rng)
    s = (size - 2) // 2
    return npnet.Sequential(npnet.Conv2D(1, 2, 3, weight_init="he_uniform", dtype=dtype, rng=g),
                            npnet.MaxPool2D(2, dtype=dtype), npnet.ReLU(dtype),
                            npnet.Flatten(dtype=dtype),
                            npnet.LinearLayer(2 * s * s, features, dtype=dtype, rng=g), npnet.ReLU(dtype))


def test_gradcheck_dense_stack(rng):
    seq = npnet.Sequential(npnet.LinearLayer(4, 6, rng=0), npnet.ReLU(), npnet.LinearLayer(6, 3, rng=1))
    errs = npnet.gradcheck(seq, rng.standard_normal((5, 4)))
    assert set(errs) == {"param 0.W", "param 0.b", "param 2.W", "param 2.b", "input x"}
    assert max(errs.values()) < TOL, errs


def test_gradcheck_conv_read_in_composition(rng):
    seq = conv_read_in()
    x = rng.random((3, 1, 8, 8))
    errs = npnet.gradcheck(seq, x)
    assert {f"param {k}" for k in seq.params} | {"input x"} == set(errs)
    assert max(errs.values()) < TOL, errs


def test_equals_the_layers_called_by_hand(rng):
    a, b = conv_read_in(rng=3), conv_read_in(rng=3)             # same weights
    x = rng.random((4, 1, 8, 8))
    dy = rng.standard_normal((4, 3))
    y = a.fprop(x)
    dx = a.bprop(dy)
    h = x
    for layer in b.layers:
        h = layer.fprop(h)
    g = dy
    for layer in reversed(b.layers):
        g = layer.bprop(g)
    np.testing.assert_array_equal(y, h)
    np.testing.assert_array_equal(dx, g)
    for k in a.params:
        i, name = k.split(".")
        np.testing.assert_array_equal(a.grads[k], b.layers[int(i)].grads[name])
    np.testing.assert_array_equal(a.forward(x), y)
    assert not any(layer.has_cache for layer in a.layers)


def test_params_are_the_layers_own_arrays_and_an_optimiser_trains_them(rng):
    seq = npnet.Sequential(npnet.LinearLayer(3, 4, rng=0), npnet.ReLU(), npnet.LinearLayer(4, 2, rng=1))
    assert list(seq.params) == ["0.W", "0.b", "2.W", "2.b"] and list(seq.grads) == list(seq.params)
    assert seq.params["2.W"] is seq[2].params["W"] and seq.grads["0.b"] is seq[0].grads["b"]
    w0 = seq[0].params["W"].copy()
    opt = npnet.optim.SGD(seq.params, lr=0.1)
    y = seq.fprop(rng.standard_normal((5, 3)))
    seq.bprop(np.ones_like(y))
    g = seq[0].grads["W"].copy()
    assert np.abs(g).sum() > 0
    opt.step(seq.grads)
    np.testing.assert_allclose(seq[0].params["W"], w0 - 0.1 * g)
    seq.zero_grad()
    assert all(not gr.any() for layer in seq.layers for gr in layer.grads.values())
    seq.params["2.b"] = np.ones(2)                             # copied in place, not rebound
    np.testing.assert_array_equal(seq[2].params["b"], 1.0)
    with pytest.raises(ShapeError):
        seq.params["2.b"] = np.ones(3)


def test_bprop_accumulates(rng):
    seq = conv_read_in(rng=1)
    x = rng.random((2, 1, 8, 8))
    seq.bprop(np.ones_like(seq.fprop(x)))
    g1 = {k: v.copy() for k, v in seq.grads.items()}
    seq.bprop(np.ones_like(seq.fprop(x)))
    for k in g1:
        np.testing.assert_allclose(seq.grads[k], 2 * g1[k], rtol=1e-12, atol=1e-15)


class _Mode(npnet.Layer):
    """Identity that records train()/eval() (like a dropout layer would need)."""

    def __init__(self, dtype=np.float64, rng=None):
        super().__init__(dtype, rng)
        self.training = True

    def get_config(self):
        return {"dtype": self.dtype.name}

    def train(self):
        self.training = True

    def eval(self):
        self.training = False

    def fprop(self, x):
        self._cache = True
        return x

    def bprop(self, dy):
        self._take_cache()
        return dy


def test_train_eval_and_clear_cache_reach_every_layer(rng):
    inner = _Mode()
    seq = npnet.Sequential(npnet.LinearLayer(2, 2, rng=0), npnet.Sequential(inner, npnet.ReLU()))
    assert seq.eval() is seq and not seq.training and not inner.training
    seq.train()
    assert seq.training and inner.training
    seq.fprop(rng.standard_normal((3, 2)))
    assert seq.has_cache and inner.has_cache and seq.cache_nbytes() > 0
    seq.clear_cache()
    assert not seq.has_cache and not inner.has_cache and not seq[0].has_cache
    assert seq.cache_nbytes() == 0
    with pytest.raises(NotForwardedError):
        seq.bprop(np.ones((3, 2)))


def test_config_round_trip_through_json(rng):
    seq = npnet.Sequential(conv_read_in(dtype=np.float32), npnet.LinearLayer(3, 10, dtype=np.float32, rng=0))
    spec = json.loads(json.dumps(layer_config(seq)))
    again = layer_from_config(spec)
    assert isinstance(again, npnet.Sequential) and again.get_config() == seq.get_config()
    assert {k: v.shape for k, v in again.params.items()} == {k: v.shape for k, v in seq.params.items()}
    assert list(seq.params)[:2] == ["0.0.W", "0.0.b"]
    for k, v in seq.params.items():
        again.params[k] = v
    x = rng.random((2, 1, 8, 8)).astype(np.float32)
    y = again.fprop(x)
    assert y.dtype == np.float32 and y.shape == (2, 10)
    np.testing.assert_array_equal(y, seq.forward(x))
    assert again.bprop(np.ones_like(y)).dtype == np.float32


def test_custom_layers_need_registering():
    spec = layer_config(_Mode())
    with pytest.raises(NpnetError, match="not known"):
        layer_from_config(spec)
    register_layer(_Mode)
    assert isinstance(layer_from_config(spec), _Mode)


def test_errors():
    with pytest.raises(NpnetError, match="at least one layer"):
        npnet.Sequential()
    with pytest.raises(NpnetError, match="Sequential layer 1 must be a layer.*has no fprop, bprop"):
        npnet.Sequential(npnet.ReLU(), object())
    with pytest.raises(NpnetError, match="share one dtype"):
        npnet.Sequential(npnet.ReLU(np.float32), npnet.ReLU(np.float64))
    with pytest.raises(NpnetError, match="description must be"):
        layer_from_config({"class": "ReLU"})
    seq = npnet.Sequential(npnet.LinearLayer(3, 2, rng=0))
    with pytest.raises(ShapeError, match="last dimension 3"):
        seq.fprop(np.ones((2, 4)))
