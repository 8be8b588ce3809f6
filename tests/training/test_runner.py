"""SequenceRunner: truncated BPTT against full BPTT and against a numerical stop-gradient
reference, stateful carrying, clipping, non-finite stops, errors."""
import numpy as np
import pytest

import npnet
from npnet.training.clip import NonFiniteError, global_norm
from npnet.layer import NpnetError, ShapeError
from npnet.losses import MSELoss, SoftmaxCrossEntropyLoss
from npnet.model import SequenceModel
from npnet.training.optim import SGD, Adam
from npnet.training.runner import SequenceRunner
from npnet.gradcheck import _numeric as numeric_gradient   # the central differences gradcheck uses


def _mask(B, T, lengths):
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def _grads(runner, x, y, mask=None):
    runner.compute_gradients(x, y, mask)
    return {k: v.copy() for k, v in runner.model.grads.items()}


def _runner(model, bptt=None, **kw):
    return SequenceRunner(model, MSELoss(), SGD(model.params, lr=0.1), bptt=bptt, **kw)


@pytest.mark.parametrize("use_mask", [False, True])
def test_tbptt_with_window_at_least_T_equals_full_bptt_exactly(rng, use_mask):
    m = SequenceModel(3, 4, num_layers=2, cell="lstm", output_size=2, rng=0)
    x, y = rng.standard_normal((3, 7, 3)), rng.standard_normal((3, 7, 2))
    mask = _mask(3, 7, [7, 4, 2]) if use_mask else None
    full = _grads(_runner(m), x, y, mask)
    for k in (7, 10):
        g = _grads(_runner(m, bptt=k), x, y, mask)
        for name in full:
            np.testing.assert_array_equal(g[name], full[name])
    short = _grads(_runner(m, bptt=3), x, y, mask)               # the test can tell them apart
    assert not np.allclose(short["cells.0.W_h"], full["cells.0.W_h"])


@pytest.mark.parametrize("use_mask", [False, True])
def test_tbptt_equals_numerical_gradient_of_the_cut_loss(rng, use_mask):
    """Reference: L(p) = sum_w a_w loss_w(p; s_w) with the window-start states s_w held fixed
    at their values under the unperturbed parameters, differentiated by central differences."""
    m = SequenceModel(2, 3, num_layers=2, cell=["gru", "rnn"], output_size=2, rng=1)
    B, T, k = 2, 7, 3
    x, y = rng.standard_normal((B, T, 2)), rng.standard_normal((B, T, 2))
    mask = _mask(B, T, [7, 5]) if use_mask else None
    runner = _runner(m, bptt=k)
    value = runner.compute_gradients(x, y, mask)
    analytic = {kk: v.copy() for kk, v in m.grads.items()}

    windows = [(0, 3), (3, 6), (6, 7)]
    starts, s = [], None                                            # the carried values s_w
    for a, b in windows:
        starts.append(s)
        _, s = m.fprop(x[:, a:b], s, None if mask is None else mask[:, a:b])
    total = T * B if mask is None else mask.sum()
    loss = MSELoss()

    def cut_loss():
        L = 0.0
        for (a, b), s0 in zip(windows, starts):
            mw = None if mask is None else mask[:, a:b]
            out, _ = m.fprop(x[:, a:b], s0, mw)
            n = (b - a) * B if mw is None else mw.sum()
            L += n / total * loss.fprop(out, y[:, a:b], mw)
        return L

    assert abs(cut_loss() - value) < 1e-12
    eps = 1e-6
    for name, p in m.params.items():
        assert npnet.rel_error(analytic[name], numeric_gradient(cut_loss, p, eps)) < 1e-6, name


