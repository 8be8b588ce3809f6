"""Tests of npnet.LSTMCell: gradient checks, the exp-form gate kernel, backward blocks, PyTorch values,
masks, dtypes, forget-bias and chrono initialisation, errors and long-sequence numerics.

The fast path against the plain reference (npnet.cells.reference) and step() against fprop are
checked for every cell in tests/cells/test_contract.py.
"""
import json

import numpy as np
from scipy.special import expit
import pytest

import npnet
from npnet.layer import NotForwardedError
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

SHAPES = [  # (B, T, D, H)
    (2, 4, 3, 3),
    (1, 1, 1, 1),   # all degenerate
    (3, 1, 2, 2),   # T = 1
    (1, 5, 2, 3),   # B = 1
    (2, 3, 3, 1),   # H = 1
]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("masked", [False, True])
def test_gradcheck_params_input_state(shape, masked):
    B, T, D, H = shape
    cell = make_cell(D, H)
    x, state, mask = make_inputs(B, T, D, H, mask_p=0.3 if masked else None)
    errors = npnet.gradcheck(cell, x, state, mask)
    assert set(errors) == {"param W_x", "param W_h", "param b", "input x", "state 0", "state 1"}
    assert max(errors.values()) < GRAD_TOL, errors


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
            tc = _kernels.tanh_into(c, np.empty_like(c), through_exp)
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
# masks, chunks, steps

def test_padded_batch_equals_each_sequence_alone():
    D, H, T = 3, 4, 6
    lengths = [6, 3, 1, 4]
    B = len(lengths)
    cell = make_cell(D, H, scale=0.9)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((B, T, D))
    h0, c0 = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    mask = np.arange(T)[None, :] < np.array(lengths)[:, None]
    dout = rng.standard_normal((B, T, H))
    dh_T, dc_T = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    out, (h, c), dx, (dh0, dc0), grads = run_fast(cell, x, (h0, c0), mask, dout, (dh_T, dc_T))

    summed = {k: np.zeros_like(g) for k, g in grads.items()}
    for n, L in enumerate(lengths):
        s = slice(n, n + 1)
        o1, (h1, c1), dx1, (dh1, dc1), g1 = run_fast(cell, x[s, :L], (h0[s], c0[s]), None,
                                                      dout[s, :L], (dh_T[s], dc_T[s]))
        assert_close(out[s, :L], o1, what="out")
        assert np.all(out[n, L:] == 0.0)
        assert_close(h[s], h1, what="h_T")
        assert_close(c[s], c1, what="c_T")
        assert_close(dx[s, :L], dx1, what="dx")
        assert np.all(dx[n, L:] == 0.0)
        assert_close(dh0[s], dh1, what="dh_0")
        assert_close(dc0[s], dc1, what="dc_0")
        for k in summed:
            summed[k] += g1[k]
    for k in grads:
        assert_close(grads[k], summed[k], what=k)


def test_fully_padded_row_carries_state_and_gradient():
    cell = make_cell(2, 3)
    x, (h0, c0), _ = make_inputs(2, 4, 2, 3)
    mask = np.ones((2, 4), bool)
    mask[1] = False
    out, (h, c) = cell.fprop(x, (h0, c0), mask)
    assert np.all(out[1] == 0.0) and np.array_equal(h[1], h0[1]) and np.array_equal(c[1], c0[1])
    dh_T, dc_T = np.ones((2, 3)), np.full((2, 3), 2.0)
    dx, (dh0, dc0) = cell.bprop(np.ones((2, 4, 3)), (dh_T, dc_T))
    assert np.all(dx[1] == 0.0) and np.array_equal(dh0[1], dh_T[1]) and np.array_equal(dc0[1], dc_T[1])


def test_chunks_with_carried_state_equal_whole_sequence():
    cell = make_cell(3, 4)
    x, state, _ = make_inputs(2, 7, 3, 4)
    out, (h, c) = cell.fprop(x, state)
    o1, st = cell.fprop(x[:, :3], state)
    o2, (h2, c2) = cell.fprop(x[:, 3:], st)
    assert_close(np.concatenate([o1, o2], axis=1), out, what="out")
    assert_close(h2, h, what="h")
    assert_close(c2, c, what="c")


