"""LSTMCell: what is specific to it: the exp-form gate kernel at saturation, backward blocks, a
planted bug, PyTorch values, dstate with None entries, forget-bias and chrono initialisation, config.

Everything every cell must do (the fast path equal to npnet.cells.reference, gradient checks,
masks, step(), dtypes, errors, long sequences) is checked for all cells in
tests/cells/test_contract.py.
"""
import json

import numpy as np
from scipy.special import expit
import pytest

import npnet
from npnet.cells.lstm import LSTMCell
from npnet.cells import _kernels, reference

GRAD_TOL = 1e-6     # float64 central differences
EXACT_TOL = 1e-12   # fast path vs reference: same math, different summation order


def make_cell(D, H, seed=0, scale=0.6, **kw):
    """A float64 cell whose parameters (biases too) are random, so every term matters."""
    cell = LSTMCell(D, H, rng=seed, **kw)
    rng = np.random.default_rng(seed + 100)
    for p in cell.params.values():
        p[...] = scale * rng.standard_normal(p.shape)
    return cell


def make_inputs(B, T, D, H, seed=1, mask_p=None):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, D))
    h0 = 0.5 * rng.standard_normal((B, H))
    c0 = 0.5 * rng.standard_normal((B, H))
    mask = None
    if mask_p is not None:
        mask = rng.random((B, T)) > mask_p
        mask[0, 0] = False          # a padded first step
        mask[-1, -1] = True         # and a real last one
    return x, (h0, c0), mask


def assert_close(a, b, tol=EXACT_TOL, what=""):
    """max |a - b| <= tol * max(1, max |b|)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (what, a.shape, b.shape)
    scale = max(1.0, float(np.max(np.abs(b)))) if b.size else 1.0
    err = float(np.max(np.abs(a - b))) if a.size else 0.0
    assert err <= tol * scale, f"{what}: max |diff| {err:.3g} > {tol:g} * {scale:.3g}"


def run_fast(cell, x, state, mask, dout, dstate):
    cell.zero_grad()
    out, (h, c) = cell.fprop(x, state, mask)
    dx, (dh0, dc0) = cell.bprop(dout, dstate)
    return out, (h, c), dx, (dh0, dc0), {k: g.copy() for k, g in cell.grads.items()}


# ---------------------------------------------------------------------------
# gradient checks (float64)

def test_gradcheck_without_state_and_default_init():
    cell = LSTMCell(3, 4, rng=0)               # the real initialisation, forget bias 1
    x, _, _ = make_inputs(2, 5, 3, 4)
    errors = npnet.gradcheck(cell, x)
    assert max(errors.values()) < GRAD_TOL, errors


def test_gradcheck_catches_a_planted_bug(monkeypatch):
    """Drop the tanh' factor on the h -> c path: gradcheck must see it."""
    cell = make_cell(2, 3)
    x, state, _ = make_inputs(2, 4, 2, 3)
    good = LSTMCell._backward_factors

    def dropped_term(gates4, c, tanh_c, dc_dh, scratch4, forget):
        o = gates4[:, :, 3].copy()                                    # the factors overwrite the gates
        dc_dh, da_factors = good(gates4, c, tanh_c, dc_dh, scratch4, forget)
        dc_dh[...] = o                                                # o instead of o (1 - tanh^2 c)
        return dc_dh, da_factors

    monkeypatch.setattr(LSTMCell, "_backward_factors", staticmethod(dropped_term))
    errors = npnet.gradcheck(cell, x, state)
    assert max(errors.values()) > 1e-3, errors


# ---------------------------------------------------------------------------
# the exp-form gate kernel, backward blocks, PyTorch

