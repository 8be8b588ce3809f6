"""npnet.CharNGram: probabilities computed by hand on a toy corpus, an exact reference written
differently (fractions, raw event lists) on random corpora, every P(. | h) sums to 1, nats is
the mean of -log_probs over the events, and bad input gets a clear error."""
import itertools
import math
from fractions import Fraction

import numpy as np
import pytest

import npnet
from npnet import CharNGram, NpnetError, ShapeError

A, B = 0, 1                          # the toy alphabet; the model adds E = 2 (end) and S = 3 (start)
TOY = [[A, B], [A]]                  # "ab", "a"


def test_witten_bell_bigram_by_hand():
    # events: (S)->a, (a)->b, (b)->E, (S)->a, (a)->E. Outcomes (a, b, E), V' = 3.
    # ():  a 2, b 1, E 2; c = 5, N1+ = 3: P = (c + 3 * 1/3) / 8            = (3/8, 2/8, 3/8)
    # (S): a 2;           c = 2, N1+ = 1: P = (c + P()) / 3                 = (19/24, 1/12, 1/8)
    # (a): b 1, E 1;      c = 2, N1+ = 2: P = (c + 2 P()) / 4               = (3/16, 3/8, 7/16)
    # (b): E 1;           c = 1, N1+ = 1: P = (c + P()) / 2                 = (3/16, 1/8, 11/16)
    m = CharNGram(2, order=2).fit(TOY)
    assert (m.end_id, m.start_id, m.n_events) == (2, 3, 5)
    np.testing.assert_allclose(np.exp(m.log_probs([])), [19 / 24, 1 / 12, 1 / 8], rtol=1e-14)
    np.testing.assert_allclose(np.exp(m.log_probs([B, A])), [3 / 16, 3 / 8, 7 / 16], rtol=1e-14)
    np.testing.assert_allclose(np.exp(m.log_probs([A, B])), [3 / 16, 1 / 8, 11 / 16], rtol=1e-14)
    want = -(math.log(19 / 24) + math.log(3 / 8) + math.log(11 / 16)) / 3      # "ab": a|S, b|a, E|b
    assert m.nats([[A, B]]) == pytest.approx(want, rel=1e-14)
    assert m.nats([[]]) == pytest.approx(-math.log(1 / 8), rel=1e-14)            # the empty name: E|S


def test_add_k_trigram_by_hand():
    # (S,S): a 2 -> (3, 1, 1)/5;  (S,a): b 1, E 1 -> (1, 2, 2)/5;  (a,b): E 1 -> (1, 1, 2)/4; unseen: 1/3
    m = CharNGram(2, order=3, smoothing="add-k", k=1).fit(TOY)
    np.testing.assert_allclose(np.exp(m.log_probs([])), [3 / 5, 1 / 5, 1 / 5], rtol=1e-14)
    np.testing.assert_allclose(np.exp(m.log_probs([A])), [1 / 5, 2 / 5, 2 / 5], rtol=1e-14)
    np.testing.assert_allclose(np.exp(m.log_probs([B, A, B])), [1 / 4, 1 / 4, 2 / 4], rtol=1e-14)
    np.testing.assert_allclose(np.exp(m.log_probs([B, A])), [1 / 3] * 3, rtol=1e-14)
    half = CharNGram(2, order=3, smoothing="add-k", k=0.5).fit(TOY)          # k enters: (2.5, .5, .5)/3.5
    np.testing.assert_allclose(np.exp(half.log_probs([])), [5 / 7, 1 / 7, 1 / 7], rtol=1e-14)


def test_conditioned_unigram_by_hand_backs_off_to_all_conditions():
    # condition 0: "a", condition 1: "b". All: a 1, b 1, E 2; c 4, N1+ 3 -> (2/7, 2/7, 3/7)
    # condition 0: a 1, E 1; c 2, N1+ 2 -> (c + 2 P_all) / 4 = (11/28, 4/28, 13/28)
    m = CharNGram(2, order=1, n_conditions=2).fit([[A], [B]], conditions=[0, 1])
    np.testing.assert_allclose(np.exp(m.log_probs([], 0)), [11 / 28, 4 / 28, 13 / 28], rtol=1e-14)
    np.testing.assert_allclose(np.exp(m.log_probs([], 1)), [4 / 28, 11 / 28, 13 / 28], rtol=1e-14)
    np.testing.assert_array_equal(m.log_probs([B, B, A], 0), m.log_probs([], 0))   # order 1: no context


