"""Truncated BPTT for last-step models (return_sequences=False): the loss sits in the last window,
the earlier windows only carry the state's value. Checked against full BPTT (window >= T), against
central differences of the cut loss (carried state frozen), and row by row for ragged masks."""
import numpy as np
import pytest

import npnet
from npnet.layer import NpnetError, ShapeError
from npnet.losses import MSELoss, SoftmaxCrossEntropyLoss
from npnet.model import SequenceModel
from npnet.training.optim import SGD
from npnet.training.runner import SequenceRunner, _last_window_starts
from npnet.gradcheck import _numeric as numeric_gradient   # the central differences gradcheck uses


def _mask(B, T, lengths):
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def _runner(model, loss=None, bptt=None, **kw):
    return SequenceRunner(model, loss or MSELoss(), SGD(model.params, lr=0.1), bptt=bptt, **kw)


def _grads(runner, x, y, mask=None):
    value = runner.compute_gradients(x, y, mask)
    return value, {k: v.copy() for k, v in runner.model.grads.items()}


def _last_model(cell="lstm", **kw):
    return SequenceModel(3, 4, num_layers=2, cell=cell, output_size=2, return_sequences=False, rng=0, **kw)


@pytest.mark.parametrize("use_mask", [False, True])
def test_window_at_least_T_equals_full_bptt_exactly(rng, use_mask):
    m = _last_model()
    x, y = rng.standard_normal((3, 7, 3)), rng.standard_normal((3, 2))
    mask = _mask(3, 7, [7, 4, 2]) if use_mask else None
    full_value, full = _grads(_runner(m), x, y, mask)
    for k in (7, 10):
        value, g = _grads(_runner(m, bptt=k), x, y, mask)
        assert value == full_value
        for name in full:
            np.testing.assert_array_equal(g[name], full[name])
    short_value, short = _grads(_runner(m, bptt=3), x, y, mask)   # the test can tell them apart
    assert short_value == pytest.approx(full_value, abs=1e-13)      # same forward, same loss
    assert not np.allclose(short["cells.0.W_h"], full["cells.0.W_h"])


@pytest.mark.parametrize("cell", ["lstm", ["gru", "rnn"]])
def test_cut_gradient_equals_central_differences_with_the_carried_state_frozen(rng, cell):
    """Reference: L(p) = loss(model(x[:, T-k:], s)) with s = the state after x[:, :T-k] under the
    unperturbed parameters, held fixed while p moves; differentiated by central differences."""
    m = SequenceModel(2, 3, num_layers=2, cell=cell, read_in=3, output_size=2, return_sequences=False, rng=1)
    B, T, k = 2, 8, 3
    x, y = rng.standard_normal((B, T, 2)), rng.standard_normal((B, 2))
    value, analytic = _grads(_runner(m, bptt=k), x, y)
    _, s = m.fprop(x[:, :T - k])                                      # the carried value, frozen
    s = [tuple(p.copy() for p in st) if isinstance(st, tuple) else st.copy() for st in s]
    loss = MSELoss()

    def cut_loss():
        out, _ = m.fprop(x[:, T - k:], s)
        return loss.fprop(out, y)

    assert abs(cut_loss() - value) < 1e-12
    eps = 1e-6
    for name, p in m.params.items():
        assert npnet.rel_error(analytic[name], numeric_gradient(cut_loss, p, eps)) < 1e-6, name
    m.zero_grad()                                                     # and full BPTT on the last window
    out, _ = m.fprop(x[:, T - k:], s)
    loss.fprop(out, y)
    m.bprop(loss.bprop())
    for name in analytic:
        np.testing.assert_allclose(analytic[name], m.grads[name], rtol=1e-13, atol=1e-15)


def test_ragged_rows_each_backpropagate_their_own_last_k_real_steps(rng):
    """Batched, masked truncation equals running every row alone, unmasked, on its own real steps:
    forward through its first n_b - k steps, then full BPTT through its last k from that state."""
    m = SequenceModel(3, 4, cell="gru", output_size=3, return_sequences=False, rng=4)
    B, T, k = 4, 7, 3
    lengths = [7, 4, 2, 6]                                            # row 2 has no earlier window
    x, y = rng.standard_normal((B, T, 3)), rng.integers(0, 3, size=B)
    value, g = _grads(_runner(m, SoftmaxCrossEntropyLoss(), bptt=k), x, y, _mask(B, T, lengths))
    loss, ref, ref_value = SoftmaxCrossEntropyLoss(), {n: 0.0 for n in g}, 0.0
    for b, n in enumerate(lengths):
        c = max(n - k, 0)
        s = m.fprop(x[b:b + 1, :c])[1] if c > 0 else None
        m.clear_cache()
        m.zero_grad()
        out, _ = m.fprop(x[b:b + 1, c:n], s)
        ref_value += loss.fprop(out, y[b:b + 1]) / B
        m.bprop(loss.bprop(), None)
        for name in ref:
            ref[name] = ref[name] + m.grads[name] / B
    assert value == pytest.approx(ref_value, rel=1e-13)
    for name in g:
        np.testing.assert_allclose(g[name], ref[name], rtol=1e-12, atol=1e-15, err_msg=name)


def test_stateful_last_step_truncation_carries_the_whole_sequence_state(rng):
    m = _last_model()
    x, y = rng.standard_normal((2, 9, 3)), rng.standard_normal((2, 2))
    r = _runner(m, bptt=2, stateful=True)
    r.compute_gradients(x, y)
    _, want = m.fprop(x)
    m.clear_cache()
    for got, ref in zip(r.state, want):
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, atol=1e-14)


def test_float32_training_with_truncation(rng):
    m = SequenceModel(3, 4, cell="rnn", output_size=3, return_sequences=False, dtype=np.float32, rng=8)
    r = SequenceRunner(m, SoftmaxCrossEntropyLoss(dtype=np.float32), SGD(m.params, lr=0.1), bptt=2)
    x, y = rng.standard_normal((4, 6, 3)).astype(np.float32), rng.integers(0, 3, size=4)
    value = r.train_step(x, y, _mask(4, 6, [6, 1, 3, 5]))
    assert np.isfinite(value) and r.last_output.shape == (4, 3) and r.last_output.dtype == np.float32
    assert all(p.dtype == np.float32 for p in m.params.values())


def test_last_window_starts():
    np.testing.assert_array_equal(_last_window_starts(None, 2, 7, 3), [4, 4])
    np.testing.assert_array_equal(_last_window_starts(None, 1, 2, 3), [0])
    mask = np.array([[1, 1, 1, 1, 1, 1], [1, 1, 0, 0, 0, 0], [0, 1, 0, 1, 1, 0]], bool)
    np.testing.assert_array_equal(_last_window_starts(mask, 3, 6, 2), [4, 0, 2])


def test_errors_remain(rng):
    m = _last_model()
    for bad in (0, -1, 2.5):
        with pytest.raises(NpnetError, match="bptt must be an int >= 1"):
            _runner(m, bptt=bad)
    bi = SequenceModel(3, 4, cell="gru", output_size=2, return_sequences=False, bidirectional=True, rng=0)
    x, y = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 2))
    with pytest.raises(NpnetError, match="bidirectional"):
        _runner(bi, bptt=3).compute_gradients(x, y)
    _runner(bi, bptt=5).compute_gradients(x, y)                       # k >= T is full BPTT: allowed
    with pytest.raises(ShapeError, match="at least one True"):
        _runner(m, bptt=2).compute_gradients(x, y, _mask(2, 5, [5, 0]))
