"""One contract for every recurrent cell: the fast kernels equal the textbook reference.

Parametrised over (cell, reference) in the manner of Chainer's FunctionTestCase: each case only
says how to build the cell and which functions of npnet.cells.reference compute the same thing.
For every case, in float64:

- fast fprop/bprop equal the reference loop to 1e-12 (outputs, final states, dx, the gradients of
  the initial states, every parameter gradient) on shapes that include B = T = D = H = 1, with and
  without masks (ragged rows, a row with one real step, scattered padding), with and without
  initial states, with float64 tanh through exp and through np.tanh;
- the reference itself passes a numerical gradient check;
- step() run T times equals fprop (step is the reference step function);
- the state-gradient diagnostics equal the reference's total state gradients.

What is specific to one cell (initialisation, the GRU's reset placement, PyTorch values) stays in
test_rnn.py, test_lstm.py and test_gru.py.
"""
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pytest

import npnet
from npnet.cells import _kernels, reference

EXACT = 1e-12       # fast path against reference: same math, different summation order
GRAD_TOL = 1e-6     # central differences in float64


@dataclass(frozen=True)
class Case:
    """A cell class and the reference functions that compute what it computes."""
    make: Callable            # (D, H, dtype) -> cell
    forward: Callable         # (x, state, params, mask) -> (out, state_T, cache)
    backward: Callable        # (dout, dstate, cache, grads, state_grads=None) -> (dx, dstate0)


CASES = {
    "rnn_tanh": Case(lambda D, H, dtype=np.float64: npnet.BasicRNNCell(D, H, "tanh", dtype=dtype, rng=0),
                     lambda x, s, p, m: reference.rnn_forward(x, s, p, m, "tanh"), reference.rnn_backward),
    "rnn_relu": Case(lambda D, H, dtype=np.float64: npnet.BasicRNNCell(D, H, "relu", dtype=dtype, rng=0),
                     lambda x, s, p, m: reference.rnn_forward(x, s, p, m, "relu"), reference.rnn_backward),
    "lstm": Case(lambda D, H, dtype=np.float64: npnet.LSTMCell(D, H, dtype=dtype, rng=0),
                 reference.lstm_forward, reference.lstm_backward),
    "gru": Case(lambda D, H, dtype=np.float64: npnet.GRUCell(D, H, dtype=dtype, rng=0),
                reference.gru_forward, reference.gru_backward),
}
SHAPES = [(1, 1, 1, 1), (3, 5, 2, 4), (4, 7, 3, 5), (2, 1, 3, 2), (1, 6, 2, 3)]   # (B, T, D, H)
MASKS = [None, "ragged", "scattered"]


def random_cell(case, D, H, seed=0, scale=0.8):
    """The cell with random parameters (biases too), so every term of every equation matters."""
    cell = case.make(D, H)
    prng = np.random.default_rng(seed + 100)
    for p in cell.params.values():
        p[...] = scale * prng.standard_normal(p.shape)
    return cell


def make_mask(kind, B, T, rng):
    """None; "ragged": prefix lengths, the last row with one real step; "scattered": any pattern."""
    if kind is None:
        return None
    if kind == "ragged":
        lengths = np.maximum(1, T - np.arange(B) * max(1, T // max(B - 1, 1)))
        lengths[-1] = 1
        return np.arange(T)[None, :] < lengths[:, None]                   # (B, T)
    mask = rng.random((B, T)) < 0.6
    mask[0, 0] = False if T > 1 else mask[0, 0]
    return mask


def make_state(cell, B, rng):
    parts = tuple(0.5 * rng.standard_normal((B, cell.hidden_size)) for _ in cell.state_names)
    return cell.pack_state(parts)


def as_parts(state):
    return state if isinstance(state, tuple) else (state,)


def assert_close(got, want, what, tol=EXACT):
    """max |got - want| <= tol * max(1, max |want|)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    scale = max(1.0, float(np.max(np.abs(want))))
    err = float(np.max(np.abs(got - want)))
    assert err <= tol * scale, f"{what}: max |diff| {err:.3g} > {tol:g} * {scale:.3g}"


def zero_grads(params):
    return {k: np.zeros_like(v) for k, v in params.items()}


# ------------------------------------------------------------------ fast equals reference
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mask_kind", MASKS)
@pytest.mark.parametrize("with_state", [False, True])
@pytest.mark.parametrize("exp_tanh_min", [0, 10 ** 9])      # float64 tanh through exp / np.tanh
def test_fast_equals_reference(name, shape, mask_kind, with_state, exp_tanh_min, monkeypatch):
    case = CASES[name]
    B, T, D, H = shape
    rng = np.random.default_rng(sum(shape))
    cell = random_cell(case, D, H)
    monkeypatch.setattr(_kernels, "EXP_TANH_MIN", exp_tanh_min)
    x = rng.standard_normal((B, T, D))
    mask = make_mask(mask_kind, B, T, rng)
    state0 = make_state(cell, B, rng) if with_state else None
    dout = rng.standard_normal((B, T, H))
    dstate = make_state(cell, B, rng) if with_state else None

    out, state_T = cell.fprop(x, state0, mask)
    dx, dstate0 = cell.bprop(dout, dstate)
    r_out, r_state_T, r_cache = case.forward(x, state0, cell.params, mask)
    r_grads = zero_grads(cell.params)
    r_dx, r_dstate0 = case.backward(dout, dstate, r_cache, r_grads)

    assert_close(out, r_out, "out")
    assert_close(dx, r_dx, "dx")
    for k, (a, b) in enumerate(zip(as_parts(state_T), as_parts(r_state_T))):
        assert_close(a, b, f"final state {cell.state_names[k]}")
    for k, (a, b) in enumerate(zip(as_parts(dstate0), as_parts(r_dstate0))):
        assert_close(a, b, f"gradient of initial state {cell.state_names[k]}")
    assert set(cell.grads) == set(r_grads)
    for k in cell.grads:
        assert_close(cell.grads[k], r_grads[k], f"grad {k}")


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("mask_kind", MASKS)
def test_state_grad_norms_equal_reference(name, mask_kind):
    """cell.track_state_grads: ||dL/d state_t|| per row and step, as the reference's totals."""
    case = CASES[name]
    B, T, D, H = 3, 5, 2, 4
    rng = np.random.default_rng(5)
    cell = random_cell(case, D, H)
    x, mask = rng.standard_normal((B, T, D)), make_mask(mask_kind, B, T, rng)
    state0, dstate = make_state(cell, B, rng), make_state(cell, B, rng)
    dout = rng.standard_normal((B, T, H))
    cell.track_state_grads = True
    cell.fprop(x, state0, mask)
    cell.bprop(dout, dstate)
    _, _, r_cache = case.forward(x, state0, cell.params, mask)
    totals = {}
    case.backward(dout, dstate, r_cache, zero_grads(cell.params), state_grads=totals)
    assert set(cell.state_grad_norms) == set(totals) == set(cell.state_names)
    for k in totals:
        assert_close(cell.state_grad_norms[k], np.linalg.norm(totals[k], axis=2), f"norms {k}")


# ------------------------------------------------------------- the reference is right
class ReferenceLayer:
    """The reference loop dressed as a layer, so that npnet.gradcheck can check it."""

    dtype = np.dtype(np.float64)

    def __init__(self, case, cell):
        self.case, self.cell = case, cell
        self.params = cell.params
        self.grads = zero_grads(cell.params)

    def init_state(self, B):
        return self.cell.init_state(B)

    def zero_grad(self):
        for g in self.grads.values():
            g[...] = 0.0

    def fprop(self, x, state=None, mask=None):
        out, state_T, self.cache = self.case.forward(x, state, self.params, mask)
        return out, state_T

    def bprop(self, dout, dstate=None):
        return self.case.backward(dout, dstate, self.cache, self.grads)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 4, 2, 3)])
