"""SequenceModel: gradient checks of stacks, masks, bidirectional and mixed cells; the model
equals the hand-composed layers; reverse direction equals per-row reversal; dropout; errors."""
import json

import numpy as np
import pytest

import npnet
from npnet.layer import NotForwardedError, NpnetError, ShapeError
from npnet.model import SequenceModel, reverse_index

TOL = 1e-6


def _mask(B, T, lengths):
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def _random_state(model, B, rng, scale=0.5):
    def r(s):
        if isinstance(s, tuple):
            return tuple(scale * rng.standard_normal(a.shape) for a in s)
        return scale * rng.standard_normal(s.shape)
    return [r(s) for s in model.init_state(B)]


def _check(model, x, state, mask):
    errs = npnet.gradcheck(model, x, state, mask)
    assert max(errs.values()) < TOL, errs
    # every parameter, the input and every state tensor were checked
    assert {f"param {k}" for k in model.params} <= set(errs)
    assert "input x" in errs
    return errs


# -- gradient checks -----------------------------------------------------------
@pytest.mark.parametrize("use_mask", [False, True])
def test_gradcheck_two_layer_lstm_read_in_read_out(rng, use_mask):
    m = SequenceModel(4, 5, num_layers=2, cell="lstm", read_in=3, output_size=2, rng=0)
    x = rng.standard_normal((3, 6, 4))
    mask = _mask(3, 6, [6, 4, 1]) if use_mask else None
    errs = _check(m, x, _random_state(m, 3, rng), mask)
    assert len([k for k in errs if k.startswith("state")]) == 4          # (h, c) for 2 layers


def test_gradcheck_bidirectional_with_mask(rng):
    m = SequenceModel(3, 4, num_layers=2, cell="lstm", bidirectional=True, output_size=2, rng=1)
    x = rng.standard_normal((3, 5, 3))
    _check(m, x, _random_state(m, 3, rng), _mask(3, 5, [5, 3, 2]))


def test_gradcheck_bidirectional_gru_holes_in_mask(rng):
    m = SequenceModel(3, 3, num_layers=1, cell="gru", bidirectional=True, rng=2)
    x = rng.standard_normal((2, 5, 3))
    mask = np.array([[True, False, True, True, False], [False, True, True, True, True]])
    _check(m, x, _random_state(m, 2, rng), mask)


def test_gradcheck_mixed_gru_rnn_stack(rng):
    m = SequenceModel(3, [4, 3], num_layers=2, cell=["gru", "rnn"], output_size=2, rng=3)
    x = rng.standard_normal((2, 5, 3))
    _check(m, x, _random_state(m, 2, rng), _mask(2, 5, [5, 3]))
    _check(m, x, None, None)


def test_gradcheck_irnn(rng):
    m = SequenceModel(2, 3, num_layers=2, cell="irnn", read_in=3, output_size=1, rng=4)
    np.testing.assert_array_equal(m.params["cells.0.W_h"], np.eye(3))
    _check(m, rng.standard_normal((2, 4, 2)), _random_state(m, 2, rng), None)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_gradcheck_last_step_only_with_mask(rng, bidirectional):
    m = SequenceModel(3, 4, num_layers=2, cell="lstm", output_size=2, return_sequences=False,
                      bidirectional=bidirectional, rng=5)
    x = rng.standard_normal((3, 6, 3))
    _check(m, x, _random_state(m, 3, rng), _mask(3, 6, [6, 2, 4]))


def test_gradcheck_degenerate_shapes(rng):
    m = SequenceModel(1, 1, num_layers=2, cell="lstm", output_size=1, read_in=1, rng=6)
    _check(m, rng.standard_normal((1, 1, 1)), _random_state(m, 1, rng), None)
    m = SequenceModel(1, 1, num_layers=1, cell="gru", bidirectional=True, return_sequences=False, rng=6)
    _check(m, rng.standard_normal((1, 3, 1)), None, np.array([[True, True, False]]))


# -- the model equals its parts ------------------------------------------------
def test_stack_equals_hand_composition(rng):
    m = SequenceModel(4, 5, num_layers=2, cell="lstm", read_in=3, output_size=2, rng=7)
    x = rng.standard_normal((2, 6, 4))
    mask = _mask(2, 6, [6, 3])
    y, state = m.fprop(x, None, mask)
    h = x @ m.params["read_in.W"] + m.params["read_in.b"]
    h, s0 = m.cells[0].fprop(h, None, mask)
    h, s1 = m.cells[1].fprop(h, None, mask)
    want = h @ m.params["read_out.W"] + m.params["read_out.b"]
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)
    for got, ref in zip(state, [s0, s1]):
        np.testing.assert_allclose(got[0], ref[0], atol=1e-12)
        np.testing.assert_allclose(got[1], ref[1], atol=1e-12)


