"""Tests of npnet.tasks: shapes, value ranges, masks, determinism under a seed, argument checks."""
import numpy as np
import pytest

from npnet import tasks
from npnet.layer import NpnetError


# -- memory -----------------------------------------------------------------------
def test_memory_layout_and_targets():
    x, y, mask = tasks.memory_batch(7, remember=3, seq_len=12, symbols=5, rng=0)
    K, L, S = 3, 12, 5
    gap = L - 2 * K - 1
    assert x.shape == (7, L, S + 2) and x.dtype == np.float64
    assert y.shape == (7, L) and y.dtype == np.int64
    assert mask.shape == (7, L) and mask.dtype == np.bool_
    np.testing.assert_array_equal(x.sum(-1), 1.0)                 # one-hot
    inp = x.argmax(-1)
    assert (inp[:, :K] < S).all()                                 # symbols first
    assert (inp[:, K:K + gap] == S).all()                         # then blanks
    assert (inp[:, K + gap] == S + 1).all()                       # the delimiter
    assert (inp[:, K + gap + 1:] == S).all()                      # blanks while recalling
    np.testing.assert_array_equal(y[:, -K:], inp[:, :K])          # recall = the stored symbols
    assert (y[:, :-K] == S).all()
    assert mask.sum() == 7 * K and mask[:, -K:].all()


def test_memory_gap_and_seq_len_agree():
    a = tasks.memory_batch(4, remember=5, gap=9, rng=3)
    b = tasks.memory_batch(4, remember=5, seq_len=20, rng=3)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert tasks.memory_layout(5, seq_len=20) == {"remember": 5, "gap": 9, "seq_len": 20, "recall": 15}
    assert tasks.memory_layout(1, seq_len=3)["gap"] == 0          # the shortest legal sequence


def test_memory_symbols_cover_alphabet_and_float32():
    x, y, mask = tasks.memory_batch(500, remember=4, seq_len=9, symbols=8, rng=1, dtype=np.float32)
    assert x.dtype == np.float32
    assert set(np.unique(y[mask])) == set(range(8))


@pytest.mark.parametrize("kwargs, match", [
    ({"remember": 5, "seq_len": 10}, r"seq_len must be >= .* = 11"),
    ({"remember": 0, "seq_len": 10}, "remember"),
    ({"remember": 2, "gap": -1}, "gap"),
    ({"remember": 2, "seq_len": 9, "gap": 4}, "not both"),
    ({"remember": 2.5, "seq_len": 9}, "remember"),
    ({"symbols": 0}, "symbols"),
])
def test_memory_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tasks.memory_batch(2, **kwargs)
    with pytest.raises(NpnetError, match=match):
        tasks.memory_task(2, **kwargs)                            # eagerly, not at first next()


def test_memory_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size"):
        tasks.memory_batch(0)


# -- generators -------------------------------------------------------------------
@pytest.mark.parametrize("make", [
    lambda rng, n=None: tasks.memory_task(3, remember=2, seq_len=8, rng=rng, num_batches=n),
    lambda rng, n=None: tasks.sine_task(3, seq_len=10, rng=rng, num_batches=n),
    lambda rng, n=None: tasks.counting_task(3, seq_len=6, rng=rng, num_batches=n),
    lambda rng, n=None: tasks.counting_task(3, seq_len=6, mode="regression", rng=rng, num_batches=n),
    lambda rng, n=None: tasks.first_element_task(3, seq_len=6, rng=rng, num_batches=n),
])
def test_generators_are_deterministic_under_a_seed(make):
    a, b, c = make(42), make(42), make(43)
    first_a, first_b, first_c = next(a), next(b), next(c)
    second_a = next(a)
    assert not np.array_equal(first_a.x, second_a.x)              # the stream moves on
    np.testing.assert_array_equal(first_a.x, first_b.x)
    np.testing.assert_array_equal(first_a.y, first_b.y)
    np.testing.assert_array_equal(next(b).x, second_a.x)
    assert not np.array_equal(first_a.x, first_c.x)               # another seed, other data
    g = np.random.default_rng(5)                                  # a Generator is used as is
    assert isinstance(next(make(g)).x, np.ndarray)
    assert len(list(make(0, 4))) == 4


