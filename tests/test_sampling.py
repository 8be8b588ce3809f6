"""npnet.sample and npnet.sampling.draw: greedy decoding, top-k, the empirical distribution of the
draws against the softmax, the prime in the output, modes and caches left as found, and errors."""
import numpy as np
import pytest

import npnet
from npnet.activations import softmax
from npnet.sampling import draw

V = 7


def _one_hot_model(seed=0, **kw):
    model = npnet.SequenceModel(V, 12, cell="gru", output_size=V, rng=seed, **kw)
    model.params["read_out.W"] *= 4.0               # peaked outputs: greedy paths are not ties
    return model


def _greedy_by_hand(model, prime, steps):
    """Independent greedy decoding: every prime id and every output through model.step, one-hot rows."""
    eye = np.eye(V)
    state, out = None, list(prime)
    for i in prime:
        y, state = model.step(eye[[i]], state)
    for _ in range(steps):
        nxt = int(np.argmax(y[0]))
        out.append(nxt)
        y, state = model.step(eye[[nxt]], state)
    return out


def test_temperature_zero_is_greedy_decoding():
    model = _one_hot_model()
    prime = [3, 1, 4, 1, 5]
    got = npnet.sample(model, prime, 20, temperature=0, one_hot=True)
    assert got.dtype.kind == "i" and got.shape == (25,)
    np.testing.assert_array_equal(got, _greedy_by_hand(model, prime, 20))


def test_top_k_one_is_greedy_whatever_the_temperature():
    model = _one_hot_model(seed=3)
    want = _greedy_by_hand(model, [0, 2], 15)
    for tau in (0.5, 1.0, 3.0):
        np.testing.assert_array_equal(npnet.sample(model, [0, 2], 15, temperature=tau, top_k=1,
                                                   rng=0, one_hot=True), want)


def _binomial_ok(counts, p, n, sigmas=5.0):
    sd = np.sqrt(n * p * (1 - p)) + 1e-12
    return np.abs(counts - n * p) <= sigmas * sd + 1e-9


@pytest.mark.parametrize("tau", [0.5, 1.0, 2.0])
def test_draw_frequencies_match_the_softmax(tau):
    z = np.array([1.0, -0.5, 2.0, 0.0, 0.3, -2.0])
    rng = np.random.default_rng(7)
    n = 20000
    counts = np.bincount([draw(z, tau, rng=rng) for _ in range(n)], minlength=z.size)
    p = softmax(z / tau)
    assert _binomial_ok(counts, p, n).all(), (counts / n, p)
    # the check can fail: the untempered softmax is far off for tau != 1
    if tau != 1.0:
        assert not _binomial_ok(counts, softmax(z), n).all()


def test_draw_top_k_renormalises_over_the_k_largest():
    z = np.array([0.1, 2.0, -1.0, 1.5, 0.5])
    rng = np.random.default_rng(1)
    n = 20000
    counts = np.bincount([draw(z, 1.0, top_k=2, rng=rng) for _ in range(n)], minlength=z.size)
    assert counts[[0, 2, 4]].sum() == 0
    p = softmax(np.array([2.0, 1.5]))
    assert _binomial_ok(counts[[1, 3]], p, n).all()
    assert draw(z, 1.0, top_k=99, rng=0) in range(5)                   # k > V: all classes
    assert draw(np.float32([0, 5, 1]), 0) == 1


def test_sample_first_draw_follows_the_model_softmax():
    model = _one_hot_model(seed=5)
    model.params["read_out.W"] /= 4.0                # flatter: several classes get drawn
    prime = [1, 2, 3]
    out, _ = model.eval().fprop(np.eye(V)[prime][None])
    model.clear_cache()
    p = softmax(out[0, -1] / 0.8)
    rng = np.random.default_rng(11)
    n = 1500
    firsts = [npnet.sample(model, prime, 1, temperature=0.8, rng=rng, one_hot=True)[3] for _ in range(n)]
    counts = np.bincount(firsts, minlength=V)
    assert _binomial_ok(counts, p, n).all(), (counts / n, p)