def test_last_step_equals_sequence_output_at_last_real_step(rng):
    kw = dict(input_size=3, hidden_size=4, num_layers=2, cell="gru", output_size=2, bidirectional=True)
    seq = SequenceModel(**kw, rng=8)
    last = SequenceModel(**kw, return_sequences=False, reverse_read_out="last_step", rng=8)
    x = rng.standard_normal((3, 5, 3))
    lengths = [5, 1, 3]
    ys, _ = seq.fprop(x, None, _mask(3, 5, lengths))
    yl, _ = last.fprop(x, None, _mask(3, 5, lengths))
    assert yl.shape == (3, 2)
    np.testing.assert_allclose(yl, ys[np.arange(3), np.array(lengths) - 1], atol=1e-13)
    yl_nomask, _ = last.fprop(x)
    ys_nomask, _ = seq.fprop(x)
    np.testing.assert_allclose(yl_nomask, ys_nomask[:, -1], atol=1e-13)


# -- the bidirectional last-step read-out --------------------------------------
HOLES = np.array([[True, True, True, True, True], [True, True, True, False, False],
                  [False, True, False, True, False], [False, False, True, False, False]])


@pytest.mark.parametrize("mask", [None, "lengths", "holes"])
def test_final_read_out_is_forward_last_and_reverse_first(rng, mask):
    """reverse_read_out="final": [fwd at the last real step, rev at the first] = the top cells' h_n."""
    kw = dict(input_size=3, hidden_size=4, num_layers=2, cell="gru", bidirectional=True)
    seq = SequenceModel(**kw, rng=8)
    fin = SequenceModel(**kw, return_sequences=False, rng=8)
    assert fin.reverse_read_out == "final"
    x = rng.standard_normal((4, 5, 3))
    m = {None: None, "lengths": _mask(4, 5, [5, 3, 1, 2]), "holes": HOLES}[mask]
    ys, _ = seq.fprop(x, None, m)
    yf, state = fin.fprop(x, None, m)
    first = np.zeros(4, int) if m is None else np.argmax(m, axis=1)
    last = np.full(4, 4) if m is None else 4 - np.argmax(m[:, ::-1], axis=1)
    rows = np.arange(4)
    np.testing.assert_allclose(yf[:, :4], ys[rows, last, :4], atol=1e-13)
    np.testing.assert_allclose(yf[:, 4:], ys[rows, first, 4:], atol=1e-13)
    np.testing.assert_allclose(yf, np.concatenate([state[2], state[3]], axis=1), atol=1e-13)   # h_n[-2:]


@pytest.mark.parametrize("mask", [None, "lengths", "holes"])
def test_changing_the_first_steps_changes_both_halves(rng, mask):
    """Only "final" lets the reverse half see a row's first real step; padding changes nothing."""
    m = {None: None, "lengths": _mask(4, 5, [5, 3, 2, 4]), "holes": HOLES}[mask]
    x = rng.standard_normal((4, 5, 3))
    first = np.zeros(4, int) if m is None else np.argmax(m, axis=1)
    x2 = x.copy()
    x2[np.arange(4), first] += 1.0                             # each row's first real step
    x_pad = x.copy()
    if m is not None:
        x_pad[~m] = 7.0                                        # padded steps only
    for how in ("final", "last_step"):
        model = SequenceModel(3, 4, cell="lstm", bidirectional=True, return_sequences=False,
                              reverse_read_out=how, rng=3)
        y, _ = model.fprop(x, None, m)
        y2, _ = model.fprop(x2, None, m)
        change = np.abs(y2 - y)                                # (B, 2H)
        assert np.all(change[:, :4].max(axis=1) > 1e-6)        # forward half: every row
        if how == "final":
            assert np.all(change[:, 4:].max(axis=1) > 1e-6)    # reverse half: every row
        else:                                                  # the old read-out: blind to it
            one = first == (4 - np.argmax((np.ones((4, 5), bool) if m is None else m)[:, ::-1], axis=1))
            assert np.all(change[~one, 4:] == 0.0)
        np.testing.assert_array_equal(model.fprop(x_pad, None, m)[0], y)


