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
    "gru_reset_before": Case(lambda D, H, dtype=np.float64: npnet.GRUCell(D, H, dtype=dtype, rng=0,
                                                                          reset_after=False),
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


# --------------------------------------------------------- the rest of the cell contract
@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (3, 4, 2, 3), (1, 5, 2, 1)])
@pytest.mark.parametrize("mask_kind", [None, "ragged"])
def test_fast_cell_passes_gradcheck(name, shape, mask_kind):
    case = CASES[name]
    B, T, D, H = shape
    rng = np.random.default_rng(3)
    cell = random_cell(case, D, H)
    x = rng.choice([-1.0, 1.0], (B, T, D)) * rng.uniform(0.5, 1.5, (B, T, D))
    errors = npnet.gradcheck(cell, x, make_state(cell, B, rng), make_mask(mask_kind, B, T, rng))
    assert max(errors.values()) < GRAD_TOL, errors


def run(cell, x, state0, mask, dout, dstate):
    cell.zero_grad()
    out, state_T = cell.fprop(x, state0, mask)
    dx, dstate0 = cell.bprop(dout, dstate)
    return out, as_parts(state_T), dx, as_parts(dstate0), {k: g.copy() for k, g in cell.grads.items()}


@pytest.mark.parametrize("name", CASES)
def test_padded_batch_equals_each_sequence_alone(name):
    case = CASES[name]
    lengths, T, D, H = [6, 2, 1, 4], 6, 3, 4
    B = len(lengths)
    rng = np.random.default_rng(4)
    cell = random_cell(case, D, H)
    x, dout = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, H))
    mask = np.arange(T)[None, :] < np.array(lengths)[:, None]
    x[~mask] = 99.0                                               # padding values must not matter
    state0, dstate = make_state(cell, B, rng), make_state(cell, B, rng)
    out, state_T, dx, dstate0, grads = run(cell, x, state0, mask, dout, dstate)
    assert np.all(out[~mask] == 0.0) and np.all(dx[~mask] == 0.0)
    summed = {k: np.zeros_like(g) for k, g in grads.items()}
    row = lambda state, n: cell.pack_state(tuple(s[n:n + 1] for s in as_parts(state)))
    for n, L in enumerate(lengths):
        o1, s1, dx1, ds1, g1 = run(cell, x[n:n + 1, :L], row(state0, n), None, dout[n:n + 1, :L], row(dstate, n))
        assert_close(out[n:n + 1, :L], o1, "out")
        assert_close(dx[n:n + 1, :L], dx1, "dx")
        for a, b in zip(state_T, s1):
            assert_close(a[n:n + 1], b, "final state")
        for a, b in zip(dstate0, ds1):
            assert_close(a[n:n + 1], b, "gradient of initial state")
        for k in summed:
            summed[k] += g1[k]
    for k in grads:
        assert_close(grads[k], summed[k], f"grad {k}")


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("mask_kind", [None, "scattered"])
def test_two_chunks_with_state_and_state_gradient_handed_on_equal_full_bptt(name, mask_kind):
    """fprop chunk 1 -> state -> fprop chunk 2; bprop chunk 2 -> dstate0 -> bprop chunk 1 == whole."""
    case = CASES[name]
    B, T, D, H, split = 3, 7, 2, 4, 3
    rng = np.random.default_rng(11)
    x, dout = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, H))
    mask = make_mask(mask_kind, B, T, rng)
    whole, first, second = (random_cell(case, D, H) for _ in range(3))
    state0, dstate = make_state(whole, B, rng), make_state(whole, B, rng)
    out, _, dx, dstate0, grads = run(whole, x, state0, mask, dout, dstate)
    m1, m2 = (None, None) if mask is None else (mask[:, :split], mask[:, split:])
    o1, state_1 = first.fprop(x[:, :split], state0, m1)
    o2, _ = second.fprop(x[:, split:], state_1, m2)
    dx2, dstate_1 = second.bprop(dout[:, split:], dstate)
    dx1, dstate0_chunks = first.bprop(dout[:, :split], dstate_1)
    assert_close(np.concatenate([o1, o2], axis=1), out, "out")
    assert_close(np.concatenate([dx1, dx2], axis=1), dx, "dx")
    for a, b in zip(as_parts(dstate0_chunks), dstate0):
        assert_close(a, b, "gradient of initial state")
    for k in grads:
        assert_close(first.grads[k] + second.grads[k], grads[k], f"grad {k}")


