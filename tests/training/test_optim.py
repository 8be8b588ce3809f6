"""Tests for npnet.optim: the first steps of every optimiser against numbers worked out by hand,
in-place updates (identity and dtype kept), state round trips, configs and argument checks.

The expected values below are derived in the comments from PyTorch's documented
algorithms, never by calling npnet.optim.
"""
import json

import numpy as np
import pytest

import npnet
from npnet import optim

G1 = [0.5, -1.0]
G2 = [1.0, 2.0]
G3 = [0.0, 0.0]


def run(opt_cls, grads, dtype=np.float64, **kw):
    """Start from p = [1, -2], apply the listed gradients, return every intermediate p."""
    params = {"w": np.array([1.0, -2.0], dtype)}
    opt = opt_cls(params, **kw)
    out = []
    for g in grads:
        opt.step({"w": np.array(g, dtype)})
        out.append(params["w"].copy())
    return out


# ---------------------------------------------------------------- hand-computed steps
def test_sgd_plain():
    # p1 = [1 - 0.1*0.5, -2 + 0.1*1] ; p2 = p1 - 0.1*[1, 2]
    p1, p2 = run(optim.SGD, [G1, G2], lr=0.1)
    np.testing.assert_allclose(p1, [0.95, -1.9], rtol=0, atol=1e-15)
    np.testing.assert_allclose(p2, [0.85, -2.1], rtol=0, atol=1e-15)


def test_sgd_momentum():
    # buf1 = g1 = [0.5, -1]            p1 = [0.95, -1.9]
    # buf2 = 0.9 buf1 + g2 = [1.45, 1.1] p2 = p1 - 0.1 buf2 = [0.805, -2.01]
    # buf3 = 0.9 buf2 + 0 = [1.305, 0.99] p3 = p2 - 0.1 buf3 = [0.6745, -2.109]
    p1, p2, p3 = run(optim.SGD, [G1, G2, G3], lr=0.1, momentum=0.9)
    np.testing.assert_allclose(p1, [0.95, -1.9], rtol=0, atol=1e-15)
    np.testing.assert_allclose(p2, [0.805, -2.01], rtol=0, atol=1e-15)
    np.testing.assert_allclose(p3, [0.6745, -2.109], rtol=0, atol=1e-15)


def test_sgd_nesterov():
    # buf1 = [0.5, -1];  d1 = g1 + 0.9 buf1 = [0.95, -1.9];   p1 = [0.905, -1.81]
    # buf2 = [1.45, 1.1]; d2 = g2 + 0.9 buf2 = [2.305, 2.99]; p2 = [0.6745, -2.109]
    p1, p2 = run(optim.SGD, [G1, G2], lr=0.1, momentum=0.9, nesterov=True)
    np.testing.assert_allclose(p1, [0.905, -1.81], rtol=0, atol=1e-15)
    np.testing.assert_allclose(p2, [0.6745, -2.109], rtol=0, atol=1e-15)


def test_sgd_weight_decay():
    # g1' = g1 + 0.1 p0 = [0.6, -1.2];        p1 = [0.94, -1.88]
    # g2' = g2 + 0.1 p1 = [1.094, 1.812];     p2 = [0.8306, -2.0612]
    p1, p2 = run(optim.SGD, [G1, G2], lr=0.1, weight_decay=0.1)
    np.testing.assert_allclose(p1, [0.94, -1.88], rtol=0, atol=1e-15)
    np.testing.assert_allclose(p2, [0.8306, -2.0612], rtol=0, atol=1e-15)


def test_adam():
    # t=1: m = 0.1 g1 = [0.05, -0.1], v = 0.001 g1^2 = [0.00025, 0.001]
    #      m_hat = g1, sqrt(v_hat) = |g1|  ->  p1 = p0 - 0.1 * g1 / (|g1| + 1e-8)
    # t=2: m = 0.9 m + 0.1 g2 = [0.145, 0.11]; v = 0.999 v + 0.001 g2^2 = [0.00124975, 0.004999]
    #      1 - 0.9^2 = 0.19, 1 - 0.999^2 = 0.001999
    #      p2 = p1 - 0.1 * (m / 0.19) / (sqrt(v / 0.001999) + 1e-8)
    p1, p2 = run(optim.Adam, [G1, G2], lr=0.1)
    np.testing.assert_allclose(p1, [0.900000002, -1.900000001], rtol=1e-13)
    np.testing.assert_allclose(p2, [0.8034818006385087, -1.936610353472075], rtol=1e-13)


