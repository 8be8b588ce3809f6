"""Recurrent dropout in the cells: one mask u (B, H) per fprop on h_{t-1} in the recurrent term.

- fast fprop/bprop equal the reference step functions run with the same u (1e-12, float64), with
  and without padding masks and initial states, with float64 tanh through exp and through np.tanh;
- the fast cell and the reference pass a numerical gradient check with a fixed u;
- u is drawn once per fprop from the cell's rng as [r < 1 - p] / (1 - p) and used at every step;
  eval() switches it off; u of ones is the plain cell bit for bit; bad arguments are refused.
"""
import numpy as np
import pytest

import npnet
from npnet.cells import _kernels, reference
from npnet.layer import NpnetError, ShapeError

EXACT = 1e-12       # fast path against reference: same math, different summation order
GRAD_TOL = 1e-6     # central differences in float64
P = 0.4

CELLS = {
    "rnn_tanh": (lambda D, H, **kw: npnet.BasicRNNCell(D, H, "tanh", rng=0, **kw),
                 lambda x, s, p, m, u: reference.rnn_forward(x, s, p, m, "tanh", u), reference.rnn_backward),
    "rnn_relu": (lambda D, H, **kw: npnet.BasicRNNCell(D, H, "relu", rng=0, **kw),
                 lambda x, s, p, m, u: reference.rnn_forward(x, s, p, m, "relu", u), reference.rnn_backward),
    "lstm": (lambda D, H, **kw: npnet.LSTMCell(D, H, rng=0, **kw),
             lambda x, s, p, m, u: reference.lstm_forward(x, s, p, m, u), reference.lstm_backward),
    "gru": (lambda D, H, **kw: npnet.GRUCell(D, H, rng=0, **kw),
            lambda x, s, p, m, u: reference.gru_forward(x, s, p, m, u), reference.gru_backward),
    "gru_reset_before": (lambda D, H, **kw: npnet.GRUCell(D, H, rng=0, reset_after=False, **kw),
                         lambda x, s, p, m, u: reference.gru_forward(x, s, p, m, u), reference.gru_backward),
}
SHAPES = [(1, 1, 1, 1), (3, 5, 2, 4), (4, 7, 3, 5), (1, 6, 2, 3)]   # (B, T, D, H)


def random_cell(name, D, H, seed=0, **kw):
    """The cell with random parameters (biases too), so every term of every equation matters."""
    cell = CELLS[name][0](D, H, **kw)
    prng = np.random.default_rng(seed + 100)
    for p in cell.params.values():
        p[...] = 0.8 * prng.standard_normal(p.shape)
    return cell


def bernoulli_mask(rng, B, H, p=P):
    return (rng.random((B, H)) < 1.0 - p) / (1.0 - p)          # (B, H) 0 or 1 / (1 - p)


def padding_mask(kind, B, T, rng):
    if kind is None:
        return None
    if kind == "ragged":
        lengths = np.maximum(1, T - np.arange(B))
        return np.arange(T)[None, :] < lengths[:, None]
    return rng.random((B, T)) < 0.6


def state_of(cell, B, rng):
    parts = tuple(0.5 * rng.standard_normal((B, cell.hidden_size)) for _ in cell.state_names)
    return cell.pack_state(parts)


def parts(state):
    return state if isinstance(state, tuple) else (state,)


def close(a, b, what):
    err = np.max(np.abs(a - b)) / max(1.0, np.max(np.abs(b)))
    assert err < EXACT, f"{what}: {err:.2e}"


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mask_kind", [None, "ragged", "scattered"])
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("exp_tanh_min", [0, 10 ** 9])
def test_fast_equals_reference_with_a_dropout_mask(name, shape, mask_kind, with_state, exp_tanh_min,
                                                   monkeypatch):
    monkeypatch.setattr(_kernels, "EXP_TANH_MIN", exp_tanh_min)
    B, T, D, H = shape
    rng = np.random.default_rng(1)
    cell = random_cell(name, D, H)
    x = rng.standard_normal((B, T, D))
    mask = padding_mask(mask_kind, B, T, rng)
    state0 = state_of(cell, B, rng) if with_state else None
    u = bernoulli_mask(rng, B, H)
    dout, dstate = rng.standard_normal((B, T, H)), state_of(cell, B, rng)

    out, state_T = cell.fprop(x, state0, mask, dropout_mask=u)
    dx, dstate0 = cell.bprop(dout, dstate)
    r_out, r_state_T, r_cache = CELLS[name][1](x, state0, cell.params, mask, u)
    r_grads = {k: np.zeros_like(v) for k, v in cell.params.items()}
    r_dx, r_dstate0 = CELLS[name][2](dout, dstate, r_cache, r_grads)

    close(out, r_out, "out")
    for a, b in zip(parts(state_T), parts(r_state_T)):
        close(a, b, "final state")
    close(dx, r_dx, "dx")
    for a, b in zip(parts(dstate0), parts(r_dstate0)):
        close(a, b, "dstate0")
    for k in r_grads:
        close(cell.grads[k], r_grads[k], f"grad {k}")


