"""BasicRNNCell: gradient checks, masks, dtypes, errors and the IRNN initialisation.

The fast path against the plain reference (npnet.cells.reference) and step() against fprop are
checked for every cell in tests/cells/test_contract.py.
"""
import numpy as np
import pytest

import npnet

TOL = 1e-6


def make(D=3, H=4, nl="tanh", seed=0, dtype=np.float64):
    return npnet.BasicRNNCell(D, H, nonlinearity=nl, rng=seed, dtype=dtype)


def data(rng, B=3, T=5, D=3, H=4):
    return rng.standard_normal((B, T, D)), rng.standard_normal((B, H))


@pytest.mark.parametrize("nl", ["tanh", "relu"])
@pytest.mark.parametrize("shape", [(3, 5, 3, 4), (1, 1, 2, 1), (1, 4, 1, 1), (2, 1, 3, 5)])
def test_gradcheck(nl, shape, rng):
    B, T, D, H = shape
    cell = make(D, H, nl)
    x, h0 = data(rng, B, T, D, H)
    errors = npnet.gradcheck(cell, x, h0)
    assert set(errors) == {"param W_x", "param W_h", "param b", "input x", "state 0"}
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("nl", ["tanh", "relu"])
def test_gradcheck_with_mask(nl, rng):
    cell = make(3, 4, nl)
    x, h0 = data(rng, 3, 6)
    mask = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] + [0] * 5], bool)
    errors = npnet.gradcheck(cell, x, h0, mask)
    assert max(errors.values()) < TOL, errors


def test_padded_batch_equals_sequences_alone(rng):
    B, T, D, H = 3, 6, 2, 4
    lengths = [6, 2, 4]
    cell = make(D, H)
    x, h0 = data(rng, B, T, D, H)
    mask = np.arange(T)[None, :] < np.array(lengths)[:, None]
    x[~mask] = 99.0  # padding values must not matter
    dout = rng.standard_normal((B, T, H))
    dhT = rng.standard_normal((B, H))
    out, hT = cell.fprop(x, h0, mask)
    dx, dh0 = cell.bprop(dout, dhT)
    batch_grads = {k: v.copy() for k, v in cell.grads.items()}
    assert np.all(out[~mask] == 0.0)
    assert np.all(dx[~mask] == 0.0)
    total = {k: np.zeros_like(v) for k, v in cell.grads.items()}
    for i, L in enumerate(lengths):
        cell.zero_grad()
        o, h = cell.fprop(x[i:i + 1, :L], h0[i:i + 1])
        d, d0 = cell.bprop(dout[i:i + 1, :L], dhT[i:i + 1])
        np.testing.assert_allclose(out[i, :L], o[0], atol=1e-13)
        np.testing.assert_allclose(hT[i], h[0], atol=1e-13)
        np.testing.assert_allclose(dx[i, :L], d[0], atol=1e-13)
        np.testing.assert_allclose(dh0[i], d0[0], atol=1e-13)
        for k in total:
            total[k] += cell.grads[k]
    for k in total:
        np.testing.assert_allclose(batch_grads[k], total[k], atol=1e-12)


def test_bprop_accumulates_and_zero_grad_clears(rng):
    cell = make()
    x, h0 = data(rng)
    dout = rng.standard_normal((3, 5, 4))
    cell.fprop(x, h0)
    cell.bprop(dout)
    once = {k: v.copy() for k, v in cell.grads.items()}
    cell.fprop(x, h0)
    cell.bprop(dout)
    for k in once:
        np.testing.assert_allclose(cell.grads[k], 2 * once[k], rtol=1e-12)
    cell.zero_grad()
    assert all(not g.any() for g in cell.grads.values())


def test_bprop_leaves_inputs_untouched(rng):
    cell = make()
    x, h0 = data(rng)
    mask = np.ones((3, 5), bool)
    mask[1, 3:] = False
    dout, dhT = rng.standard_normal((3, 5, 4)), rng.standard_normal((3, 4))
    copies = [a.copy() for a in (x, h0, dout, dhT)]
    cell.fprop(x, h0, mask)
    cell.bprop(dout, dhT)
    for a, c in zip((x, h0, dout, dhT), copies):
        np.testing.assert_array_equal(a, c)