def test_adam_weight_decay():
    # g' = g1 + 0.5 p0 = [1.0, -2.0]; first Adam step moves by lr * g'/(|g'| + eps)
    (p1,) = run(optim.Adam, [G1], lr=0.1, weight_decay=0.5)
    np.testing.assert_allclose(p1, [1 - 0.1 / (1 + 1e-8), -2 + 0.1 * 2 / (2 + 1e-8)], rtol=1e-14)


def test_adam_bias_correction_uses_step_count():
    # A zero gradient at t=3 still moves p: m_hat = m / (1 - 0.9^3) with m = 0.81 m1 + 0.09 g2.
    p1, p2, p3 = run(optim.Adam, [G1, G2, G3], lr=0.1)
    # m3 = 0.9 * [0.145, 0.11] = [0.1305, 0.099]; v3 = 0.999 * [0.00124975, 0.004999]
    # 1 - 0.9^3 = 0.271, 1 - 0.999^3 = 0.002997001
    m3 = np.array([0.1305, 0.099])
    v3 = np.array([0.00124850025, 0.004994001])
    np.testing.assert_allclose(p3, p2 - 0.1 * (m3 / 0.271) / (np.sqrt(v3 / 0.002997001) + 1e-8), rtol=1e-13)


def test_rmsprop():
    # v1 = 0.01 g1^2 = [0.0025, 0.01]; sqrt = [0.05, 0.1]
    # p1 = p0 - 0.01 * g1 / (sqrt(v1) + 1e-8)             ~ [0.9, -1.9]
    # v2 = 0.99 v1 + 0.01 g2^2 = [0.012475, 0.0499]
    # p2 = p1 - 0.01 * g2 / (sqrt(v2) + 1e-8),  g2/sqrt(v2) = [8.95322881911377, 8.95322921991532]
    p1, p2 = run(optim.RMSprop, [G1, G2], lr=0.01)
    np.testing.assert_allclose(p1, [0.900000019999996, -1.900000009999999], rtol=1e-13)
    np.testing.assert_allclose(p2, [0.8104677318088583, -1.9895323021991522], rtol=1e-13)


def test_rmsprop_momentum():
    # d1 = g1/(sqrt(v1)+eps) ~ [10, -10]; buf1 = d1; p1 = p0 - 0.01 d1
    # buf2 = 0.5 buf1 + d2, d2 = [8.95322881911377, 8.95322921991532]; p2 = p1 - 0.01 buf2
    d1 = np.array([0.5 / (0.05 + 1e-8), -1.0 / (0.1 + 1e-8)])
    d2 = np.array([8.95322881911377, 8.95322921991532])
    p1, p2 = run(optim.RMSprop, [G1, G2], lr=0.01, momentum=0.5)
    np.testing.assert_allclose(p1, np.array([1.0, -2.0]) - 0.01 * d1, rtol=1e-13)
    np.testing.assert_allclose(p2, p1 - 0.01 * (0.5 * d1 + d2), rtol=1e-13)


def test_adagrad():
    # sum1 = g1^2 = [0.25, 1];  p1 = p0 - 0.1 * [0.5/(0.5+eps), -1/(1+eps)] = [0.90000000002, -1.90000000001]
    # sum2 = [1.25, 5];         p2 = p1 - 0.1 * [1/(sqrt(1.25)+eps), 2/(sqrt(5)+eps)],
    #                           1/sqrt(1.25) = 2/sqrt(5) = 0.8944271909999159, eps = 1e-10
    p1, p2 = run(optim.Adagrad, [G1, G2], lr=0.1)
    np.testing.assert_allclose(p1, [0.90000000002, -1.90000000001], rtol=1e-14)
    sqrt_125, sqrt_5 = 1.118033988749895, 2.23606797749979
    np.testing.assert_allclose(p2, [0.90000000002 - 0.1 * 1 / (sqrt_125 + 1e-10),
                                    -1.90000000001 - 0.1 * 2 / (sqrt_5 + 1e-10)], rtol=1e-14)


# ---------------------------------------------------------------- in place, dtype, state
ALL = [(optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.01}),
       (optim.Adam, {"lr": 0.1, "weight_decay": 0.01}),
       (optim.RMSprop, {"lr": 0.01, "momentum": 0.5, "weight_decay": 0.01}),
       (optim.Adagrad, {"lr": 0.1, "weight_decay": 0.01})]


def make_params(dtype, seed=0):
    rng = np.random.default_rng(seed)
    return {"cells.0.W_x": rng.standard_normal((3, 4)).astype(dtype),
            "cells.0.b": rng.standard_normal(4).astype(dtype),
            "out.W": rng.standard_normal((4, 2)).astype(dtype)}


def make_grads(params, seed):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()}


