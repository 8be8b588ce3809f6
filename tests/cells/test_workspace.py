"""The cells keep the arrays of a spent cache for the next fprop (npnet.cells._kernels.Workspace).

Reusing memory must never change a number: a cell that has run other sequences before gives
bit for bit what a fresh cell with the same weights gives, whatever happened in between (a
bprop, an fprop whose bprop never came, other shapes, a shallow copy of the cell running its
own sequences while the original's cache waits, as npnet.diagnostics does).
"""
import copy

import numpy as np
import pytest

import npnet
from npnet.cells._kernels import Workspace

MAKERS = {
    "rnn_tanh": lambda dtype: npnet.BasicRNNCell(3, 5, "tanh", dtype=dtype, rng=1),
    "rnn_relu": lambda dtype: npnet.BasicRNNCell(3, 5, "relu", dtype=dtype, rng=1),
    "lstm": lambda dtype: npnet.LSTMCell(3, 5, dtype=dtype, rng=1),
    "gru": lambda dtype: npnet.GRUCell(3, 5, dtype=dtype, rng=1),
    "gru_reset_before": lambda dtype: npnet.GRUCell(3, 5, reset_after=False, dtype=dtype, rng=1),
}


def _inputs(seed, B=4, T=6, D=3, H=5, dtype=np.float64, masked=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    dout = rng.standard_normal((B, T, H)).astype(dtype)
    mask = None
    if masked:
        mask = np.ones((B, T), bool)
        mask[0, 4:] = False
        mask[2, 1:] = False
    return x, dout, mask


def _run(cell, x, dout, mask):
    """fprop then bprop; returns every number the caller gets, as fresh copies."""
    cell.zero_grad()
    out, state = cell.fprop(x, mask=mask)
    dx, dstate = cell.bprop(dout)
    flat = lambda s: [np.array(a) for a in (s if isinstance(s, tuple) else (s,))]
    return [np.array(out), *flat(state), np.array(dx), *flat(dstate)] + [g.copy() for g in cell.grads.values()]


def _assert_same(got, want):
    assert len(got) == len(want)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("masked", [False, True])
@pytest.mark.parametrize("name", sorted(MAKERS))
def test_a_used_cell_equals_a_fresh_one(name, masked, dtype):
    cell = MAKERS[name](dtype)
    for seed in (1, 2):                                        # fill the workspace with other numbers
        _run(cell, *_inputs(seed, dtype=dtype, masked=not masked))
    cell.fprop(_inputs(3, dtype=dtype)[0])                     # an fprop whose bprop never comes
    _run(cell, *_inputs(4, B=2, T=3, dtype=dtype))             # another shape in between
    _run(cell, *_inputs(5, dtype=dtype, masked=masked))
    args = _inputs(6, dtype=dtype, masked=masked)
    _assert_same(_run(cell, *args), _run(MAKERS[name](dtype), *args))


@pytest.mark.parametrize("name", sorted(MAKERS))
def test_a_shallow_copy_never_touches_the_pending_cache(name):
    cell = MAKERS[name](np.float64)
    x, dout, mask = _inputs(7, masked=True)
    _run(cell, *_inputs(8))                                    # the workspace holds spent arrays
    cell.zero_grad()
    out, _ = cell.fprop(x, mask=mask)                          # pending: its bprop comes last
    scratch = copy.copy(cell)                                  # shares the workspace, as diagnostics does
    scratch.grads = {n: np.zeros_like(g) for n, g in cell.grads.items()}
    for seed in (9, 10):
        _run(scratch, *_inputs(seed))
    dx, _ = cell.bprop(dout)
    fresh = MAKERS[name](np.float64)
    want_out, _ = fresh.fprop(x, mask=mask)
    want_dx, _ = fresh.bprop(dout)
    np.testing.assert_array_equal(out, want_out)
    np.testing.assert_array_equal(dx, want_dx)
    for n in cell.grads:
        np.testing.assert_array_equal(cell.grads[n], fresh.grads[n])


def test_workspace_hands_out_a_spare_only_of_the_same_shape_and_dtype():
    ws = Workspace()
    a = np.zeros((2, 3))
    ws.give(a=a)
    assert ws.take("a", (3, 2), np.float64) is not a           # wrong shape: a new array
    ws.give(a=a)
    assert ws.take("a", (2, 3), np.float32) is not a           # wrong dtype: a new array
    ws.give(a=a)
    assert ws.take("a", (2, 3), np.float64) is a               # the spare itself
    assert ws.take("a", (2, 3), np.float64) is not a           # handed out once only
    ws.give(a=a)
    ws.clear()
    assert ws.take("a", (2, 3), np.float64) is not a


@pytest.mark.parametrize("B, T", [(1, 4), (4, 1), (1, 1), (3, 4)])
@pytest.mark.parametrize("name", sorted(MAKERS))
def test_returned_arrays_stay_the_callers(name, B, T):
    """out, the states, dx and dstate0 are never memory the workspace hands out again (with
    B = 1 or T = 1 a transposed array is already contiguous: a view would slip through)."""
    cell = MAKERS[name](np.float64)
    x, dout, _ = _inputs(11, B=B, T=T)
    out, state = cell.fprop(x)
    dx, dstate = cell.bprop(dout)
    kept = [out, dx, *(state if isinstance(state, tuple) else (state,)),
            *(dstate if isinstance(dstate, tuple) else (dstate,))]
    copies = [a.copy() for a in kept]
    for seed in (12, 13):
        _run(cell, *_inputs(seed, B=B, T=T))
    _assert_same(kept, copies)
