"""npnet.time_distributed.TimeDistributed: float64 gradient check, equality with a per-step loop,
training through the Learner, float32, config, errors."""
import json

import numpy as np
import pytest

import npnet
from npnet.layer import NotForwardedError, NpnetError, ShapeError
from npnet.time_distributed import TimeDistributed


def _mlp(dtype=np.float64, rng=0):
    g = np.random.default_rng(rng)
    return npnet.Sequential(npnet.LinearLayer(4, 5, dtype=dtype, rng=g), npnet.ReLU(dtype),
                            npnet.LinearLayer(5, 3, dtype=dtype, rng=g))


def test_gradcheck_float64_images_per_step(rng):
    conv = npnet.Sequential(npnet.Conv2D(1, 2, 3, rng=0), npnet.ReLU(), npnet.Flatten(),
                            npnet.LinearLayer(2 * 4 * 4, 3, rng=1))
    td = TimeDistributed(conv)
    errs = npnet.gradcheck(td, rng.random((2, 3, 1, 6, 6)))
    assert {f"param {k}" for k in td.params} | {"input x"} == set(errs)
    assert max(errs.values()) < 1e-7, errs


def test_equals_the_layer_applied_at_every_step(rng):
    td, ref = TimeDistributed(_mlp(rng=1)), _mlp(rng=1)
    x = rng.standard_normal((3, 5, 4))
    y, state = td.fprop(x)
    assert state is None and y.shape == (3, 5, 3)
    dy = rng.standard_normal(y.shape)
    dx, dstate = td.bprop(dy)
    assert dstate is None
    for t in range(5):
        np.testing.assert_allclose(y[:, t], ref.forward(x[:, t]), rtol=1e-13, atol=1e-14)
        ref.fprop(x[:, t])
        np.testing.assert_allclose(dx[:, t], ref.bprop(dy[:, t]), rtol=1e-13, atol=1e-14)
    for k in td.params:                                   # shared weights: gradients summed over steps
        np.testing.assert_allclose(td.grads[k], ref.grads[k], rtol=1e-12, atol=1e-14)


def test_the_learner_trains_it_float32(rng):
    x = rng.standard_normal((64, 2, 4)).astype(np.float32)
    y = (x[..., 0] > 0).astype(np.int64) + (x[..., 1] > 0)              # (B, T) classes 0..2
    td = TimeDistributed(_mlp(np.float32, rng=2))
    learner = npnet.Learner(td, "ce", "adam", lr=0.05, metric="accuracy", progress=False)
    before = learner.evaluate([(x, y)])
    learner.fit([(x, y)], epochs=60)
    after = learner.evaluate([(x, y)])
    assert after["loss"] < 0.5 * before["loss"] and after["metric"] > 0.9
    assert learner.predict(x).dtype == np.float32


def test_config_round_trip_and_errors(rng):
    td = TimeDistributed(_mlp())
    again = TimeDistributed.from_config(json.loads(json.dumps(td.get_config())))
    assert again.get_config() == td.get_config() and list(again.params) == ["0.W", "0.b", "2.W", "2.b"]
    with pytest.raises(NpnetError, match="TimeDistributed layer must be a layer"):
        TimeDistributed(np.ones(3))
    with pytest.raises(ShapeError, match=r"\(B, T, \.\.\.\)"):
        td.fprop(np.ones((2, 4)))
    with pytest.raises(NotForwardedError):
        td.bprop(np.ones((2, 1, 3)))
    td.fprop(np.ones((2, 1, 4)))
    with pytest.raises(ShapeError, match=r"expects dy of shape \(2, 1\)"):
        td.bprop(np.ones((1, 2, 3)))
    td.fprop(np.ones((2, 1, 4)))
    td.clear_cache()
    assert not td.has_cache and not td.layer[0].has_cache
    with pytest.raises(ShapeError, match=r"must map \(B\*T, \.\.\.\) to \(B\*T, F\)"):
        TimeDistributed(npnet.ReLU()).fprop(np.ones((2, 3, 4, 5)))