@pytest.mark.parametrize("how", ["final", "last_step"])
def test_gradcheck_bidirectional_read_out_modes(rng, how):
    m = SequenceModel(3, 3, num_layers=2, cell="lstm", bidirectional=True, return_sequences=False,
                      output_size=2, reverse_read_out=how, rng=12)
    x = rng.standard_normal((4, 5, 3))
    _check(m, x, _random_state(m, 4, rng), HOLES)
    _check(m, x, _random_state(m, 4, rng), _mask(4, 5, [5, 1, 3, 2]))
    _check(m, x[:, :1], None, None)                              # T = 1: first = last


def test_reverse_read_out_config_and_old_configs(rng):
    kw = dict(input_size=2, hidden_size=3, cell="gru", bidirectional=True, output_size=2,
              return_sequences=False)
    new, old = SequenceModel(**kw, rng=1), SequenceModel(**kw, reverse_read_out="last_step", rng=1)
    assert new.get_config()["reverse_read_out"] == "final"
    assert old.get_config()["reverse_read_out"] == "last_step"
    x = rng.standard_normal((2, 4, 2))
    cfg = json.loads(json.dumps(old.get_config()))
    del cfg["reverse_read_out"]                                  # a config saved before the option
    again = SequenceModel.from_config(cfg)
    assert again.reverse_read_out == "last_step"
    for k, v in old.params.items():
        np.copyto(again.params[k], v)
    np.testing.assert_array_equal(again.fprop(x)[0], old.fprop(x)[0])
    assert not np.allclose(new.fprop(x)[0], old.fprop(x)[0])
    assert SequenceModel.from_config(new.get_config()).reverse_read_out == "final"
    for other in (dict(kw, return_sequences=True), dict(kw, bidirectional=False)):
        assert "reverse_read_out" not in SequenceModel(**other, rng=1).get_config()   # unchanged configs
    with pytest.raises(NpnetError, match="reverse_read_out must be one of"):
        SequenceModel(**kw, reverse_read_out="first")


def test_reverse_read_out_checkpoint_round_trip(rng, tmp_path):
    m = SequenceModel(2, 3, cell="lstm", bidirectional=True, output_size=2, return_sequences=False,
                      reverse_read_out="last_step", rng=2)
    npnet.save_checkpoint(tmp_path / "ck.npz", m)
    back = npnet.load_checkpoint(tmp_path / "ck.npz").model
    assert back.reverse_read_out == "last_step"
    x = rng.standard_normal((2, 4, 2))
    np.testing.assert_array_equal(back.fprop(x)[0], m.fprop(x)[0])


def test_reverse_direction_runs_each_rows_real_steps_backwards(rng):
    """Like PyTorch packed sequences: row b's reverse pass starts at its last real step."""
    m = SequenceModel(3, 4, cell="lstm", bidirectional=True, rng=9)
    x = rng.standard_normal((3, 5, 3))
    lengths = [5, 2, 4]
    out, state = m.fprop(x, None, _mask(3, 5, lengths))
    assert out.shape == (3, 5, 8)
    fwd, rev = m.cells[0], m.cells_reverse[0]
    for b, n in enumerate(lengths):
        o_f, s_f = fwd.fprop(x[b:b + 1, :n])
        o_r, s_r = rev.fprop(x[b:b + 1, :n][:, ::-1])
        np.testing.assert_allclose(out[b, :n, :4], o_f[0], atol=1e-13)
        np.testing.assert_allclose(out[b, :n, 4:], o_r[0, ::-1], atol=1e-13)
        np.testing.assert_array_equal(out[b, n:], 0.0)                 # padded outputs are zero
        np.testing.assert_allclose(state[0][0][b], s_f[0][0], atol=1e-13)
        np.testing.assert_allclose(state[1][0][b], s_r[0][0], atol=1e-13)


def test_reverse_index_is_an_involution_that_keeps_padding():
    mask = np.array([[True, True, True, False], [True, False, True, True], [False] * 4])
    P = reverse_index(mask, 3, 4)
    np.testing.assert_array_equal(P, [[2, 1, 0, 3], [3, 1, 2, 0], [0, 1, 2, 3]])
    np.testing.assert_array_equal(np.take_along_axis(P, P, axis=1), np.broadcast_to(np.arange(4), (3, 4)))
    np.testing.assert_array_equal(reverse_index(None, 2, 3), [[2, 1, 0], [2, 1, 0]])