def test_the_mask_changes_the_result():
    """The test above can fail: a different mask (or none) gives other outputs and gradients."""
    rng = np.random.default_rng(2)
    cell = random_cell("lstm", 2, 4)
    x = rng.standard_normal((3, 5, 2))
    u = bernoulli_mask(rng, 3, 4)
    out_u, _ = cell.fprop(x, dropout_mask=u)
    cell.clear_cache()
    r_out, _, _ = reference.lstm_forward(x, None, cell.params)                # no dropout
    assert np.max(np.abs(out_u - r_out)) > 1e-3


class ReferenceLayer:
    """The reference loop with a fixed dropout mask, dressed as a layer for npnet.gradcheck."""
    dtype = np.dtype(np.float64)

    def __init__(self, name, cell, u):
        self.name, self.cell, self.u = name, cell, u
        self.params = cell.params
        self.grads = {k: np.zeros_like(v) for k, v in cell.params.items()}

    def init_state(self, B):
        return self.cell.init_state(B)

    def zero_grad(self):
        for g in self.grads.values():
            g[...] = 0.0

    def fprop(self, x, state=None, mask=None):
        out, state_T, self.cache = CELLS[self.name][1](x, state, self.params, mask, self.u)
        return out, state_T

    def bprop(self, dout, dstate=None):
        return CELLS[self.name][2](dout, dstate, self.cache, self.grads)


@pytest.mark.parametrize("name", CELLS)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 4, 2, 3), (1, 5, 2, 1)])
@pytest.mark.parametrize("mask_kind", [None, "ragged"])
@pytest.mark.parametrize("fast", [True, False])
def test_gradcheck_with_a_fixed_mask(name, shape, mask_kind, fast):
    B, T, D, H = shape
    rng = np.random.default_rng(3)
    cell = random_cell(name, D, H, recurrent_dropout=P)
    x = rng.choice([-1.0, 1.0], (B, T, D)) * rng.uniform(0.5, 1.5, (B, T, D))
    u = bernoulli_mask(rng, B, H)
    u[0, 0] = 1.0 / (1.0 - P)                                      # at least one unit kept
    state0, mask = state_of(cell, B, rng), padding_mask(mask_kind, B, T, rng)
    if fast:
        errors = npnet.gradcheck(cell, x, state0, mask, dropout_mask=u)
    else:
        errors = npnet.gradcheck(ReferenceLayer(name, cell, u), x, state0, mask)
    assert len(errors) == len(cell.params) + 1 + len(cell.state_names)
    assert max(errors.values()) < GRAD_TOL, errors


def test_gradcheck_catches_a_backward_without_the_mask(monkeypatch):
    """dh_{t-1} without the factor u is a wrong gradient, and the check sees it."""
    monkeypatch.setattr(reference, "recurrent_input_backward", lambda dh_rec, u: dh_rec)
    rng = np.random.default_rng(4)
    cell = random_cell("rnn_tanh", 2, 3)
    u = bernoulli_mask(rng, 2, 3)
    errors = npnet.gradcheck(ReferenceLayer("rnn_tanh", cell, u), rng.standard_normal((2, 4, 2)),
                             state_of(cell, 2, rng))
    assert max(errors.values()) > 1e-3, errors


@pytest.mark.parametrize("name", CELLS)
def test_training_draws_one_mask_per_fprop_from_the_cells_rng(name):
    B, T, D, H = 3, 6, 2, 5
    rng = np.random.default_rng(5)
    cell = random_cell(name, D, H, recurrent_dropout=P)
    x = rng.standard_normal((B, T, D))
    twin = np.random.Generator(np.random.PCG64())
    twin.bit_generator.state = cell.rng.bit_generator.state
    u = (twin.random((B, H)) < 1.0 - P).astype(np.float64) / (1.0 - P)    # the documented draw
    out, _ = cell.fprop(x)
    assert cell.rng.bit_generator.state == twin.bit_generator.state       # exactly one (B, H) draw
    cell.clear_cache()
    expected, _ = cell.fprop(x, dropout_mask=u)
    assert np.array_equal(out, expected)
    cell.clear_cache()
    again, _ = cell.fprop(x)                                               # a new mask next call
    assert not np.array_equal(again, out)


