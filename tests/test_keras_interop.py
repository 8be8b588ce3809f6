"""npnet.interop.keras_weights / load_keras_weights against Keras 3's own numbers, without Keras.

The fixtures tests/fixtures/keras_*.npz were written once by tools/make_keras_fixtures.py (Keras
3.15.1, JAX backend, float64 through JAX's x64 mode where the meta says so): Keras layers' weights as
get_weights() returned them, their outputs, final states and (jax.grad) gradients for
L = sum(out * dout) + sum(h_T * dh_T) [+ sum(c_T * dc_T)]. Masked cases used zero_output_for_mask=True
(npnet's convention) and also hold out_repeat, Keras's default (the state repeated at padded steps).
"""
import json
from pathlib import Path

import numpy as np
import pytest

import npnet
from npnet.interop import keras_weights, load_keras_weights

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CELL_CASES = ["rnn_tanh", "rnn_relu_mask", "lstm", "lstm_mask", "gru", "gru_mask", "gru_reset_before",
              "gru_reset_before_mask", "lstm_float32", "gru_reset_before_float32"]
TOL = {"float64": 1e-12, "float32": 1e-6}


def load(name):
    with np.load(FIXTURES / f"keras_{name}.npz") as f:
        data = {k: f[k] for k in f.files}
    data["meta"] = json.loads(str(data["meta"]))
    return data


def assert_close(got, want, what, tol):
    """max |got - want| <= tol * max(1, max |want|)."""
    got, want = np.asarray(got), np.asarray(want)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    err = float(np.max(np.abs(got - want)))
    assert err <= tol * max(1.0, float(np.max(np.abs(want)))), f"{what}: max |diff| {err:.3g} > {tol:g}"


def twin(meta, D, H, rng=0):
    """The npnet cell for a fixture's Keras layer (activation and reset_after are not in the weights)."""
    dtype = np.dtype(meta["dtype"])
    if meta["layer"] == "SimpleRNN":
        return npnet.BasicRNNCell(D, H, meta["args"]["activation"], dtype=dtype, rng=rng)
    if meta["layer"] == "LSTM":
        return npnet.LSTMCell(D, H, dtype=dtype, rng=rng)
    return npnet.GRUCell(D, H, dtype=dtype, rng=rng, reset_after=meta["args"]["reset_after"])


def states(f, prefix, suffix=""):
    """The fixture's (h, c) / h arrays named prefix + 'h' + suffix, in npnet's public state form."""
    h, c = f.get(f"{prefix}h{suffix}"), f.get(f"{prefix}c{suffix}")
    return h if c is None else (h, c)


def parts(state):
    return state if isinstance(state, tuple) else (state,)


def keras_repeat_convention(out, mask, h0):
    """npnet's outputs (zeros at padded steps) -> Keras's default outputs (zero_output_for_mask=False):
    the state carried into a padded step, i.e. the last real step's output, or h0 before any."""
    T = mask.shape[1]
    last = np.maximum.accumulate(np.where(mask, np.arange(T), -1), axis=1)   # (B, T) last real step <= t, or -1
    filled = np.take_along_axis(out, np.maximum(last, 0)[..., None], axis=1)
    return np.where((last >= 0)[..., None], filled, h0[:, None, :])


# ------------------------------------------------------------------- Keras's numbers
@pytest.mark.parametrize("name", CELL_CASES)
def test_loaded_weights_give_keras_outputs_and_gradients(name):
    f = load(name)
    meta, tol = f["meta"], TOL[f["meta"]["dtype"]]
    B, T, D = f["x"].shape
    H = f["out"].shape[2]
    cell = twin(meta, D, H)
    load_keras_weights(cell, [f["w0"], f["w1"], f["w2"]])
    state0 = states(f, "", "0") if "h0" in f else None
    out, state_T = cell.fprop(f["x"], state0, f.get("mask"))
    dx, dstate0 = cell.bprop(f["dout"], states(f, "d", "_T"))
    assert out.dtype == np.dtype(meta["dtype"])
    assert_close(out, f["out"], "out", tol)
    for k, (got, want) in enumerate(zip(parts(state_T), parts(states(f, "", "_T")))):
        assert_close(got, want, f"final state {k}", tol)
    assert_close(dx, f["dx"], "dx", tol)
    if state0 is not None:
        for k, (got, want) in enumerate(zip(parts(dstate0), parts(states(f, "d", "0")))):
            assert_close(got, want, f"gradient of initial state {k}", tol)
    for k, g in enumerate(keras_weights(cell, grads=True)):
        assert_close(g, f[f"dw{k}"], f"gradient of weight {k}", tol)