def test_tbptt_skips_windows_with_nothing_scored_but_carries_the_state(rng):
    m = SequenceModel(2, 3, cell="gru", output_size=4, rng=2)
    x = rng.standard_normal((2, 6, 2))
    y = rng.integers(0, 4, size=(2, 6))
    mask = _mask(2, 6, [2, 1])                                      # window [3, 6) scores nothing
    r = SequenceRunner(m, SoftmaxCrossEntropyLoss(), SGD(m.params, lr=0.1), bptt=3)
    full = SequenceRunner(m, SoftmaxCrossEntropyLoss(), SGD(m.params, lr=0.1))
    g = _grads(r, x, y, mask)
    out_windows = r.last_output
    g_full = _grads(full, x, y, mask)
    for name in g:
        np.testing.assert_allclose(g[name], g_full[name], atol=1e-14)  # only the first window scores
    np.testing.assert_allclose(out_windows, full.last_output, atol=1e-14)


def test_stateful_carrying_equals_one_long_sequence(rng):
    m = SequenceModel(3, 4, num_layers=2, cell="lstm", output_size=2, rng=3)
    x, y = rng.standard_normal((2, 12, 3)), rng.standard_normal((2, 12, 2))
    opt = SGD(m.params, lr=0.1)
    opt.lr = 0.0                                                     # freeze the weights: compare forwards
    r = SequenceRunner(m, MSELoss(), opt, stateful=True)
    outs = []
    for s in range(0, 12, 4):
        r.train_step(x[:, s:s + 4], y[:, s:s + 4])
        outs.append(r.last_output)
    want, state = m.fprop(x)
    np.testing.assert_allclose(np.concatenate(outs, axis=1), want, atol=1e-13)
    for got, ref in zip(r.state, state):
        np.testing.assert_allclose(got[0], ref[0], atol=1e-13)
        np.testing.assert_allclose(got[1], ref[1], atol=1e-13)
    r.reset_state()
    r.train_step(x[:, 4:8], y[:, 4:8])
    fresh, _ = m.fprop(x[:, 4:8])
    np.testing.assert_allclose(r.last_output, fresh, atol=1e-13)
    with pytest.raises(ShapeError, match="reset_state"):
        r.train_step(x[:1, :4], y[:1, :4])


def test_non_stateful_starts_each_batch_from_zero(rng):
    m = SequenceModel(3, 4, cell="rnn", output_size=2, rng=4)
    opt = SGD(m.params, lr=0.1)
    opt.lr = 0.0
    r = SequenceRunner(m, MSELoss(), opt)
    x, y = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 2))
    a = r.train_step(x, y)
    b = r.train_step(x, y)
    assert a == b and r.state is None


@pytest.mark.parametrize("mode", ["norm", "value", None])
def test_clipping_and_recorded_norms(rng, mode):
    m = SequenceModel(3, 4, cell="lstm", output_size=2, rng=5)
    x, y = rng.standard_normal((2, 5, 3)), 10 * rng.standard_normal((2, 5, 2))
    clip = 0.05 if mode is not None else None
    r = SequenceRunner(m, MSELoss(), Adam(m.params, lr=1e-3), clip=clip, clip_mode=mode)
    raw = _grads(r, x, y)
    pre = global_norm(raw)
    assert pre > 0.05
    r.train_step(x, y)
    r.train_step(x, y)
    assert len(r.grad_norms) == 2 and r.steps == 2
    assert r.grad_norms[0] == pytest.approx(pre, rel=1e-12)
    post = m.grads                                                   # the optimiser saw these
    if mode == "norm":
        assert global_norm(post) == pytest.approx(0.05, rel=1e-9)
    elif mode == "value":
        assert max(np.abs(g).max() for g in post.values()) <= 0.05
        assert global_norm(post) < r.grad_norms[1]
    else:
        assert global_norm(post) == pytest.approx(r.grad_norms[1], rel=1e-12)