def test_step_loop_equals_fprop(rng):
    m = SequenceModel(3, 4, num_layers=2, cell=["lstm", "gru"], read_in=5, output_size=2, rng=10)
    x = rng.standard_normal((2, 6, 3))
    state0 = _random_state(m, 2, rng)
    y, state = m.fprop(x, state0)
    s = state0
    for t in range(6):
        y_t, s = m.step(x[:, t], s)
        np.testing.assert_allclose(y_t, y[:, t], atol=1e-12)
    np.testing.assert_allclose(s[0][1], state[0][1], atol=1e-12)
    np.testing.assert_allclose(s[1], state[1], atol=1e-12)


def test_fprop_never_modifies_inputs(rng):
    m = SequenceModel(3, 4, num_layers=2, cell="lstm", bidirectional=True, dropout=0.3, output_size=2, rng=11)
    x = rng.standard_normal((2, 4, 3))
    state = _random_state(m, 2, rng)
    x0, s0 = x.copy(), [tuple(a.copy() for a in s) for s in state]
    y, _ = m.fprop(x, state, _mask(2, 4, [4, 2]))
    dy = rng.standard_normal(y.shape)
    dy0 = dy.copy()
    m.bprop(dy)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(dy, dy0)
    for a, b in zip(state, s0):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])


# -- dropout ------------------------------------------------------------------
def test_dropout_is_deterministic_under_seed_and_identity_in_eval(rng):
    kw = dict(input_size=3, hidden_size=8, num_layers=3, cell="gru", output_size=2)
    x = rng.standard_normal((4, 5, 3))
    a, b = SequenceModel(**kw, dropout=0.5, rng=12), SequenceModel(**kw, dropout=0.5, rng=12)
    ya, _ = a.fprop(x)
    yb, _ = b.fprop(x)
    np.testing.assert_array_equal(ya, yb)                     # same seed: same masks
    ya2, _ = a.fprop(x)
    assert not np.allclose(ya, ya2)                            # fresh masks per call in training

    plain = SequenceModel(**kw, dropout=0.0, rng=12)          # same weights (same init draws)
    yp, _ = plain.fprop(x)
    assert not np.allclose(ya, yp)
    a.eval()
    ye, _ = a.fprop(x)
    np.testing.assert_array_equal(ye, yp)                      # eval: dropout is the identity
    a.train()
    assert a.training


def test_dropout_scales_kept_units_and_backprops_through_the_same_mask(rng):
    m = SequenceModel(2, 50, num_layers=2, cell="rnn", dropout=0.4, rng=13)
    x = rng.standard_normal((8, 6, 2))
    m.fprop(x)
    u = m._cache["drop"][0]
    assert set(np.unique(u)) <= {0.0, 1 / 0.6}
    assert abs((u > 0).mean() - 0.6) < 0.05
    assert m._cache["drop"][1] is None                         # never after the last layer

    class Frozen:
        """The model with its dropout rng rewound before every fprop: a fixed mask, checkable."""
        def __init__(self, model):
            self.m, self.st = model, model.rng.bit_generator.state
            self.params, self.grads, self.dtype = model.params, model.grads, model.dtype
        def init_state(self, B):
            return self.m.init_state(B)
        def zero_grad(self):
            self.m.zero_grad()
        def fprop(self, *a):
            self.m.rng.bit_generator.state = self.st
            return self.m.fprop(*a)
        def bprop(self, *a):
            return self.m.bprop(*a)

    small = SequenceModel(2, 3, num_layers=2, cell="lstm", dropout=0.5, output_size=2, rng=14)
    errs = npnet.gradcheck(Frozen(small), rng.standard_normal((2, 4, 2)), _random_state(small, 2, rng), None)
    assert max(errs.values()) < TOL, errs