@pytest.mark.parametrize("name", [n for n in CELL_CASES if load(n)["meta"]["masked"]])
def test_keras_default_mask_convention_from_npnet_outputs(name):
    """Keras without zero_output_for_mask repeats the carried state at padded steps; npnet outputs 0 there.
    The conversion in docs/interop.md turns one into the other."""
    f = load(name)
    B, T, D = f["x"].shape
    H = f["out"].shape[2]
    cell = twin(f["meta"], D, H)
    load_keras_weights(cell, [f["w0"], f["w1"], f["w2"]])
    state0 = states(f, "", "0") if "h0" in f else None
    out, _ = cell.fprop(f["x"], state0, f["mask"])
    h0 = f.get("h0", np.zeros((B, H), out.dtype))
    assert not np.allclose(out, f["out_repeat"])                 # the conventions really differ here
    assert_close(keras_repeat_convention(out, f["mask"], h0), f["out_repeat"], "out_repeat", TOL[f["meta"]["dtype"]])


def test_sequence_model_equals_the_keras_model():
    """Dense(5) -> Bidirectional(GRU(4, reset_after=False)) -> Bidirectional(LSTM(3)) -> Dense(2), masked."""
    f = load("model_mask")
    weights = [f[f"w{k}"] for k in range(16)]
    model = npnet.SequenceModel(3, [4, 3], num_layers=2, cell=["gru", "lstm"], read_in=5, output_size=2,
                                bidirectional=True, cell_kwargs=[{"reset_after": False}, {}], rng=0)
    load_keras_weights(model, weights)                           # flat, as keras.Model.get_weights()
    out, _ = model.fprop(f["x"], mask=f["mask"])
    assert_close(out, f["out"], "model output", 1e-12)
    grouped = keras_weights(model)
    assert [len(g) for g in grouped] == [2, 6, 6, 2]
    for got, want in zip([w for g in grouped for w in g], weights):
        assert np.array_equal(got, want)                         # no GRU(reset_after=True) here: all exact


# ------------------------------------------------------------------------ round trips
def randomised(cell_or_model, seed=0):
    prng = np.random.default_rng(seed)
    for p in cell_or_model.params.values():
        p[...] = prng.standard_normal(p.shape)
    return cell_or_model


CELLS = {
    "rnn": lambda dtype: npnet.BasicRNNCell(3, 4, "relu", dtype=dtype, rng=0),
    "lstm": lambda dtype: npnet.LSTMCell(3, 4, dtype=dtype, rng=0),
    "gru": lambda dtype: npnet.GRUCell(3, 4, dtype=dtype, rng=0),
    "gru_reset_before": lambda dtype: npnet.GRUCell(3, 4, dtype=dtype, rng=0, reset_after=False),
}
KERAS_SHAPES = {"rnn": [(3, 4), (4, 4), (4,)], "lstm": [(3, 16), (4, 16), (16,)],
                "gru": [(3, 12), (4, 12), (2, 12)], "gru_reset_before": [(3, 12), (4, 12), (12,)]}