@pytest.mark.parametrize("name", CASES)
def test_bprop_adds_into_grads_and_leaves_its_arguments_untouched(name):
    case = CASES[name]
    B, T, D, H = 3, 4, 3, 2
    rng = np.random.default_rng(4)
    cell = random_cell(case, D, H)
    x, dout, mask = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, H)), make_mask("ragged", B, T, rng)
    state0, dstate = make_state(cell, B, rng), make_state(cell, B, rng)
    arguments = [x, dout, mask, *as_parts(state0), *as_parts(dstate)]
    copies = [a.copy() for a in arguments]
    for m in (None, mask):
        cell.zero_grad()
        cell.fprop(x, state0, m)
        cell.bprop(dout, dstate)
        once = {k: g.copy() for k, g in cell.grads.items()}
        cell.fprop(x, state0, m)
        cell.bprop(dout, dstate)                                 # no zero_grad in between
        for k in once:
            assert_close(cell.grads[k], 2 * once[k], f"grad {k}")
        cell.zero_grad()
        assert all(not g.any() for g in cell.grads.values())
    for a, b in zip(arguments, copies):
        assert np.array_equal(a, b)


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("B, T", [(1, 4), (3, 1), (1, 1), (2, 5)])
def test_cache_is_independent_of_the_callers_arrays(name, B, T):
    """Editing x, the state or the returned arrays in place after fprop does not change bprop."""
    case = CASES[name]
    rng = np.random.default_rng(5)
    cell = random_cell(case, 3, 4)
    x, dout, state0 = rng.standard_normal((B, T, 3)), rng.standard_normal((B, T, 4)), make_state(cell, B, rng)
    _, _, dx_ref, dstate0_ref, grads_ref = run(cell, x, state0, None, dout, None)
    cell.zero_grad()
    out, state_T = cell.fprop(x, state0)
    for a in (out, x, *as_parts(state_T), *as_parts(state0)):
        a += 7.0
    dx, dstate0 = cell.bprop(dout)
    assert np.array_equal(dx, dx_ref)
    assert all(np.array_equal(a, b) for a, b in zip(as_parts(dstate0), dstate0_ref))
    for k in grads_ref:
        assert np.array_equal(cell.grads[k], grads_ref[k])


@pytest.mark.parametrize("name", CASES)
def test_fully_padded_row_carries_state_and_gradient_exactly(name):
    cell = random_cell(CASES[name], 2, 3)
    rng = np.random.default_rng(8)
    x, state0, dstate = rng.standard_normal((2, 4, 2)), make_state(cell, 2, rng), make_state(cell, 2, rng)
    mask = np.ones((2, 4), bool)
    mask[1] = False
    out, state_T = cell.fprop(x, state0, mask)
    assert np.all(out[1] == 0.0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(as_parts(state_T), as_parts(state0)))   # bit for bit
    dx, dstate0 = cell.bprop(np.ones((2, 4, 3)), dstate)
    assert np.all(dx[1] == 0.0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(as_parts(dstate0), as_parts(dstate)))


@pytest.mark.parametrize("name", CASES)
def test_params_are_read_on_every_call(name):
    """Optimisers update params in place; the next fprop must see it."""
    cell = random_cell(CASES[name], 3, 4)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    out1, _ = cell.fprop(x)
    cell.params["b"] += 1.0
    out2, _ = cell.fprop(x)
    assert not np.allclose(out1, out2)


@pytest.mark.parametrize("name", CASES)
def test_float32_stays_float32_and_agrees_with_float64(name):
    case = CASES[name]
    B, T, D, H = 2, 5, 3, 4
    rng = np.random.default_rng(6)
    cell64 = random_cell(case, D, H, scale=0.5)
    cell32 = case.make(D, H, np.float32)
    for k in cell64.params:
        cell32.params[k][...] = cell64.params[k]
    x, dout, mask = rng.standard_normal((B, T, D)), rng.standard_normal((B, T, H)), make_mask("ragged", B, T, rng)
    got = run(cell32, x.astype(np.float32), None, mask, dout.astype(np.float32), None)
    want = run(cell64, x, None, mask, dout, None)
    h, state = cell32.step(x[:, 0].astype(np.float32))
    arrays = [got[0], *got[1], got[2], *got[3], *got[4].values(), *cell32.params.values(), h, *as_parts(state)]
    assert all(a.dtype == np.float32 for a in arrays), [a.dtype for a in arrays]
    for a, b in [(got[0], want[0]), (got[2], want[2])] + [(got[4][k], want[4][k]) for k in want[4]]:
        assert_close(a, b, "float32 against float64", tol=1e-5)


@pytest.mark.parametrize("name", CASES)
def test_long_sequence_with_large_preactivations_is_finite_and_silent(name):
    """10,000 steps with pre-activations in the hundreds: no overflow warning (errors under pytest)."""
    case = CASES[name]
    B, T, D, H = 2, 10_000, 3, 4
    rng = np.random.default_rng(0)
    cell = random_cell(case, D, H, scale=30.0)
    if name == "rnn_relu":
        cell.params["W_h"][...] = np.eye(H)                      # the IRNN: bounded by the input sum
    x = 3.0 * rng.standard_normal((B, T, D))
    mask = np.ones((B, T), bool)
    mask[1, 5000:] = False
    out, state_T = cell.fprop(x, None, mask)
    dx, dstate0 = cell.bprop(rng.standard_normal((B, T, H)))
    assert np.abs(x[0, :, :] @ cell.params["W_x"]).max() > 100.0   # the pre-activations really are large
    for a in (out, dx, *as_parts(state_T), *as_parts(dstate0), *cell.grads.values()):
        assert np.all(np.isfinite(a))