def test_float32_stays_float32(rng):
    cell = make(dtype=np.float32)
    x = rng.standard_normal((3, 5, 3)).astype(np.float32)
    out, h = cell.fprop(x)
    dx, dh0 = cell.bprop(np.ones_like(out))
    assert out.dtype == h.dtype == dx.dtype == dh0.dtype == np.float32
    assert all(g.dtype == np.float32 for g in cell.grads.values())
    assert all(p.dtype == np.float32 for p in cell.params.values())


def test_irnn_identity_init():
    cell = npnet.BasicRNNCell(2, 3, nonlinearity="relu", recurrent_init="identity", rng=0)
    np.testing.assert_array_equal(cell.params["W_h"], np.eye(3))


def test_long_sequence_large_preactivations_no_warnings(rng):
    cell = make(4, 8)
    for k in cell.params:
        cell.params[k] *= 50.0
    x = rng.standard_normal((2, 10_000, 4)) * 100
    out, h = cell.fprop(x)
    dx, _ = cell.bprop(np.ones_like(out))
    assert np.isfinite(out).all() and np.isfinite(dx).all()


def test_relu_long_sequence_stays_finite_with_identity(rng):
    cell = npnet.BasicRNNCell(1, 2, nonlinearity="relu", recurrent_init="identity", rng=0)
    out, _ = cell.fprop(np.ones((1, 10_000, 1)))
    assert np.isfinite(out).all()


@pytest.mark.parametrize("bad, match", [
    (np.zeros((3, 3)), r"3 dimensions"),
    (np.zeros((2, 4, 5)), r"\(B, T, 3\)"),
    (np.zeros((0, 4, 3)), r"B >= 1"),
    (np.full((2, 4, 3), np.nan), r"NaN or inf"),
    (np.full((2, 4, 3), np.inf), r"NaN or inf"),
    (np.zeros((2, 4, 3), complex), r"real numbers"),
])
def test_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        make().fprop(bad)


def test_bad_state_and_mask():
    cell = make()
    x = np.zeros((2, 4, 3))
    with pytest.raises(ValueError, match=r"\(2, 4\)"):
        cell.fprop(x, np.zeros((3, 4)))
    with pytest.raises(ValueError, match=r"last dimension 4"):
        cell.fprop(x, np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"bool array of shape \(2, 4\)"):
        cell.fprop(x, mask=np.ones((2, 4)))
    with pytest.raises(ValueError, match=r"shape \(2, 4\)"):
        cell.fprop(x, mask=np.ones((4, 2), bool))


def test_bprop_without_fprop_and_twice():
    cell = make()
    with pytest.raises(npnet.NotForwardedError, match="without a matching fprop"):
        cell.bprop(np.zeros((1, 1, 4)))
    out, _ = cell.fprop(np.zeros((1, 2, 3)))
    cell.bprop(np.zeros_like(out))
    with pytest.raises(ValueError, match="without a matching fprop"):
        cell.bprop(np.zeros_like(out))


def test_bad_dout_shape():
    cell = make()
    cell.fprop(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match=r"dout must have shape \(2, 3, 4\)"):
        cell.bprop(np.zeros((2, 3, 5)))


def test_bad_constructor_args():
    with pytest.raises(ValueError, match="nonlinearity"):
        npnet.BasicRNNCell(2, 3, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match=">= 1"):
        npnet.BasicRNNCell(0, 3)
    with pytest.raises(ValueError, match="float32 or float64"):
        npnet.BasicRNNCell(2, 3, dtype=np.int32)


@pytest.mark.parametrize("B, T", [(1, 4), (3, 1), (1, 1)])
def test_outputs_and_inputs_are_not_views_of_the_cache(B, T, rng):
    cell = make()
    x = rng.standard_normal((B, T, 3))
    dout = rng.standard_normal((B, T, 4))
    out, _ = cell.fprop(x)
    dx_ref, _ = cell.bprop(dout)
    g_ref = {k: v.copy() for k, v in cell.grads.items()}
    cell.zero_grad()
    out, _ = cell.fprop(x.copy())
    out[...] = 7.0                     # the caller edits what it was given
    dx, _ = cell.bprop(dout)
    np.testing.assert_array_equal(dx, dx_ref)
    for k in g_ref:
        np.testing.assert_array_equal(cell.grads[k], g_ref[k])


def test_bad_dout_keeps_the_cache():
    cell = make()
    out, _ = cell.fprop(np.zeros((2, 3, 3)))
    with pytest.raises(ValueError, match="dout"):
        cell.bprop(np.zeros((2, 3, 5)))
    cell.bprop(np.zeros_like(out))     # a correct call can follow