def test_non_finite_loss_or_gradient_stops_naming_it_and_the_step(rng):
    class Exploding(SequenceModel):
        """A model whose read-out bias gradient turns NaN from the third backward pass on."""
        calls = 0

        def bprop(self, dout, dstate=None):
            res = super().bprop(dout, dstate)
            Exploding.calls += 1
            if Exploding.calls >= 3:
                self.grads["read_out.b"][0] = np.nan
            return res

    m = Exploding(3, 4, cell="gru", output_size=2, rng=6)
    x, y = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 5, 2))
    r = SequenceRunner(m, MSELoss(), SGD(m.params, lr=0.1))
    r.train_step(x, y)
    r.train_step(x, y)
    before = {k: v.copy() for k, v in m.params.items()}
    with pytest.raises(NonFiniteError, match=r"gradient of parameter 'read_out.b' is not finite at step 3"):
        r.train_step(x, y)
    for k in before:                                                 # no update after the failure
        np.testing.assert_array_equal(m.params[k], before[k])
    assert len(r.grad_norms) == 3 and np.isnan(r.grad_norms[2]) and r.steps == 2

    m.params["read_out.b"] = np.array([0.0, np.nan])
    r2 = SequenceRunner(m, MSELoss(), SGD(m.params, lr=0.1), bptt=2)
    with pytest.raises(NonFiniteError, match="model output is not finite at step 1"):
        r2.train_step(x, y)


def test_training_reduces_the_loss(rng):
    m = SequenceModel(1, 8, cell="lstm", output_size=1, rng=7)
    x = rng.standard_normal((16, 10, 1))
    y = np.cumsum(x, axis=1) / 3                                     # running sum: needs memory
    r = SequenceRunner(m, MSELoss(), Adam(m.params, lr=0.02), bptt=5)
    losses = [r.train_step(x, y) for _ in range(60)]
    assert losses[-1] < 0.3 * losses[0]


def test_last_step_model_and_float32(rng):
    m = SequenceModel(3, 4, cell="rnn", output_size=3, return_sequences=False, dtype=np.float32, rng=8)
    r = SequenceRunner(m, SoftmaxCrossEntropyLoss(dtype=np.float32), Adam(m.params, lr=1e-2))
    x, y = rng.standard_normal((4, 5, 3)), rng.integers(0, 3, size=4)
    value = r.train_step(x, y, _mask(4, 5, [5, 2, 3, 1]))
    assert np.isfinite(value) and r.last_output.shape == (4, 3)
    assert all(p.dtype == np.float32 for p in m.params.values())
    assert r.eval_step(x, y, _mask(4, 5, [5, 2, 3, 1])) < 5


def test_errors():
    m = SequenceModel(2, 3, cell="rnn", output_size=1, rng=0)
    opt = SGD(m.params, lr=0.1)
    with pytest.raises(NpnetError, match="bptt"):
        SequenceRunner(m, MSELoss(), opt, bptt=0)
    with pytest.raises(NpnetError, match="clip_mode"):
        SequenceRunner(m, MSELoss(), opt, clip_mode="max")
    with pytest.raises(NpnetError, match="clip"):
        SequenceRunner(m, MSELoss(), opt, clip=-1.0)
    last = SequenceModel(2, 3, cell="rnn", output_size=1, return_sequences=False, rng=0)
    SequenceRunner(last, MSELoss(), SGD(last.params, lr=0.1), bptt=3)    # truncation: test_runner_last_step
    r = SequenceRunner(m, MSELoss(), opt)
    with pytest.raises(ShapeError, match="scores no step"):
        r.train_step(np.zeros((1, 3, 2)), np.zeros((1, 3, 1)), np.zeros((1, 3), bool))


def test_tbptt_equals_hand_built_chunks(rng):
    """The same computation written out by hand: carry the value, zero state gradient, weight a_w."""
    m = SequenceModel(3, 4, num_layers=2, cell="lstm", read_in=5, output_size=2, rng=9)
    x, y = rng.standard_normal((3, 10, 3)), rng.standard_normal((3, 10, 2))
    mask = _mask(3, 10, [10, 6, 3])
    g = _grads(_runner(m, bptt=4), x, y, mask)

    m.zero_grad()
    loss, state, total = MSELoss(), None, mask.sum()
    for a, b in [(0, 4), (4, 8), (8, 10)]:
        out, new_state = m.fprop(x[:, a:b], state, mask[:, a:b])
        loss.fprop(out, y[:, a:b], mask[:, a:b])
        m.bprop(loss.bprop() * (mask[:, a:b].sum() / total), None)
        state = [tuple(s.copy() for s in st) for st in new_state]       # the value only
    for name in g:
        np.testing.assert_allclose(g[name], m.grads[name], rtol=1e-13, atol=1e-15)