@pytest.mark.parametrize("masked", [False, True])
def test_two_chunks_with_state_gradient_handed_back_equal_full_bptt(masked):
    """fprop chunk 1 -> state -> fprop chunk 2; bprop chunk 2 -> dstate0 -> bprop chunk 1 == whole."""
    B, T, D, H, split = 3, 7, 2, 4, 3
    x, state, mask = make_inputs(B, T, D, H, mask_p=0.3 if masked else None)
    rng = np.random.default_rng(11)
    dout = rng.standard_normal((B, T, H))
    dstate = (rng.standard_normal((B, H)), rng.standard_normal((B, H)))
    whole = make_cell(D, H)
    out, st, dx, dst0, grads = run_fast(whole, x, state, mask, dout, dstate)

    first, second = make_cell(D, H), make_cell(D, H)
    m1, m2 = (None, None) if mask is None else (mask[:, :split], mask[:, split:])
    o1, st1 = first.fprop(x[:, :split], state, m1)
    o2, st2 = second.fprop(x[:, split:], st1, m2)
    dx2, dst1 = second.bprop(dout[:, split:], dstate)
    dx1, dst0_chunks = first.bprop(dout[:, :split], dst1)
    assert_close(np.concatenate([o1, o2], axis=1), out, what="out")
    assert_close(np.concatenate([dx1, dx2], axis=1), dx, what="dx")
    for a, b in zip(dst0_chunks, dst0):
        assert_close(a, b, what="dstate0")
    for k in grads:
        assert_close(first.grads[k] + second.grads[k], grads[k], what=k)


def test_step_defaults_to_zero_state():
    cell = make_cell(2, 3)
    x = np.random.default_rng(0).standard_normal((4, 2))
    h, (h2, c) = cell.step(x)
    out, (hf, cf) = cell.fprop(x[:, None, :])
    assert_close(h, out[:, 0])
    assert_close(c, cf)


# ---------------------------------------------------------------------------
# contract: grads accumulate, inputs untouched, dtype, diagnostics

def test_bprop_adds_into_grads_and_leaves_arguments_untouched():
    cell = make_cell(3, 2)
    x, (h0, c0), mask = make_inputs(3, 4, 3, 2, mask_p=0.3)
    rng = np.random.default_rng(4)
    dout, dh, dc = rng.standard_normal((3, 4, 2)), rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    copies = [a.copy() for a in (x, h0, c0, mask, dout, dh, dc)]
    for m in (None, mask):
        cell.zero_grad()
        cell.fprop(x, (h0, c0), m)
        cell.bprop(dout, (dh, dc))
        once = {k: g.copy() for k, g in cell.grads.items()}
        cell.fprop(x, (h0, c0), m)
        cell.bprop(dout, (dh, dc))
        for k in once:
            assert_close(cell.grads[k], 2 * once[k], what=k)
    for a, b in zip((x, h0, c0, mask, dout, dh, dc), copies):
        assert np.array_equal(a, b)


def test_cache_is_independent_of_the_callers_arrays():
    """Changing x or the state in place between fprop and bprop must not change the gradients."""
    cell = make_cell(3, 4)
    x, (h0, c0), _ = make_inputs(2, 5, 3, 4)
    dout = np.ones((2, 5, 4))
    cell.fprop(x, (h0, c0))
    cell.zero_grad()
    dx_ref, _ = cell.bprop(dout)
    g_ref = {k: g.copy() for k, g in cell.grads.items()}
    cell.fprop(x, (h0, c0))
    x += 1.0
    h0 += 1.0
    c0 += 1.0
    cell.zero_grad()
    dx, _ = cell.bprop(dout)
    assert np.array_equal(dx, dx_ref)
    for k in g_ref:
        assert np.array_equal(cell.grads[k], g_ref[k]), k


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


def test_float32_in_float32_out():
    cell = LSTMCell(3, 4, dtype=np.float32, rng=0)
    x = np.random.default_rng(0).standard_normal((2, 5, 3)).astype(np.float32)
    state = cell.init_state(2)
    out, (h, c) = cell.fprop(x, state, np.ones((2, 5), bool))
    dx, (dh0, dc0) = cell.bprop(np.ones((2, 5, 4), np.float32), (h, c))
    h_s, (h_s2, c_s) = cell.step(x[:, 0], state)
    arrays = [out, h, c, dx, dh0, dc0, h_s, c_s, *cell.params.values(), *cell.grads.values()]
    assert all(a.dtype == np.float32 for a in arrays), [a.dtype for a in arrays]
    # and float32 (tanh kernel) agrees with float64 (expit kernel) to single precision
    cell64 = LSTMCell(3, 4, rng=0)
    x64, mask = x.astype(np.float64), np.array([[True] * 5, [False, True, True, True, False]])
    dout = np.random.default_rng(1).standard_normal((2, 5, 4))
    o32, s32, dx32, ds32, g32 = run_fast(cell, x, None, mask, dout.astype(np.float32), None)
    o64, s64, dx64, ds64, g64 = run_fast(cell64, x64, None, mask, dout, None)
    for a, b in [(o32, o64), (s32[1], s64[1]), (dx32, dx64), (ds32[1], ds64[1])] + [(g32[k], g64[k]) for k in g64]:
        assert_close(a, b, tol=1e-5)


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


