"""Diagnostics: recorded per-step gradient norms, gradient statistics, exact state Jacobians."""
import numpy as np
import pytest

import npnet
from npnet import diagnostics as dg


def cells():
    return [npnet.BasicRNNCell(3, 4, rng=0), npnet.BasicRNNCell(3, 4, nonlinearity="relu", rng=1),
            npnet.LSTMCell(3, 4, rng=2), npnet.GRUCell(3, 4, rng=3)]


def flat_step(cell, x_t, s_flat):
    """One step on a flat state vector (the finite-difference side of the test)."""
    H = cell.hidden_size
    parts = tuple(s_flat[:, i * H:(i + 1) * H] for i in range(len(cell.state_names)))
    _, new = cell.step(x_t, cell.pack_state(parts))
    new = new if isinstance(new, tuple) else (new,)
    return np.concatenate(new, axis=1)


@pytest.mark.parametrize("cell", cells(), ids=lambda c: f"{type(c).__name__}-{getattr(c, 'nonlinearity', '')}")
def test_jacobian_equals_finite_differences(cell, rng):
    B, T = 2, 4
    x = rng.standard_normal((B, T, 3))
    J = dg.state_jacobians(cell, x)
    S = cell.hidden_size * len(cell.state_names)
    assert J.shape == (T, B, S, S)
    # walk the same trajectory with step() and difference each step's map
    s = np.zeros((B, S))
    eps = 1e-6
    for t in range(T):
        num = np.empty((B, S, S))
        for j in range(S):
            e = np.zeros((B, S))
            e[:, j] = eps
            num[:, :, j] = (flat_step(cell, x[:, t], s + e) - flat_step(cell, x[:, t], s - e)) / (2 * eps)
        np.testing.assert_allclose(J[t], num, atol=1e-8)
        s = flat_step(cell, x[:, t], s)


def test_jacobians_leave_cell_untouched(rng):
    cell = npnet.LSTMCell(3, 4, rng=0)
    x = rng.standard_normal((2, 5, 3))
    out, _ = cell.fprop(x)
    dg.state_jacobians(cell, x)
    assert all(not g.any() for g in cell.grads.values())
    cell.bprop(np.ones_like(out))   # the cache of the user's fprop is still there


def test_rnn_jacobian_is_diag_act_times_WhT(rng):
    cell = npnet.BasicRNNCell(2, 3, rng=0)
    x = rng.standard_normal((1, 3, 2))
    J = dg.state_jacobians(cell, x)
    out, _ = cell.fprop(x)
    # h_1 = tanh(x_1 W_x + h_0 W_h + b)  =>  dh_1/dh_0 = diag(1 - h_1^2) W_h^T
    np.testing.assert_allclose(J[1, 0], np.diag(1 - out[0, 1] ** 2) @ cell.params["W_h"].T, atol=1e-12)


def test_product_norms_match_explicit_products(rng):
    J = rng.standard_normal((6, 2, 3, 3))
    norms = dg.jacobian_product_norms(J)
    for b in range(2):
        P = np.eye(3)
        for k in range(1, 7):
            P = P @ J[6 - k, b]
            assert norms[k - 1, b] == pytest.approx(np.linalg.norm(P, 2), rel=1e-10)


def test_product_norms_far_beyond_float_range_no_warning():
    J = np.broadcast_to(10.0 * np.eye(2), (400, 1, 2, 2)).copy()
    logs = dg.jacobian_product_norms(J, log10=True)
    assert logs[-1, 0] == pytest.approx(400.0)
    small = dg.jacobian_product_norms(J / 100.0, log10=True)
    assert small[-1, 0] == pytest.approx(-400.0)
    zero = dg.jacobian_product_norms(np.zeros((3, 1, 2, 2)), log10=True)
    assert np.all(np.isneginf(zero))


def test_largest_singular_values(rng):
    J = rng.standard_normal((2, 3, 4, 4))
    sv = dg.largest_singular_values(J)
    assert sv[1, 2] == pytest.approx(np.linalg.norm(J[1, 2], 2))


def test_grad_stats_and_monitor():
    grads = {"a": np.array([3.0, -4.0]), "b": np.array([[0.0]], dtype=np.float32)}
    s = dg.grad_stats(grads)
    assert s["global_norm"] == pytest.approx(5.0)
    assert s["mean_abs"] == pytest.approx(7.0 / 3)
    assert s["max_abs"] == 4.0
    assert s["params"]["a"] == {"norm": 5.0, "mean_abs": 3.5, "max_abs": 4.0}
    mon = dg.GradientMonitor()
    mon.record(grads)
    mon.record({k: 2 * v for k, v in grads.items()})
    rows = mon.rows()
    assert [r["step"] for r in rows] == [0, 1]
    assert rows[1]["global_norm"] == pytest.approx(10.0)
    assert rows[1]["a/max_abs"] == 8.0


def test_track_state_grads_context(rng):
    cell = npnet.GRUCell(3, 4, rng=0)
    x = rng.standard_normal((2, 5, 3))
    with dg.track_state_grads(cell) as norms:
        out, _ = cell.fprop(x)
        cell.bprop(np.ones_like(out))
        n = norms()["cell"]["h"]
    assert n.shape == (2, 5) and np.all(n > 0)
    assert cell.track_state_grads is False