# -- sine -------------------------------------------------------------------------
def test_sine_targets_are_next_samples_and_periods_in_range():
    x, y, mask = tasks.sine_batch(64, seq_len=100, rng=0)
    assert x.shape == y.shape == (64, 100, 1) and mask is None
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    assert np.abs(x).max() <= 1.0 and np.abs(x).max() > 0.99
    # recover each curve's period from its zero crossings: within [12.5, 50] (+ a sample of slack)
    s = np.concatenate([x[:, :, 0], y[:, -1:, 0]], axis=1)
    for row in s:
        ups = np.flatnonzero((row[:-1] < 0) & (row[1:] >= 0))
        if len(ups) >= 2:
            assert 11.5 <= np.diff(ups).mean() <= 51


def test_sine_period_range_is_configurable_and_checked():
    x, _, _ = tasks.sine_batch(2, seq_len=8, period=(4.0, 4.0), rng=1)
    np.testing.assert_allclose(x[:, 4:, 0], x[:, :4, 0], atol=1e-12)
    with pytest.raises(ValueError, match="period"):
        tasks.sine_batch(2, period=(10, 5))
    with pytest.raises(ValueError, match="period"):
        tasks.sine_batch(2, period=(0, 5))
    with pytest.raises(ValueError, match="seq_len"):
        tasks.sine_batch(2, seq_len=0)


# -- counting ---------------------------------------------------------------------
def test_counting_inputs_and_targets_agree():
    x, y, mask = tasks.counting_batch(300, seq_len=20, rng=0)
    xr, yr, _ = tasks.counting_batch(300, seq_len=20, mode="regression", rng=0)
    np.testing.assert_array_equal(x, xr)
    assert x.shape == (300, 20, 30) and y.shape == (300,) and y.dtype == np.int64 and mask is None
    assert yr.shape == (300, 1) and yr.dtype == np.float64
    np.testing.assert_array_equal(x.reshape(300, 20, 3, 10).sum(-1), 1.0)
    a, b, d = x[:, 0, :10].argmax(1), x[:, 0, 10:20].argmax(1), x[:, :, 20:].argmax(2)
    assert (a != b).all()
    assert (x[:, :, :20] == x[:, :1, :20]).all()                  # the query is shown at every step
    diff = (d == a[:, None]).sum(1) - (d == b[:, None]).sum(1)
    np.testing.assert_array_equal(yr[:, 0], diff)
    np.testing.assert_array_equal(y, np.select([diff > 0, diff < 0], [0, 1], 2))


def test_counting_class_rates_match_sampling():
    rates = tasks.counting_class_rates(20)
    assert rates.sum() == pytest.approx(1.0)
    assert 0.39 < rates.max() < 0.42                              # the ~41 % majority baseline
    _, y, _ = tasks.counting_batch(40000, seq_len=20, rng=2)
    np.testing.assert_allclose(np.bincount(y, minlength=3) / y.size, rates, atol=0.01)
    assert tasks.counting_class_rates(1)[2] == pytest.approx(0.8)  # T = 1: equal unless a or b shows


def test_counting_rejects_bad_arguments():
    with pytest.raises(ValueError, match="mode"):
        tasks.counting_batch(2, mode="ranking")
    with pytest.raises(ValueError, match="mode"):
        tasks.counting_task(2, mode="ranking")
    with pytest.raises(ValueError, match="seq_len"):
        tasks.counting_batch(2, seq_len=-3)


# -- first element ----------------------------------------------------------------
def test_first_element():
    x, y, mask = tasks.first_element_batch(50, seq_len=7, rng=0, dtype=np.float32)
    assert x.shape == (50, 7, 1) and y.shape == (50, 1) and mask is None
    assert x.dtype == y.dtype == np.float32
    assert (-1 <= x).all() and (x <= 1).all() and x.std() > 0.4
    np.testing.assert_array_equal(y, x[:, 0])
    y[0, 0] = 5.0                                                 # the target is a copy
    assert x[0, 0, 0] != 5.0
    x1, y1, _ = tasks.first_element_batch(3, seq_len=1, rng=0)     # T = 1 is legal
    np.testing.assert_array_equal(y1, x1[:, 0])
    with pytest.raises(ValueError, match="seq_len"):
        tasks.first_element_batch(3, seq_len=0)
    with pytest.raises(ValueError, match="num_batches"):
        tasks.first_element_task(3, num_batches=-1)