@pytest.mark.parametrize("name", CELLS)
def test_eval_switches_dropout_off_and_draws_nothing(name):
    rng = np.random.default_rng(6)
    cell = random_cell(name, 2, 4, recurrent_dropout=0.5)
    plain = random_cell(name, 2, 4)
    x = rng.standard_normal((3, 5, 2))
    before = cell.rng.bit_generator.state
    out, _ = cell.eval().fprop(x)
    assert cell.rng.bit_generator.state == before
    assert np.array_equal(out, plain.fprop(x)[0])
    assert cell.train().training and not np.array_equal(cell.fprop(x)[0], out)


@pytest.mark.parametrize("name", CELLS)
def test_a_mask_of_ones_is_the_plain_cell_bit_for_bit(name):
    rng = np.random.default_rng(7)
    cell = random_cell(name, 3, 4)
    x, dout = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 4))
    out, _ = cell.fprop(x)
    dx, _ = cell.bprop(dout)
    grads = {k: g.copy() for k, g in cell.grads.items()}
    cell.zero_grad()
    out1, _ = cell.fprop(x, dropout_mask=np.ones((2, 4)))
    dx1, _ = cell.bprop(dout)
    assert np.array_equal(out, out1) and np.array_equal(dx, dx1)
    for k in grads:
        assert np.array_equal(grads[k], cell.grads[k]), k


@pytest.mark.parametrize("name", CELLS)
def test_a_zero_mask_removes_the_recurrent_term_only(name):
    """u = 0: every step sees h_{t-1} W_h = 0; the LSTM's c and the GRU's carry z h_{t-1} still run."""
    rng = np.random.default_rng(8)
    cell = random_cell(name, 2, 3)
    x = rng.standard_normal((2, 4, 2))
    out, _ = cell.fprop(x, dropout_mask=np.zeros((2, 3)))
    cell.clear_cache()
    cell.params["W_h"][...] = 0.0
    if "b_hn" in cell.params:                                      # q = h_{t-1} W_hn + b_hn: b_hn stays
        np.testing.assert_allclose(out, cell.fprop(x)[0], rtol=0, atol=1e-15)
    else:
        assert np.array_equal(out, cell.fprop(x)[0])


def test_float32_stays_float32():
    cell = npnet.LSTMCell(2, 3, dtype=np.float32, rng=0, recurrent_dropout=0.3)
    out, (h, c) = cell.fprop(np.ones((2, 4, 2), np.float32))
    dx, (dh, dc) = cell.bprop(np.ones((2, 4, 3), np.float32))
    assert {a.dtype for a in (out, h, c, dx, dh, dc, *cell.grads.values())} == {np.dtype(np.float32)}


@pytest.mark.parametrize("bad", [1.0, -0.1, float("nan"), "0.1", True])
@pytest.mark.parametrize("make", [npnet.BasicRNNCell, npnet.LSTMCell, npnet.GRUCell])
def test_bad_rates_are_refused(make, bad):
    with pytest.raises(NpnetError, match="recurrent_dropout"):
        make(2, 3, recurrent_dropout=bad)


def test_a_mask_of_the_wrong_shape_is_refused():
    cell = npnet.BasicRNNCell(2, 3, rng=0)
    with pytest.raises(ShapeError, match=r"dropout_mask must have shape \(2, 3\)"):
        cell.fprop(np.ones((2, 4, 2)), dropout_mask=np.ones((1, 3)))
    with pytest.raises(ShapeError, match="dropout_mask"):
        cell.fprop(np.ones((2, 4, 2)), dropout_mask=np.ones((2, 4)))
    assert not cell.has_cache


@pytest.mark.parametrize("name", CELLS)
def test_config_carries_the_rate_only_when_on(name):
    on, off = random_cell(name, 2, 3, recurrent_dropout=0.25), random_cell(name, 2, 3)
    assert on.get_config()["recurrent_dropout"] == 0.25 and "recurrent_dropout" not in off.get_config()
    assert type(on)(**on.get_config()).recurrent_dropout == 0.25