# -- an exact reference, written differently: raw event lists and Fractions ------------------------
def reference_prob(train, w, cond, hist, order, V, smoothing, k):
    """P(w | cond, hist) from the list of training events (cond, padded history, outcome)."""
    V1 = V + 1

    def counts(c, h):              # events whose condition is c (None: any) and history ends with h
        return [o for (ec, eh, o) in train if (c is None or ec == c) and (len(h) == 0 or eh[-len(h):] == h)]

    if smoothing == "add-k":
        seen = counts(cond, hist)
        return (Fraction(seen.count(w)) + Fraction(k)) / (len(seen) + Fraction(k) * V1)
    chain = [(cond, hist[j:]) for j in range(len(hist) + 1)] + ([(None, ())] if cond is not None else [])
    p = Fraction(1, V1)
    for c, h in reversed(chain):
        seen = counts(c, h)
        if seen:
            p = (seen.count(w) + len(set(seen)) * p) / (len(seen) + len(set(seen)))
    return p


def events(seqs, conds, order, V):
    out = []
    for s, c in zip(seqs, conds):
        padded = [V + 1] * (order - 1) + list(s) + [V]
        out += [(c, tuple(padded[t:t + order - 1]), padded[t + order - 1]) for t in range(len(s) + 1)]
    return out


@pytest.mark.parametrize("order", [1, 2, 3, 4])
@pytest.mark.parametrize("smoothing,k", [("witten-bell", 1.0), ("add-k", 1.0), ("add-k", 0.25)])
@pytest.mark.parametrize("n_cond", [None, 3])
def test_matches_an_exact_reference_on_random_corpora(order, smoothing, k, n_cond):
    rng = np.random.default_rng(order * 10 + (n_cond or 0))
    V = 4
    train = [rng.integers(0, V, size=rng.integers(0, 6)) for _ in range(25)]
    test = [rng.integers(0, V, size=rng.integers(0, 7)) for _ in range(10)]
    ctr = None if n_cond is None else rng.integers(0, n_cond, size=len(train))
    cte = None if n_cond is None else rng.integers(0, n_cond, size=len(test))
    m = CharNGram(V, order=order, n_conditions=n_cond, smoothing=smoothing, k=k).fit(train, ctr)
    ref_train = events(train, [None] * len(train) if ctr is None else ctr.tolist(), order, V)
    ev = events(test, [None] * len(test) if cte is None else cte.tolist(), order, V)
    want = -sum(math.log(reference_prob(ref_train, w, c, h, order, V, smoothing, k)) for c, h, w in ev) / len(ev)
    assert m.nats(test, cte) == pytest.approx(want, rel=1e-12)
    c, h, _ = ev[-1]
    got = np.exp(m.log_probs([x for x in h if x != V + 1], c))
    np.testing.assert_allclose(got, [float(reference_prob(ref_train, w, c, h, order, V, smoothing, k))
                                     for w in range(V + 1)], rtol=1e-12)


@pytest.mark.parametrize("smoothing", ["witten-bell", "add-k"])
@pytest.mark.parametrize("order,n_cond", [(1, None), (2, 2), (3, None), (3, 2)])
def test_every_distribution_sums_to_one(smoothing, order, n_cond):
    V = 3
    rng = np.random.default_rng(5)
    train = [rng.integers(0, V, size=rng.integers(0, 5)) for _ in range(12)]
    conds = None if n_cond is None else rng.integers(0, n_cond, size=len(train))
    m = CharNGram(V, order=order, n_conditions=n_cond, smoothing=smoothing, k=0.3).fit(train, conds)
    contexts = [c for n in range(order + 1) for c in itertools.product(range(V), repeat=n)]   # seen and unseen
    for cond in ([None] if n_cond is None else range(n_cond)):
        for ctx in contexts:
            p = np.exp(m.log_probs(list(ctx), cond))                    # (V + 1,)
            assert p.shape == (V + 1,) and (p > 0).all()
            assert p.sum() == pytest.approx(1.0, abs=1e-13)