# ---------------------------------------------------------------------------
# errors

@pytest.fixture
def cell_and_data():
    cell = make_cell(3, 4)
    x, state, _ = make_inputs(2, 5, 3, 4)
    return cell, x, state


@pytest.mark.parametrize("bad, message", [
    (lambda x, s: dict(x=x[0]), r"x must have 3 dimensions"),
    (lambda x, s: dict(x=x[:, :, :2]), r"x must have shape \(B, T, 3\)"),
    (lambda x, s: dict(x=np.where(np.arange(3) == 1, np.nan, x)), r"NaN or inf"),
    (lambda x, s: dict(x=np.where(np.arange(3) == 1, np.inf, x)), r"NaN or inf"),
    (lambda x, s: dict(x=x, state=s[0]), r"must be a tuple \(h, c\)"),
    (lambda x, s: dict(x=x, state=(s[0],)), r"must be a tuple \(h, c\)"),
    (lambda x, s: dict(x=x, state=(s[0], s[1][:1])), r"state c must have shape \(2, 4\)"),
    (lambda x, s: dict(x=x, state=(s[0][:, :3], s[1])), r"state h must have last dimension 4"),
    (lambda x, s: dict(x=x, mask=np.ones((2, 4), bool)), r"mask must have shape \(2, 5\)"),
    (lambda x, s: dict(x=x, mask=np.ones((2, 5), int)), r"mask must be a bool array"),
])
def test_bad_fprop_input_raises(cell_and_data, bad, message):
    cell, x, state = cell_and_data
    kwargs = bad(x, state)
    with pytest.raises(ValueError, match=message):
        cell.fprop(kwargs.pop("x"), **kwargs)


def test_bprop_without_fprop_raises(cell_and_data):
    cell, x, state = cell_and_data
    with pytest.raises(NotForwardedError, match="without a matching fprop"):
        cell.bprop(np.zeros((2, 5, 4)))
    cell.fprop(x, state)
    cell.bprop(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="without a matching fprop"):   # one bprop per fprop
        cell.bprop(np.zeros((2, 5, 4)))


def test_bad_bprop_input_raises_and_keeps_cache(cell_and_data):
    cell, x, state = cell_and_data
    cell.fprop(x, state)
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 5, 4\)"):
        cell.bprop(np.zeros((2, 4, 4)))
    with pytest.raises(ValueError, match=r"dstate .*tuple \(h, c\)"):
        cell.bprop(np.zeros((2, 5, 4)), np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN or inf"):
        cell.bprop(np.full((2, 5, 4), np.nan))
    dx, _ = cell.bprop(np.zeros((2, 5, 4)))     # the cache survived the bad calls
    assert dx.shape == x.shape


def test_bad_step_input_raises(cell_and_data):
    cell, x, state = cell_and_data
    with pytest.raises(ValueError, match="x_t must have 2 dimensions"):
        cell.step(x, state)
    with pytest.raises(ValueError, match="x_t must have last dimension 3"):
        cell.step(x[:, 0, :2], state)
    with pytest.raises(ValueError, match=r"must be a tuple \(h, c\)"):
        cell.step(x[:, 0], state[0])


def test_bad_constructor_arguments():
    with pytest.raises(ValueError, match="input_size and hidden_size"):
        LSTMCell(0, 3)
    with pytest.raises(ValueError, match="float32 or float64"):
        LSTMCell(2, 3, dtype=np.int32)


# ---------------------------------------------------------------------------
# numerics

def test_long_sequence_with_saturated_gates_is_finite_and_silent():
    """10,000 steps with pre-activations in the hundreds: no overflow warnings, finite values."""
    T, B, D, H = 10_000, 1, 3, 4
    cell = LSTMCell(D, H, rng=0)
    for p in cell.params.values():
        p *= 100.0
    x = 3.0 * np.random.default_rng(0).standard_normal((B, T, D))
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        out, (h, c) = cell.fprop(x)
        dx, (dh0, dc0) = cell.bprop(np.ones((B, T, H)))
    a = np.abs(x[:, :, :] @ cell.params["W_x"]).max()
    assert a > 100.0                            # the pre-activations really are large
    for arr in (out, h, c, dx, dh0, dc0, *cell.grads.values()):
        assert np.all(np.isfinite(arr))
    assert np.all(np.abs(out) <= 1.0)