@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_gate_kernel_at_saturation(dtype):
    """The exp kernel (gates = n / (1 + exp(k a))) overflows exp to inf on purpose for large
    pre-activations: the gates must then be exactly their limits (0, 1, -1), with no warning
    (warnings are errors under pytest), and agree with the plain reference everywhere."""
    B, D, H = 4, 3, 5
    cell = npnet.LSTMCell(D, H, dtype=dtype, rng=3)
    a = np.array([[-1e4, -800.0, -100.0, -1.0, 0.0], [1e-3, 1.0, 100.0, 800.0, 1e4],
                  [-50.0, 50.0, -1e5, 1e5, 3.0], [0.5, -0.5, 20.0, -20.0, 0.0]], dtype)   # (B, H)
    scale, numerator = _kernels.gate_scales("ssts", H, dtype)
    a4 = np.concatenate([a, -a, a[::-1], a[:, ::-1]], axis=1) * scale                     # a' = scale a, (B, 4H)
    with np.errstate(over="ignore"):
        gates = _kernels.exp_gates(a4.copy(), numerator)
        gates[:, 2 * H:3 * H] -= 1.0
    pre = np.concatenate([a, -a, a[::-1], a[:, ::-1]], axis=1).astype(np.float64)
    want = expit(pre)                                                  # SciPy's stable sigmoid
    want[:, 2 * H:3 * H] = np.tanh(pre[:, 2 * H:3 * H])
    assert gates.dtype == dtype
    tol = 1e-15 if dtype == np.float64 else 1e-7
    np.testing.assert_allclose(gates, want, rtol=0, atol=tol)
    sat = np.abs(pre) > 100
    assert np.array_equal(gates[sat], np.round(want[sat]).astype(dtype))  # exact limits: 0, 1, -1
    c = np.array([[-1e5, -400.0, -0.3, 0.0, 1e-8], [0.3, 400.0, 1e5, 5.0, -5.0]] * 2, dtype)
    for through_exp in (False, True):
        with np.errstate(over="ignore"):
            tc = _kernels.tanh_kernel(through_exp)(c, np.empty_like(c))
        np.testing.assert_allclose(tc, np.tanh(c.astype(np.float64)), rtol=0, atol=tol)
    # The whole cell, forward and backward, at saturating scale against the reference.
    big = npnet.LSTMCell(D, H, dtype=np.float64, rng=4)
    for k in big.params:
        big.params[k] *= 300.0
    x, (h0, c0), mask = make_inputs(B, 6, D, H, mask_p=0.3)
    dout = np.random.default_rng(8).standard_normal((B, 6, H))
    out, (h, c_T), dx, (dh0, dc0), grads = run_fast(big, x, (h0, c0), mask, dout, None)
    r_out, (r_h, r_c), cache = reference.lstm_forward(x, (h0, c0), big.params, mask)
    r_grads = {k: np.zeros_like(v) for k, v in big.params.items()}
    r_dx, (r_dh0, r_dc0) = reference.lstm_backward(dout, None, cache, r_grads)
    for name, u, v in [("out", out, r_out), ("c_T", c_T, r_c), ("dx", dx, r_dx), ("dc_0", dc0, r_dc0)]:
        assert_close(u, v, what=name)
    for k in big.params:
        assert_close(grads[k], r_grads[k], what=k)


@pytest.mark.parametrize("masked", [False, True])
def test_backward_blocks_give_identical_results(masked, monkeypatch):
    """bprop works through time in cache-sized blocks; the block length must not matter."""
    B, T, D, H = 2, 7, 3, 4
    x, state, mask = make_inputs(B, T, D, H, mask_p=0.3 if masked else None)
    dout = np.random.default_rng(3).standard_normal((B, T, H))
    dstate = (np.ones((B, H)), -np.ones((B, H)))
    results = []
    for block_steps in (T, 1, 2, 3):       # 7 = one block; 3 does not divide 7
        cell = make_cell(D, H)
        monkeypatch.setattr(_kernels, "BLOCK_BYTES", block_steps * 10 * B * H * 8)   # 10 (B, H) per step
        assert _kernels.block_steps(T, 10 * B * H * 8) == block_steps
        cell.track_state_grads = True
        results.append(run_fast(cell, x, state, mask, dout, dstate) + (cell.state_grad_norms,))
    for other in results[1:]:
        _, _, dx, (dh0, dc0), grads, norms = other
        assert np.array_equal(dx, results[0][2])
        assert np.array_equal(dh0, results[0][3][0]) and np.array_equal(dc0, results[0][3][1])
        for k in grads:
            assert np.array_equal(grads[k], results[0][4][k])
        for k in norms:
            assert np.array_equal(norms[k], results[0][5][k])