# -- contract -----------------------------------------------------------------
def test_params_names_config_round_trip_and_float32(rng):
    m = SequenceModel(3, 4, num_layers=2, cell=["lstm", "gru"], read_in=5, output_size=2,
                      bidirectional=True, dropout=0.1, dtype=np.float32, rng=15,
                      cell_kwargs=[{"forget_bias": 2.0}, {}])
    assert {"read_in.W", "read_in.b", "cells.0.W_x", "cells.0_reverse.W_h", "cells.1.b_hn",
            "cells.1_reverse.b", "read_out.W", "read_out.b"} <= set(m.params)
    assert m.params.keys() == m.grads.keys()
    assert m.params["cells.0.W_x"] is m.cells[0].params["W_x"]
    np.testing.assert_array_equal(m.params["cells.0.b"][4:8], 2.0)     # forget_bias reached the cell
    assert [s for s, _ in m.recurrent_cells()] == ["l0", "l0_reverse", "l1", "l1_reverse"]
    cfg = json.loads(json.dumps(m.get_config()))
    m2 = SequenceModel.from_config(cfg)
    assert m2.get_config() == m.get_config()
    assert {k: v.shape for k, v in m2.params.items()} == {k: v.shape for k, v in m.params.items()}
    y, state = m.fprop(rng.standard_normal((2, 3, 3)))
    assert y.dtype == np.float32 and state[0][0].dtype == np.float32
    dx, ds = m.bprop(np.ones_like(y))
    assert dx.dtype == np.float32 and all(g.dtype == np.float32 for g in m.grads.values())


def test_assigning_a_param_copies_into_the_cell(rng):
    m = SequenceModel(2, 3, cell="rnn", output_size=1, rng=16)
    arr = m.cells[0].params["W_h"]
    m.params["cells.0.W_h"] = np.ones((3, 3))
    assert m.cells[0].params["W_h"] is arr
    np.testing.assert_array_equal(arr, 1.0)
    with pytest.raises(ShapeError):
        m.params["cells.0.W_h"] = np.ones((2, 3))
    with pytest.raises(KeyError):
        m.params["nope"] = np.ones(1)


def test_bprop_accumulates_and_zero_grad_clears(rng):
    m = SequenceModel(2, 3, num_layers=2, cell="gru", output_size=1, rng=17)
    x = rng.standard_normal((2, 3, 2))
    y, _ = m.fprop(x)
    m.bprop(np.ones_like(y))
    g1 = {k: v.copy() for k, v in m.grads.items()}
    y, _ = m.fprop(x)
    m.bprop(np.ones_like(y))
    for k in g1:
        np.testing.assert_allclose(m.grads[k], 2 * g1[k], atol=1e-12)
    m.zero_grad()
    assert all(not g.any() for g in m.grads.values())


def test_errors(rng):
    with pytest.raises(NpnetError, match="cell must be one of"):
        SequenceModel(2, 3, cell="transformer")
    with pytest.raises(NpnetError, match="one entry per layer"):
        SequenceModel(2, 3, num_layers=3, cell=["gru", "rnn"])
    with pytest.raises(NpnetError, match="dropout"):
        SequenceModel(2, 3, dropout=1.0)
    m = SequenceModel(2, 3, num_layers=2, cell="rnn", return_sequences=False, rng=0)
    x = rng.standard_normal((2, 4, 2))
    with pytest.raises(NotForwardedError):
        m.bprop(np.ones((2, 3)))
    with pytest.raises(ShapeError, match="one entry per cell"):
        m.fprop(x, [np.zeros((2, 3))])
    with pytest.raises(ShapeError, match=r"mask must be a bool array of shape \(2, 4\)"):
        m.fprop(x, None, np.ones((2, 4)))
    with pytest.raises(ShapeError, match="at least one True"):
        m.fprop(x, None, _mask(2, 4, [4, 0]))
    with pytest.raises(ShapeError, match="last dimension 2"):
        m.fprop(rng.standard_normal((2, 4, 3)))
    m.fprop(x)
    with pytest.raises(ShapeError, match=r"dout must have shape \(2, 3\)"):
        m.bprop(np.ones((2, 4, 3)))
    bi = SequenceModel(2, 3, bidirectional=True, cell="rnn")
    with pytest.raises(NpnetError, match="bidirectional"):
        bi.step(np.zeros((1, 2)))


# -- a layer as read-in (e.g. a conv net over one image per step) --------------------------------
def _conv_read_in(dtype=np.float64, rng=0, size=8, features=3):
    g = np.random.default_rng(rng)
    s = (size - 2) // 2
    return npnet.Sequential(npnet.Conv2D(1, 2, 3, weight_init="he_uniform", dtype=dtype, rng=g),
                            npnet.MaxPool2D(2, dtype=dtype), npnet.ReLU(dtype), npnet.Flatten(dtype=dtype),
                            npnet.LinearLayer(2 * s * s, features, dtype=dtype, rng=g), npnet.ReLU(dtype))