@pytest.mark.parametrize("cls,kw", ALL)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_in_place_identity_and_dtype(cls, kw, dtype):
    params = make_params(dtype)
    ids = {k: id(v) for k, v in params.items()}
    before = {k: v.copy() for k, v in params.items()}
    opt = cls(params, **kw)
    for s in range(3):
        grads = make_grads(params, s + 1)
        grads_before = {k: v.copy() for k, v in grads.items()}
        opt.step(grads)
        for k, g in grads.items():                          # the caller's grads are never modified
            np.testing.assert_array_equal(g, grads_before[k])
    for k, v in params.items():
        assert id(v) == ids[k]
        assert v.dtype == dtype
        assert not np.array_equal(v, before[k])
    for k, a in opt.state_dict().items():
        if k != "t":
            assert a.dtype == dtype, k


@pytest.mark.parametrize("cls,kw", ALL)
def test_float32_follows_float64(cls, kw):
    p32 = run(cls, [G1, G2, [0.3, -0.7]], dtype=np.float32, **kw)
    p64 = run(cls, [G1, G2, [0.3, -0.7]], dtype=np.float64, **kw)
    for a, b in zip(p32, p64):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls,kw", ALL)
def test_state_round_trip(cls, kw):
    pa = make_params(np.float64)
    a = cls(pa, **kw)
    for s in range(2):
        a.step(make_grads(pa, s + 1))
    sd = a.state_dict()
    assert sd["t"].shape == () and int(sd["t"]) == 2
    assert all(isinstance(v, np.ndarray) and v.dtype.kind in "fi" for v in sd.values())

    pb = {k: v.copy() for k, v in pa.items()}
    b = cls(pb, **kw)
    b.load_state_dict(sd)
    assert b.t == 2
    for s in range(2, 4):                                    # identical futures, bit for bit
        g = make_grads(pa, s + 1)
        a.step(g)
        b.step(g)
    for k in pa:
        np.testing.assert_array_equal(pa[k], pb[k])
    sd2 = b.state_dict()                                     # state_dict returns copies
    for v in sd2.values():
        v[...] = 7
    assert b.state_dict().keys() == sd2.keys()
    assert all(not np.all(v == 7) for k, v in b.state_dict().items() if k != "t")


def test_state_round_trip_catches_a_missing_restore():
    # A fresh optimiser (no state loaded) must diverge from the original: the test above can fail.
    pa = make_params(np.float64)
    a = optim.Adam(pa, lr=0.1)
    a.step(make_grads(pa, 1))
    pb = {k: v.copy() for k, v in pa.items()}
    b = optim.Adam(pb, lr=0.1)
    g = make_grads(pa, 2)
    a.step(g)
    b.step(g)
    assert not np.array_equal(pa["out.W"], pb["out.W"])


def test_load_state_dict_errors():
    params = make_params(np.float64)
    opt = optim.Adam(params)
    sd = opt.state_dict()
    bad = dict(sd)
    del bad["m/out.W"]
    with pytest.raises(ValueError, match=r"missing \['m/out.W'\]"):
        opt.load_state_dict(bad)
    bad = dict(sd, **{"m/out.W": np.zeros((2, 4))})
    with pytest.raises(ValueError, match=r"m/out.W.*shape \(4, 2\)"):
        opt.load_state_dict(bad)
    bad = dict(sd, t=np.array(1.5))
    with pytest.raises(ValueError, match="'t'"):
        opt.load_state_dict(bad)


def test_step_checks_grads():
    params = make_params(np.float64)
    opt = optim.SGD(params, lr=0.1)
    grads = make_grads(params, 1)
    del grads["out.W"]
    with pytest.raises(ValueError, match=r"missing \['out.W'\]"):
        opt.step(grads)
    grads = make_grads(params, 1)
    grads["out.W"] = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"'out.W' must have shape \(4, 2\)"):
        opt.step(grads)


def test_lr_is_settable():
    params = {"w": np.array([1.0])}
    opt = optim.SGD(params, lr=0.1)
    opt.lr = 0.5
    opt.step({"w": np.array([1.0])})
    assert params["w"][0] == 0.5
    assert opt.get_config()["lr"] == 0.5
    opt.lr = 0.0                                              # a schedule may end at zero
    opt.step({"w": np.array([1.0])})
    assert params["w"][0] == 0.5
    with pytest.raises(ValueError, match="lr"):
        opt.lr = -1.0


@pytest.mark.parametrize("cls,kw", ALL)
def test_config_json_and_rebuild(cls, kw):
    params = make_params(np.float64)
    opt = cls(params, **kw)
    cfg = json.loads(json.dumps(opt.get_config()))
    assert cfg["class"] == cls.__name__
    again = optim.from_config(params, cfg)
    assert type(again) is cls
    assert again.get_config() == opt.get_config()