# Values computed once with torch.nn.LSTM (float64, weight_ih = W_x.T, weight_hh = W_h.T,
# bias_ih = b, bias_hh = 0) for the parameters and inputs built in torch_case();
# loss = sum(out * dout) + sum(h_T * dh_T) + sum(c_T * dc_T).
TORCH_VALUES = {
    'out': np.array([[[ 0.007370244357050282,  0.08485981612641018 ],
        [ 0.14672688456502903 ,  0.14580423816851731 ],
        [-0.27968160082890253 ,  0.08219885311067168 ]],

        [[-0.41515253460478185 , -0.010743811673405133],
        [-0.4312555011686515  , -0.22209022557426333 ],
        [-0.48063032748200785 , -0.3685367956722021  ]]]),
    'h_T': np.array([[-0.27968160082890253,  0.08219885311067168],
        [-0.48063032748200785, -0.3685367956722021 ]]),
    'c_T': np.array([[-0.37872139869889204,  0.09866922001176055],
        [-0.899950998338579  , -0.4686093556861786 ]]),
    'dx': np.array([[[-0.015350806005542651,  0.06088409972374074 ],
        [-0.005965501876765436, -0.11050390233234023 ],
        [ 0.2920885081726495  ,  0.05846028239484743 ]],

        [[-0.19142109586690204 , -0.22169296799661023 ],
        [ 0.3474433177602808  , -0.14151504584333602 ],
        [-0.12080330730438929 , -0.03213513217915917 ]]]),
    'dh_0': np.array([[ 0.04742513210446511  ,  0.0052495988865418515],
        [-0.2017831213464745   ,  0.1808666827968032   ]]),
    'dc_0': np.array([[ 0.10938704095857373, -0.07199829871201772],
        [ 0.32084763275198863,  0.04665733639549773]]),
    'dW_x': np.array([[-0.21154281116050422 ,  0.14068283862609343 , -0.11391223799011238 ,  0.04626873611048509 ,
        0.21502757495116806 , -0.4117705015529185  ,  0.05774199339278929 ,  0.0625371897776438  ],
        [-0.23820799081707647 ,  0.06730879993490049 , -0.12045734824641896 ,  0.011520222838627362,
        0.12417520530329494 , -0.5167006304743615  ,  0.04612183002468829 , -0.008558866723204167]]),
    'dW_h': np.array([[ 0.04008538026158795 , -0.03316917199329987 ,  0.046908369887825284, -0.001198533483410826,
        -0.04480108574276744 ,  0.1764208506332752  , -0.07272626953756889 , -0.012053265886120325],
        [ 0.01521008827998853 , -0.009886855074956614,  0.022431464743723893, -0.006078576668540852,
        -0.043184119288392324, -0.018631847545152343, -0.02571883761753046 , -0.01564293557428143 ]]),
    'db': np.array([-0.21465679666229082 , -0.047163063882415174, -0.1759651143177119  , -0.038213340981399814,
        0.06663887526974369 , -0.624161186838093   ,  0.0363108104140369  , -0.04089929049543076 ]),
}


def torch_case():
    B, T, D, H = 2, 3, 2, 2
    params = {"W_x": np.sin(np.arange(D * 4 * H)).reshape(D, 4 * H),
              "W_h": np.cos(np.arange(H * 4 * H)).reshape(H, 4 * H) * 0.8,
              "b": np.linspace(-0.5, 0.5, 4 * H)}
    x = np.tanh(np.arange(B * T * D).reshape(B, T, D) - 3.0)
    h0 = np.array([[0.1, -0.2], [0.3, 0.05]])
    c0 = np.array([[-0.4, 0.2], [0.0, 0.6]])
    dout = np.cos(np.arange(B * T * H)).reshape(B, T, H)
    dh_T = np.array([[0.5, -1.0], [0.25, 0.0]])
    dc_T = np.array([[-0.3, 0.2], [0.7, -0.1]])
    return params, x, (h0, c0), dout, (dh_T, dc_T)