def _image_model(dtype=np.float64, rng=0, **kw):
    kw = {"num_layers": 1, "cell": "lstm", "output_size": 4, **kw}
    return SequenceModel(3, 5, read_in=_conv_read_in(dtype, rng), dtype=dtype, rng=rng + 1, **kw)


@pytest.mark.parametrize("use_mask", [False, True])
def test_gradcheck_conv_read_in(rng, use_mask):
    m = _image_model(num_layers=2, cell=["gru", "lstm"])
    assert {"read_in.0.W", "read_in.0.b", "read_in.4.W", "read_in.4.b", "cells.0.b_hn"} <= set(m.params)
    x = rng.random((2, 3, 1, 8, 8))                                     # (B, T, C, H, W)
    mask = _mask(2, 3, [3, 2]) if use_mask else None
    _check(m, x, _random_state(m, 2, rng), mask)


def test_gradcheck_layer_read_in_last_step_only(rng):
    read_in = npnet.Sequential(npnet.LinearLayer(4, 3, rng=0), npnet.ReLU())
    m = SequenceModel(3, 4, cell="rnn", read_in=read_in, output_size=2, return_sequences=False, rng=1)
    _check(m, rng.standard_normal((3, 5, 4)), None, _mask(3, 5, [5, 1, 3]))


def test_layer_read_in_equals_the_hand_composition(rng):
    m = _image_model(rng=4)
    inner = SequenceModel(3, 5, cell="lstm", output_size=4, rng=0)
    for k in inner.params:
        inner.params[k] = m.params[k]
    read_in = _conv_read_in(rng=4)
    x = rng.random((2, 3, 1, 8, 8))
    y, _ = m.fprop(x)
    z = read_in.fprop(x.reshape(6, 1, 8, 8))                              # every step at once
    y_ref, _ = inner.fprop(z.reshape(2, 3, 3))
    np.testing.assert_array_equal(y, y_ref)
    dy = rng.standard_normal(y.shape)
    dx, _ = m.bprop(dy)
    dz, _ = inner.bprop(dy)
    np.testing.assert_array_equal(dx, read_in.bprop(dz.reshape(6, 3)).reshape(x.shape))
    for k in read_in.params:                                             # weights shared over time:
        np.testing.assert_array_equal(m.grads[f"read_in.{k}"], read_in.grads[k])   # one sum over B*T


def test_layer_read_in_step_loop_equals_fprop(rng):
    m = _image_model(rng=5)
    x = rng.random((2, 4, 1, 8, 8))
    y, s = m.fprop(x)
    m.clear_cache()
    assert not m.read_in.has_cache and not m.read_in[0].has_cache
    state, ys = None, []
    for t in range(4):
        y_t, state = m.step(x[:, t], state)
        ys.append(y_t)
    np.testing.assert_allclose(np.stack(ys, axis=1), y, rtol=1e-12, atol=1e-12)
    assert not m.read_in[0].has_cache


def test_layer_read_in_float32_modes_and_config(rng):
    m = _image_model(dtype=np.float32, rng=6, dropout=0.0)
    y, state = m.fprop(rng.random((2, 3, 1, 8, 8)).astype(np.float32))
    dx, _ = m.bprop(np.ones_like(y))
    assert y.dtype == dx.dtype == np.float32 and all(g.dtype == np.float32 for g in m.grads.values())
    assert dx.shape == (2, 3, 1, 8, 8)
    m.read_in.training = None
    m.eval()
    assert m.read_in.training is False
    m.train()
    assert m.read_in.training is True
    cfg = json.loads(json.dumps(m.get_config()))
    assert cfg["read_in"]["class"] == "Sequential"
    m2 = SequenceModel.from_config(cfg)
    assert m2.get_config() == m.get_config() and m2.dtype == np.float32
    assert {k: v.shape for k, v in m2.params.items()} == {k: v.shape for k, v in m.params.items()}


def test_checkpoint_round_trip_with_a_layer_read_in(rng, tmp_path):
    m = _image_model(rng=7)
    opt = npnet.optim.Adam(m.params, lr=1e-3)
    npnet.save_checkpoint(tmp_path / "ck.npz", m, opt, step=3)
    ck = npnet.load_checkpoint(tmp_path / "ck.npz")
    assert isinstance(ck.model.read_in, npnet.Sequential) and ck.step == 3
    x = rng.random((2, 3, 1, 8, 8))
    np.testing.assert_array_equal(ck.model.fprop(x)[0], m.fprop(x)[0])