# -------------------------------------------------------------------------------- errors
BAD_FPROP = [
    (lambda x, s: dict(x=x[0]), r"x must have 3 dimensions"),
    (lambda x, s: dict(x=x[:, :, :2]), r"x must have shape \(B, T, 3\)"),
    (lambda x, s: dict(x=x[:0]), r"B >= 1"),
    (lambda x, s: dict(x=np.where(np.arange(3) == 1, np.nan, x)), r"x contains NaN or inf"),
    (lambda x, s: dict(x=np.where(np.arange(3) == 1, np.inf, x)), r"x contains NaN or inf"),
    (lambda x, s: dict(x=x.astype(complex)), r"real numbers"),
    (lambda x, s: dict(x=x, state=tuple(p[:1] for p in s)), r"state h must have shape \(2, 4\)|must be"),
    (lambda x, s: dict(x=x, state=tuple(p[:, :3] for p in s)), r"state h must have last dimension 4|must be"),
    (lambda x, s: dict(x=x, state=tuple(np.full_like(p, np.nan) for p in s)), r"state h contains NaN or inf"),
    (lambda x, s: dict(x=x, mask=np.ones((2, 4), bool)), r"mask must have shape \(2, 5\)"),
    (lambda x, s: dict(x=x, mask=np.ones((2, 5))), r"mask must be a bool array of shape \(2, 5\)"),
]


@pytest.mark.parametrize("name", CASES)
@pytest.mark.parametrize("bad, message", BAD_FPROP)
def test_bad_fprop_input_raises_a_clear_error(name, bad, message):
    cell = random_cell(CASES[name], 3, 4)
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    parts = as_parts(make_state(cell, 2, np.random.default_rng(1)))
    kwargs = bad(x, parts)
    if "state" in kwargs:
        kwargs["state"] = cell.pack_state(kwargs["state"])
    with pytest.raises(npnet.ShapeError, match=message):
        cell.fprop(kwargs.pop("x"), **kwargs)


@pytest.mark.parametrize("name", CASES)
def test_wrong_state_structure_names_what_was_expected(name):
    cell = random_cell(CASES[name], 3, 4)
    x, h = np.zeros((2, 5, 3)), np.zeros((2, 4))
    wrong = h if len(cell.state_names) == 2 else (h, h)
    with pytest.raises(npnet.ShapeError, match=r"must be (a tuple \(h, c\)|one array h)"):
        cell.fprop(x, wrong)


@pytest.mark.parametrize("name", CASES)
def test_one_bprop_per_fprop(name):
    cell = random_cell(CASES[name], 3, 4)
    with pytest.raises(npnet.NotForwardedError, match="without a matching fprop"):
        cell.bprop(np.zeros((2, 5, 4)))
    cell.fprop(np.zeros((2, 5, 3)))
    cell.bprop(np.zeros((2, 5, 4)))
    with pytest.raises(npnet.NotForwardedError, match="without a matching fprop"):
        cell.bprop(np.zeros((2, 5, 4)))


@pytest.mark.parametrize("name", CASES)
def test_bad_bprop_arguments_raise_and_keep_the_cache(name):
    cell = random_cell(CASES[name], 3, 4)
    cell.fprop(np.ones((2, 5, 3)))
    bad_dstate = cell.pack_state(tuple(np.zeros((3, 4)) for _ in cell.state_names))
    for dout, dstate, message in [(np.zeros((2, 4, 4)), None, r"dout must have shape \(2, 5, 4\)"),
                                  (np.full((2, 5, 4), np.nan), None, r"dout contains NaN or inf"),
                                  (np.zeros((2, 5, 4)), bad_dstate, r"dstate h must have shape \(2, 4\)")]:
        with pytest.raises(npnet.ShapeError, match=message):
            cell.bprop(dout, dstate)
        assert cell.has_cache
    dx, _ = cell.bprop(np.zeros((2, 5, 4)))                      # a correct call can follow
    assert dx.shape == (2, 5, 3)


@pytest.mark.parametrize("name", CASES)
def test_bad_step_input_raises_a_clear_error(name):
    cell = random_cell(CASES[name], 3, 4)
    x = np.zeros((2, 5, 3))
    with pytest.raises(npnet.ShapeError, match="x_t must have 2 dimensions"):
        cell.step(x)
    with pytest.raises(npnet.ShapeError, match="x_t must have last dimension 3"):
        cell.step(x[:, 0, :2])
    with pytest.raises(npnet.ShapeError, match=r"state h must have shape \(2, 4\)|must be"):
        cell.step(x[:, 0], cell.init_state(3))


@pytest.mark.parametrize("name", CASES)
def test_bad_constructor_arguments(name):
    make = CASES[name].make
    with pytest.raises(npnet.NpnetError, match="input_size must be an int >= 1, got 0"):
        make(0, 3)
    with pytest.raises(npnet.NpnetError, match=r"input_size must be an int >= 1, got 2\.5"):   # not cut to 2
        make(2.5, 3)
    with pytest.raises(npnet.NpnetError, match="float32 or float64"):
        make(2, 3, np.int32)