def test_seeded_reproducible_and_prime_included():
    model = _one_hot_model()
    a = npnet.sample(model, [1, 2], 30, rng=123, one_hot=True)
    b = npnet.sample(model, np.array([1, 2]), 30, rng=np.random.default_rng(123), one_hot=True)
    np.testing.assert_array_equal(a, b)
    assert a[:2].tolist() == [1, 2] and a.shape == (32,)
    np.testing.assert_array_equal(npnet.sample(model, [4], 0, one_hot=True), [4])


@pytest.mark.parametrize("training", [True, False])
def test_mode_restored_and_no_cache_left(training):
    model = _one_hot_model(num_layers=2, dropout=0.5)
    model.train() if training else model.eval()
    npnet.sample(model, [1, 2, 3], 5, rng=0, one_hot=True)
    assert model.training is training
    assert not model.has_cache and not any(c.has_cache for _, c in model.recurrent_cells())
    # dropout is off while sampling: greedy output equals the independent (dropout-free) decoding
    np.testing.assert_array_equal(npnet.sample(model, [1, 2, 3], 8, temperature=0, one_hot=True),
                                  _greedy_by_hand(model, [1, 2, 3], 8))


@pytest.mark.parametrize("kwargs,match", [
    ({"temperature": -1.0}, "temperature"), ({"temperature": float("nan")}, "temperature"),
    ({"temperature": "1"}, "temperature"), ({"top_k": 0}, "top_k"), ({"top_k": 2.5}, "top_k"),
    ({"steps": -1}, "steps"), ({"steps": 2.0}, "steps"), ({"prime": []}, "prime"),
    ({"prime": [0.0, 1.0]}, "prime"), ({"prime": [[1, 2]]}, "prime"), ({"prime": [1, V]}, "prime"),
])
def test_bad_arguments(kwargs, match):
    args = {"prime": [1, 2], "steps": 3, "one_hot": True, **kwargs}
    with pytest.raises(npnet.NpnetError, match=match):
        npnet.sample(_one_hot_model(), args.pop("prime"), args.pop("steps"), **args)


def test_float_model_without_one_hot_and_bidirectional_refused():
    with pytest.raises(npnet.NpnetError, match="one_hot=True"):
        npnet.sample(_one_hot_model(), [1, 2], 3)
    with pytest.raises(npnet.NpnetError, match="bidirectional"):
        npnet.sample(_one_hot_model(bidirectional=True), [1, 2], 3, one_hot=True)
    wide = npnet.SequenceModel(3, 4, output_size=5, rng=0)
    with pytest.raises(npnet.NpnetError, match="width 3"):
        npnet.sample(wide, [1, 2], 3, one_hot=True)
    with pytest.raises(npnet.ShapeError, match="logits"):
        draw(np.array([1.0, np.nan]))


def test_embedding_read_in_greedy_and_seeded():
    model = npnet.SequenceModel(5, 12, cell="lstm", output_size=V, read_in=npnet.Embedding(V, 5, rng=0), rng=1)
    model.params["read_out.W"] *= 4.0
    state, out = None, [2, 6, 0]
    for i in out:
        y, state = model.step(np.array([i]), state)
    for _ in range(12):
        out.append(int(np.argmax(y[0])))
        y, state = model.step(np.array([out[-1]]), state)
    np.testing.assert_array_equal(npnet.sample(model, [2, 6, 0], 12, temperature=0), out)
    a = npnet.sample(model, [2, 6, 0], 12, temperature=1.3, top_k=3, rng=5)
    np.testing.assert_array_equal(a, npnet.sample(model, [2, 6, 0], 12, temperature=1.3, top_k=3, rng=5))
    assert a.min() >= 0 and a.max() < V
    with pytest.raises(npnet.ShapeError, match=r"\[0, 7\)"):
        npnet.sample(model, [2, 9], 3)