def _image_sequences(rng, B=3, T=3):
    """An endless Stream factory: (B, T, 1, 8, 8) images whose targets are each step's brightest row."""
    while True:
        x = rng.random((B, T, 1, 8, 8))
        yield x, np.argmax(x[:, :, 0].sum(axis=3), axis=2) % 4            # (B, T) classes 0..3


@pytest.mark.parametrize("k", [2, 3])
def test_learner_resume_with_a_layer_read_in_is_bit_exact(tmp_path, k):
    from npnet.data import Stream
    N = 5
    whole = npnet.Learner(_image_model(rng=8), "ce", "adam", lr=1e-2, progress=False)
    whole.fit(Stream(_image_sequences, 1), steps=N)
    first = npnet.Learner(_image_model(rng=8), "ce", "adam", lr=1e-2, progress=False)
    first.fit(Stream(_image_sequences, 1), steps=k)
    first.save(tmp_path / "ck.npz")
    second = npnet.Learner.resume(tmp_path / "ck.npz", "ce", progress=False)
    assert isinstance(second.model.read_in, npnet.Sequential)
    second.fit(Stream(_image_sequences, 1), steps=N - k)
    assert second.step == N
    for key, v in whole.model.params.items():
        np.testing.assert_array_equal(v, second.model.params[key], err_msg=key)
    assert not np.array_equal(whole.model.params["read_in.0.W"], _image_model(rng=8).params["read_in.0.W"])
    assert [r["loss"] for r in whole.history] == [r["loss"] for r in second.history]


def test_layer_read_in_errors(rng):
    with pytest.raises(NpnetError, match="read_in must be a layer.*has no fprop"):
        SequenceModel(3, 4, read_in="conv")
    with pytest.raises(NpnetError, match="read_in layer has dtype float32, the model float64"):
        SequenceModel(3, 4, read_in=npnet.ReLU(np.float32))
    m = _image_model(rng=9)
    with pytest.raises(ShapeError, match=r"x must have shape \(B, T, \.\.\.\)"):
        m.fprop(rng.random((2, 64)))
    wrong = SequenceModel(4, 5, read_in=_conv_read_in(features=3), rng=0)          # input_size 4 != 3
    with pytest.raises(ShapeError, match=r"must map x reshaped to \(B\*T, \.\.\.\) to \(6, 4\).*got shape \(6, 3\)"):
        wrong.fprop(rng.random((2, 3, 1, 8, 8)))
    with pytest.raises(ShapeError, match=r"to \(2, 4\)"):
        wrong.step(rng.random((2, 1, 8, 8)))
    with pytest.raises(ShapeError, match="Conv2D expects x of shape"):
        m.fprop(rng.random((2, 3, 8, 8)))                                # no channel axis


def test_checkpoint_saved_before_reverse_read_out_keeps_its_read_out(rng, tmp_path):
    """A file whose config lacks the key (saved before it existed) loads with the old read-out;
    load_into(strict=True) does not silently put it into a model with the new one."""
    old = SequenceModel(2, 3, cell="gru", bidirectional=True, output_size=2, return_sequences=False,
                        reverse_read_out="last_step", rng=4)
    cfg = old.get_config()
    del cfg["reverse_read_out"]
    old.get_config = lambda: dict(cfg)                      # what an older npnet wrote
    npnet.save_checkpoint(tmp_path / "old.npz", old)
    back = npnet.load_checkpoint(tmp_path / "old.npz").model
    assert back.reverse_read_out == "last_step"
    x = rng.standard_normal((2, 4, 2))
    np.testing.assert_array_equal(back.fprop(x)[0], old.fprop(x)[0])
    new = SequenceModel(2, 3, cell="gru", bidirectional=True, output_size=2, return_sequences=False, rng=5)
    with pytest.raises(npnet.CheckpointError, match="reverse_read_out"):
        npnet.checkpoint.load_into(tmp_path / "old.npz", new)
    same = SequenceModel(2, 3, cell="gru", bidirectional=True, output_size=2, return_sequences=False,
                         reverse_read_out="last_step", rng=6)
    npnet.checkpoint.load_into(tmp_path / "old.npz", same)  # strict: the old file IS a last_step model
    np.testing.assert_array_equal(same.fprop(x)[0], old.fprop(x)[0])