def test_matches_stored_pytorch_values():
    params, x, state, dout, dstate = torch_case()
    cell = LSTMCell(2, 2, rng=0)
    for k, v in params.items():
        cell.params[k][...] = v
    out, (h, c), dx, (dh0, dc0), grads = run_fast(cell, x, state, None, dout, dstate)
    got = {"out": out, "h_T": h, "c_T": c, "dx": dx, "dh_0": dh0, "dc_0": dc0, **{"d" + k: g for k, g in grads.items()}}
    for name, want in TORCH_VALUES.items():
        assert_close(got[name], want, what=name)


# ---------------------------------------------------------------------------
# dstate entries

def test_dstate_may_have_none_entries():
    cell = make_cell(2, 3)
    x, state, _ = make_inputs(2, 3, 2, 3)
    dout = np.ones((2, 3, 3))
    dh = np.full((2, 3), 0.5)
    cell.fprop(x, state)
    a = cell.bprop(dout, (dh, None))
    cell.fprop(x, state)
    b = cell.bprop(dout, (dh, np.zeros((2, 3))))
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1][0], b[1][0])


# ---------------------------------------------------------------------------
# initialisation and config

def test_forget_bias_initialisation():
    H = 5
    b = LSTMCell(3, H, rng=0).params["b"]
    assert np.all(b[H:2 * H] == 1.0) and np.all(b[:H] == 0) and np.all(b[2 * H:] == 0)
    b = LSTMCell(3, H, forget_bias=2.5, rng=0).params["b"]
    assert np.all(b[H:2 * H] == 2.5) and np.all(b[:H] == 0) and np.all(b[2 * H:] == 0)


def test_chrono_initialisation():
    H, t_max = 64, 50.0
    b = LSTMCell(3, H, chrono_t_max=t_max, forget_bias=7.0, rng=0).params["b"]
    b_i, b_f = b[:H], b[H:2 * H]
    assert np.all(b_f >= 0.0) and np.all(b_f <= np.log(t_max - 1.0))
    assert b_f.std() > 0.2                      # spread out, not a constant
    assert np.array_equal(b_i, -b_f)
    assert np.all(b[2 * H:] == 0.0)
    assert np.array_equal(b, LSTMCell(3, H, chrono_t_max=t_max, rng=0).params["b"])  # seeded
    with pytest.raises(ValueError, match="t_max"):
        LSTMCell(3, H, chrono_t_max=2.0)


def test_recurrent_blocks_are_orthogonal_and_shapes():
    cell = LSTMCell(3, 4, rng=0)
    assert cell.params["W_x"].shape == (3, 16) and cell.params["W_h"].shape == (4, 16)
    assert cell.params["b"].shape == (16,)
    for k in range(4):
        Q = cell.params["W_h"][:, 4 * k:4 * (k + 1)]
        assert_close(Q.T @ Q, np.eye(4), tol=1e-12)


def test_get_config_rebuilds_the_cell():
    cell = LSTMCell(3, 4, forget_bias=0.5, chrono_t_max=None, weight_init="uniform", dtype=np.float32, rng=0)
    cfg = cell.get_config()
    assert json.loads(json.dumps(cfg)) == cfg
    assert cfg == {"input_size": 3, "hidden_size": 4, "forget_bias": 0.5, "chrono_t_max": None,
                   "weight_init": "uniform", "recurrent_init": "orthogonal", "dtype": "float32"}
    again = LSTMCell(**cfg)
    assert again.get_config() == cfg and again.dtype == np.float32
    assert LSTMCell(**LSTMCell(2, 2, chrono_t_max=10).get_config()).chrono_t_max == 10.0