@pytest.mark.parametrize("kind", CELLS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_cell_round_trip_is_exact(kind, dtype):
    cell = randomised(CELLS[kind](dtype))
    weights = keras_weights(cell)
    assert [w.shape for w in weights] == KERAS_SHAPES[kind]
    assert all(w.dtype == dtype for w in weights)
    other = CELLS[kind](dtype)
    load_keras_weights(other, weights)
    for k in cell.params:
        assert np.array_equal(other.params[k], cell.params[k]), k
    weights[0][...] = 7.0                                        # new arrays, not views of the params
    assert not np.any(cell.params["W_x"] == 7.0)


def test_gate_orders_and_bias_layout():
    """Keras GRU z, r, h = npnet r, z, n swapped; LSTM i, f, c, o = npnet's i, f, g, o; GRU bias[1] = [0, 0, b_hn]."""
    H = 2
    gru = npnet.GRUCell(1, H, rng=0)
    gru.params["W_x"][...] = np.repeat([1.0, 2.0, 3.0], H)      # r, z, n blocks
    gru.params["b"][...] = np.repeat([10.0, 20.0, 30.0], H)
    gru.params["b_hn"][...] = 5.0
    kernel, _, bias = keras_weights(gru)
    assert kernel.tolist() == [[2.0, 2.0, 1.0, 1.0, 3.0, 3.0]]
    assert bias.tolist() == [[20.0, 20.0, 10.0, 10.0, 30.0, 30.0], [0.0, 0.0, 0.0, 0.0, 5.0, 5.0]]
    lstm = npnet.LSTMCell(1, H, rng=0)
    lstm.params["W_x"][...] = np.repeat([1.0, 2.0, 3.0, 4.0], H)
    assert keras_weights(lstm)[0].tolist() == [[1.0, 1.0, 2.0, 2.0, 3.0, 3.0, 4.0, 4.0]]


def test_gru_two_keras_biases_add_up_and_gradients_follow_autograd():
    cell = npnet.GRUCell(2, 3, rng=0)
    kernel, recurrent = np.zeros((2, 9)), np.zeros((3, 9))
    bias = np.arange(18.0).reshape(2, 9)                         # Keras order z, r, h in each row
    load_keras_weights(cell, [kernel, recurrent, bias])
    np.testing.assert_array_equal(cell.params["b"], [3 + 12, 4 + 13, 5 + 14, 0 + 9, 1 + 10, 2 + 11, 6, 7, 8])
    np.testing.assert_array_equal(cell.params["b_hn"], [15, 16, 17])
    cell.grads["b"][...] = np.arange(9.0)                        # npnet order r, z, n
    cell.grads["b_hn"][...] = [-1.0, -2.0, -3.0]
    _, _, db = keras_weights(cell, grads=True)
    np.testing.assert_array_equal(db[0], [3, 4, 5, 0, 1, 2, 6, 7, 8])
    np.testing.assert_array_equal(db[1], [3, 4, 5, 0, 1, 2, -1, -2, -3])


@pytest.mark.parametrize("bidirectional", [False, True])
def test_sequence_model_round_trip_is_exact(bidirectional):
    model = randomised(npnet.SequenceModel(3, [4, 5], num_layers=2, cell=["gru", "rnn"], read_in=6,
                                           output_size=2, bidirectional=bidirectional, rng=0,
                                           cell_kwargs=[{"reset_after": False}, {}]))
    weights = keras_weights(model)
    per_cell = 6 if bidirectional else 3
    assert [len(g) for g in weights] == [2, per_cell, per_cell, 2]
    assert weights[0][0].shape == (3, 6) and weights[-1][0].shape == (5 * (1 + bidirectional), 2)
    if bidirectional:                                            # forward cell's arrays, then the backward cell's
        assert np.array_equal(weights[1][3], keras_weights(model.cells_reverse[0])[0])
    other = npnet.SequenceModel(**model.get_config())
    load_keras_weights(other, weights)
    assert all(np.array_equal(other.params[k], model.params[k]) for k in model.params)


def test_embedding_read_in_and_bias_free_read_out():
    model = randomised(npnet.SequenceModel(4, 3, cell="lstm", read_in=npnet.Embedding(7, 4, rng=0), rng=0))
    weights = keras_weights(model)
    assert [[w.shape for w in g] for g in weights] == [[(7, 4)], [(4, 12), (3, 12), (12,)]]
    other = npnet.SequenceModel(4, 3, cell="lstm", read_in=npnet.Embedding(7, 4, rng=1), rng=1)
    load_keras_weights(other, weights)
    assert all(np.array_equal(other.params[k], model.params[k]) for k in model.params)


def test_use_bias_false_loads_zero_biases():
    cell = randomised(npnet.GRUCell(2, 3, rng=0))
    load_keras_weights(cell, [np.ones((2, 9)), np.ones((3, 9))])
    assert not cell.params["b"].any() and not cell.params["b_hn"].any()


# ----------------------------------------------------------------------------- errors
def test_gru_bias_of_the_other_form_names_reset_after():
    after, before = npnet.GRUCell(2, 3, rng=0), npnet.GRUCell(2, 3, rng=0, reset_after=False)
    with pytest.raises(npnet.NpnetError, match=r"GRU\(reset_after=False\).*this GRUCell has reset_after=True"):
        load_keras_weights(after, keras_weights(before))
    with pytest.raises(npnet.NpnetError, match=r"GRU\(reset_after=True\).*this GRUCell has reset_after=False"):
        load_keras_weights(before, keras_weights(after))


@pytest.mark.parametrize("bad, message", [
    (lambda w: w[:1], r"must be \[kernel \(2, 12\), recurrent_kernel \(3, 12\), bias \(12,\)\].*got 1 arrays"),
    (lambda w: w + [w[2]], r"keras.layers.LSTM\(3\).get_weights\(\).*got 4 arrays"),
    (lambda w: [w[0].T, w[1], w[2]], r"kernel \(keras.layers.LSTM\(3\)\) must have shape \(2, 12\), got \(12, 2\)"),
    (lambda w: [w[0], w[1][:2], w[2]], r"recurrent_kernel .* must have shape \(3, 12\), got \(2, 12\)"),
    (lambda w: [w[0], w[1], np.full(12, np.nan)], r"bias .* contains NaN or inf"),
    (lambda w: [w[0], w[1], w[2].astype(complex)], r"must hold real numbers"),
    (lambda w: {"kernel": w[0]}, r"must be a list of arrays as Keras's get_weights\(\) returns, got dict"),
])
def test_bad_cell_weights_raise_clear_errors_and_write_nothing(bad, message):
    cell = randomised(npnet.LSTMCell(2, 3, rng=0))
    before = {k: v.copy() for k, v in cell.params.items()}
    weights = keras_weights(npnet.LSTMCell(2, 3, rng=1))
    with pytest.raises(npnet.NpnetError, match=message):
        load_keras_weights(cell, bad(weights))
    assert all(np.array_equal(cell.params[k], before[k]) for k in before)


def test_bad_model_weights_raise_and_write_nothing():
    model = randomised(npnet.SequenceModel(3, 4, cell="gru", output_size=2, bidirectional=True, rng=0))
    before = {k: v.copy() for k, v in model.params.items()}
    good = keras_weights(model)
    with pytest.raises(npnet.NpnetError, match=r"one list per Keras layer \['layer 0', 'read_out'\], got 1"):
        load_keras_weights(model, good[:1])
    with pytest.raises(npnet.NpnetError, match=r"must hold 8 arrays \(\[6, 2\] per layer\), got 7"):
        load_keras_weights(model, sum(good, [])[:7])
    wrong_read_out = [good[0], [good[1][0].T, good[1][1]]]
    with pytest.raises(npnet.NpnetError, match=r"weights of read_out kernel must have shape \(8, 2\)"):
        load_keras_weights(model, wrong_read_out)
    with pytest.raises(npnet.NpnetError, match=r"bidirectional layer 0 must be the forward layer's arrays"):
        load_keras_weights(model, [good[0][:5], good[1]])
    wrong_backward = [good[0][:3] + [good[0][3][:, :3]] + good[0][4:], good[1]]
    with pytest.raises(npnet.NpnetError, match=r"weights of layer 0 backward kernel"):
        load_keras_weights(model, wrong_backward)
    assert all(np.array_equal(model.params[k], before[k]) for k in before)


def test_no_keras_layout_for_other_objects():
    with pytest.raises(npnet.NpnetError, match="no Keras layout for LinearLayer"):
        keras_weights(npnet.LinearLayer(2, 3, rng=0))
    conv_read_in = npnet.Sequential(npnet.LinearLayer(2, 3, rng=0), npnet.ReLU())
    model = npnet.SequenceModel(3, 4, cell="rnn", read_in=conv_read_in, rng=0)
    with pytest.raises(npnet.NpnetError, match="no Keras layout for a read_in Sequential"):
        keras_weights(model)