def test_get_by_name():
    params = make_params(np.float64)
    assert isinstance(optim.get("sgd", params), optim.SGD)
    assert isinstance(optim.get("Adam", params, lr=0.1), optim.Adam)
    assert isinstance(optim.get("rmsprop", params), optim.RMSprop)
    assert isinstance(optim.get("adagrad", params), optim.Adagrad)
    assert optim.get("adam", params, lr=0.1).lr == 0.1
    with pytest.raises(ValueError, match="unknown optimiser 'lbfgs'"):
        optim.get("lbfgs", params)


@pytest.mark.parametrize("cls,kw,match", [
    (optim.SGD, {"lr": 0.0}, "lr"),
    (optim.SGD, {"lr": -0.1}, "lr"),
    (optim.SGD, {"momentum": -0.1}, "momentum"),
    (optim.SGD, {"nesterov": True}, "nesterov"),
    (optim.SGD, {"weight_decay": -1.0}, "weight_decay"),
    (optim.Adam, {"betas": (1.0, 0.999)}, r"betas\[0\]"),
    (optim.Adam, {"betas": (0.9, -0.1)}, r"betas\[1\]"),
    (optim.Adam, {"betas": 0.9}, "pair"),
    (optim.Adam, {"eps": 0.0}, "eps"),
    (optim.Adam, {"lr": float("nan")}, "lr"),
    (optim.RMSprop, {"alpha": 1.0}, "alpha"),
    (optim.RMSprop, {"momentum": -1.0}, "momentum"),
    (optim.Adagrad, {"lr": -1.0}, "lr"),
])
def test_hyperparameter_validation(cls, kw, match):
    with pytest.raises(ValueError, match=match):
        cls(make_params(np.float64), **kw)


def test_params_validation():
    with pytest.raises(ValueError, match="dict"):
        optim.SGD([np.zeros(2)])
    with pytest.raises(ValueError, match="float32 or float64"):
        optim.SGD({"w": np.zeros(2, np.int64)})
    ro = np.zeros(2)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        optim.SGD({"w": ro})


def test_from_config_restores_an_annealed_zero_lr():
    """A schedule may end at lr = 0 (the setter allows it); a checkpoint of it must load."""
    params = {"w": np.ones(2)}
    opt = optim.Adam(params, lr=0.1)
    opt.lr = 0.0
    again = optim.from_config(params, opt.get_config())
    assert again.lr == 0.0 and type(again) is optim.Adam
    with pytest.raises(ValueError, match="lr must be"):        # NpnetError is a ValueError
        optim.Adam(params, lr=0.0)                              # a new optimiser still needs lr > 0


# ---------------------------------------------------------------- PyTorch's defaults (issue 14)
# Copied from PyTorch's documentation of torch.optim (the signatures of SGD, Adam, RMSprop and
# Adagrad in PyTorch 2.x): a table, not a call to npnet, so a changed default here fails.
# dampening (SGD), amsgrad (Adam), centered (RMSprop), lr_decay and initial_accumulator_value
# (Adagrad) have no npnet counterpart: npnet implements only their default (0 / False).
TORCH_DEFAULTS = {
    optim.SGD: {"lr": 1e-3, "momentum": 0.0, "weight_decay": 0.0, "nesterov": False},
    optim.Adam: {"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0},
    optim.RMSprop: {"lr": 1e-2, "alpha": 0.99, "eps": 1e-8, "weight_decay": 0.0, "momentum": 0.0},
    optim.Adagrad: {"lr": 1e-2, "eps": 1e-10, "weight_decay": 0.0},
}


@pytest.mark.parametrize("cls", list(TORCH_DEFAULTS))
def test_defaults_are_pytorchs(cls):
    opt = cls(make_params(np.float64))
    got = {k: getattr(opt, k) for k in TORCH_DEFAULTS[cls]}
    assert got == TORCH_DEFAULTS[cls]
    assert set(opt.hyperparams) == set(TORCH_DEFAULTS[cls])      # every hyperparameter is in the table


@pytest.mark.parametrize("cls", list(TORCH_DEFAULTS))
@pytest.mark.parametrize("value", ["0.01", b"0.01", True])
def test_hyperparameters_refuse_strings_and_bools(cls, value):
    """float("0.01") would accept a string from a config file; PyTorch refuses it too."""
    with pytest.raises(npnet.NpnetError, match=r"lr must be a number, got"):
        cls(make_params(np.float64), lr=value)
    with pytest.raises(npnet.NpnetError, match=r"eps|momentum|weight_decay"):
        cls(make_params(np.float64), weight_decay="0")
    opt = cls(make_params(np.float64), lr=0.1)
    with pytest.raises(npnet.NpnetError, match="lr must be a number"):
        opt.lr = "0.2"                                         # the setter a scheduler uses
    assert opt.lr == 0.1