@pytest.mark.parametrize("mask_kind", MASKS)
def test_reference_passes_gradcheck(name, shape, mask_kind):
    case = CASES[name]
    B, T, D, H = shape
    rng = np.random.default_rng(7)
    cell = random_cell(case, D, H)
    x = rng.choice([-1.0, 1.0], (B, T, D)) * rng.uniform(0.5, 1.5, (B, T, D))   # |x| >= 0.5: dW_x not ~0
    mask = make_mask(mask_kind, B, T, rng)
    errors = npnet.gradcheck(ReferenceLayer(case, cell), x, make_state(cell, B, rng), mask)
    n_states = len(cell.state_names)
    assert set(errors) == {f"param {k}" for k in cell.params} | {"input x"} | {f"state {i}" for i in range(n_states)}
    assert max(errors.values()) < GRAD_TOL, errors


def test_gradcheck_of_the_reference_can_fail(monkeypatch):
    """A wrong derivative in a reference step function is caught (here: tanh' dropped)."""
    def wrong(dh, cache, grads):
        cache = dict(cache, h=np.zeros_like(cache["h"]))           # 1 - h^2 becomes 1
        return good(dh, cache, grads)
    good = reference.rnn_step_backward
    monkeypatch.setattr(reference, "rnn_step_backward", wrong)
    case = CASES["rnn_tanh"]
    cell = random_cell(case, 2, 3)
    x = np.random.default_rng(0).standard_normal((2, 3, 2))
    errors = npnet.gradcheck(ReferenceLayer(case, cell), x)
    assert max(errors.values()) > 1e-3, errors


# ---------------------------------------------------------------------- step == fprop
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("with_state", [False, True])
def test_step_repeated_equals_fprop_and_keeps_the_cache(name, with_state):
    case = CASES[name]
    B, T, D, H = 3, 5, 2, 4
    rng = np.random.default_rng(9)
    cell = random_cell(case, D, H)
    x = rng.standard_normal((B, T, D))
    state0 = make_state(cell, B, rng) if with_state else None
    dout = rng.standard_normal((B, T, H))
    out, state_T = cell.fprop(x, state0)
    dx_ref, _ = cell.bprop(dout)
    grads_ref = {k: g.copy() for k, g in cell.grads.items()}

    cell.zero_grad()
    cell.fprop(x, state0)
    state = state0
    for t in range(T):
        h, state = cell.step(x[:, t], state)
        assert_close(h, out[:, t], f"step {t}")
    for k, (a, b) in enumerate(zip(as_parts(state), as_parts(state_T))):
        assert_close(a, b, f"final state {cell.state_names[k]}")
    dx, _ = cell.bprop(dout)                     # the fprop's cache survived the step calls
    assert np.array_equal(dx, dx_ref)
    for k in grads_ref:
        assert np.array_equal(cell.grads[k], grads_ref[k])


@pytest.mark.parametrize("name", CASES)
def test_step_keeps_float32(name):
    case = CASES[name]
    cell = case.make(2, 3, np.float32)
    h, state = cell.step(np.ones((4, 2), np.float32))
    assert h.dtype == np.float32 and all(s.dtype == np.float32 for s in as_parts(state))