def test_nats_is_the_mean_of_minus_log_probs_over_every_event():
    rng = np.random.default_rng(1)
    train = [rng.integers(0, 5, size=rng.integers(1, 8)) for _ in range(40)]
    conds = rng.integers(0, 2, size=40)
    m = CharNGram(5, n_conditions=2).fit(train, conds)
    test = [rng.integers(0, 5, size=rng.integers(0, 8)) for _ in range(15)]
    tc = rng.integers(0, 2, size=15)
    terms = [-m.log_probs(s[:t], int(c))[s[t] if t < len(s) else m.end_id]
             for s, c in zip(test, tc) for t in range(len(s) + 1)]
    assert m.nats(test, tc) == pytest.approx(np.mean(terms), rel=1e-13)


def test_longer_histories_and_the_condition_help_on_structured_data():
    # condition 0 alternates a b a b ..., condition 1 repeats c: a trigram per condition beats a unigram
    seqs = [[0, 1] * 3, [0, 1] * 2, [2] * 5, [2] * 3] * 5
    conds = [0, 0, 1, 1] * 5
    nats = {(o, nc): CharNGram(3, order=o, n_conditions=nc).fit(seqs, conds if nc else None)
            .nats(seqs, conds if nc else None) for o in (1, 3) for nc in (None, 2)}
    assert nats[3, 2] < nats[3, None] < nats[1, None]
    assert nats[3, 2] < nats[1, 2] < nats[1, None]


def test_refit_replaces_the_counts():
    m = CharNGram(2, order=2).fit([[B, B, B]])
    m.fit(TOY)
    np.testing.assert_allclose(np.exp(m.log_probs([])), [19 / 24, 1 / 12, 1 / 8], rtol=1e-14)


@pytest.mark.parametrize("kwargs,match", [
    ({"vocab_size": 0}, "vocab_size"), ({"vocab_size": 2.0}, "vocab_size"), ({"vocab_size": True}, "vocab_size"),
    ({"vocab_size": 2, "order": 0}, "order"), ({"vocab_size": 2, "n_conditions": 0}, "n_conditions"),
    ({"vocab_size": 2, "smoothing": "kneser-ney"}, "smoothing"), ({"vocab_size": 2, "k": 0}, "k must"),
    ({"vocab_size": 2, "k": float("nan")}, "k must"), ({"vocab_size": 2, "smoothing": "add-k", "k": -1}, "k must"),
])
def test_bad_constructor_arguments(kwargs, match):
    with pytest.raises(NpnetError, match=match):
        CharNGram(**kwargs)


def test_bad_data_and_calls():
    m = CharNGram(2, n_conditions=2)
    with pytest.raises(NpnetError, match="not fitted"):
        m.nats(TOY, [0, 1])
    with pytest.raises(NpnetError, match="not fitted"):
        m.log_probs([], 0)
    with pytest.raises(NpnetError, match="one condition per sequence"):
        m.fit(TOY)
    with pytest.raises(ShapeError, match="one entry per sequence"):
        m.fit(TOY, [0])
    with pytest.raises(NpnetError, match=r"conditions\[1\] must be an int in \[0, 2\)"):
        m.fit(TOY, [0, 2])
    with pytest.raises(ShapeError, match=r"outside \[0, 2\)"):
        m.fit([[0, 2]], [0])                                           # the end id is never given
    with pytest.raises(ShapeError, match="integer ids"):
        m.fit([[0.0, 1.0]], [0])
    with pytest.raises(ShapeError, match="is empty"):
        m.fit([], [])
    with pytest.raises(ShapeError, match="wrap it in a list"):
        m.fit(np.array([0, 1]), [0])
    m.fit(TOY, [0, 1])
    with pytest.raises(NpnetError, match="condition must be an int"):
        m.log_probs([0], None)
    with pytest.raises(ShapeError, match="context"):
        m.log_probs([[0, 1]], 0)
    with pytest.raises(ShapeError, match=r"outside \[0, 2\)"):
        m.log_probs([-1], 0)
    plain = CharNGram(2).fit(TOY)
    with pytest.raises(NpnetError, match="no conditions"):
        plain.nats(TOY, [0, 1])
    with pytest.raises(NpnetError, match="no conditions"):
        plain.log_probs([0], 1)


def test_exported_from_npnet():
    assert npnet.CharNGram is CharNGram
