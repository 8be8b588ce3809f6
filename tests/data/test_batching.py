"""pad_sequences, Stream, minibatches, take, bucket_by_length, stratified_split: shapes, values,
seeding and capturable RNG state."""
import numpy as np
import pytest

import npnet
from npnet.data import Stream, bucket_by_length, minibatches, pad_sequences, stratified_split, take
from npnet.layer import NpnetError, ShapeError


def test_pad_sequences_2d(rng):
    seqs = [rng.standard_normal((n, 3)) for n in (4, 1, 0, 2)]
    x, mask, lengths = npnet.pad_sequences(seqs)
    assert x.shape == (4, 4, 3) and x.dtype == np.float64
    assert mask.dtype == np.bool_ and mask.shape == (4, 4)
    np.testing.assert_array_equal(lengths, [4, 1, 0, 2])
    np.testing.assert_array_equal(mask.sum(axis=1), lengths)
    for b, s in enumerate(seqs):
        np.testing.assert_array_equal(x[b, :len(s)], s)
        np.testing.assert_array_equal(x[b, len(s):], 0.0)
        assert mask[b, :len(s)].all() and not mask[b, len(s):].any()


def test_pad_sequences_1d_int_maxlen_and_value():
    x, mask, lengths = pad_sequences([[1, 2, 3], [4]], dtype=np.int64, value=-1)
    np.testing.assert_array_equal(x, [[1, 2, 3], [4, -1, -1]])
    assert x.dtype == np.int64
    x, mask, lengths = pad_sequences([[1, 2, 3], [4]], dtype=np.float32, maxlen=2)
    np.testing.assert_array_equal(x, [[1, 2], [4, 0]])
    np.testing.assert_array_equal(mask, [[True, True], [True, False]])
    np.testing.assert_array_equal(lengths, [2, 1])
    assert x.dtype == np.float32


def test_pad_sequences_feeds_a_model(rng):
    seqs = [rng.standard_normal((n, 2)) for n in (5, 3)]
    x, mask, _ = pad_sequences(seqs)
    m = npnet.SequenceModel(2, 3, cell="gru", output_size=1, return_sequences=False, rng=0)
    y, _ = m.fprop(x, None, mask)
    y_short, _ = m.fprop(seqs[1][None])
    np.testing.assert_allclose(y[1], y_short[0], atol=1e-13)


def test_pad_sequences_errors():
    with pytest.raises(ShapeError, match="at least one"):
        pad_sequences([])
    with pytest.raises(ShapeError, match=r"index 1"):
        pad_sequences([np.zeros((2, 3)), np.zeros((2, 4))])
    with pytest.raises(ShapeError, match="empty"):
        pad_sequences([np.zeros((0, 3))])
    with pytest.raises(ShapeError, match="maxlen"):
        pad_sequences([[1.0]], maxlen=0)


def _noise(rng, B=2):
    while True:
        yield rng.standard_normal((B, 3, 1)), rng.standard_normal((B, 3, 1))


def test_stream_is_seeded_and_its_state_reproduces_the_rest():
    a, b = take(Stream(_noise, 7), 3), take(Stream(_noise, 7), 3)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(take(Stream(_noise, 8), 1)[0][0], a[0][0])

    s = Stream(_noise, 7)
    it = iter(s)
    next(it)
    saved = s.rng.bit_generator.state                              # after one batch
    rest = [next(it) for _ in range(2)]
    s2 = Stream(_noise, 0)
    s2.rng.bit_generator.state = saved
    again = take(iter(s2), 2)
    for (x1, _), (x2, _) in zip(rest, again):
        np.testing.assert_array_equal(x1, x2)


def test_minibatches_cover_every_row_once_per_pass(rng):
    x, y = np.arange(10)[:, None, None] * np.ones((10, 2, 1)), np.arange(10)
    mask = np.ones((10, 2), bool)
    s = Stream(minibatches, 3, x, y, mask, batch_size=4)
    p1, p2 = list(s), list(s)
    assert [len(b[1]) for b in p1] == [4, 4, 2] and len(p1[0]) == 3
    assert sorted(np.concatenate([b[1] for b in p1])) == list(range(10))
    assert not np.array_equal(np.concatenate([b[1] for b in p1]), np.concatenate([b[1] for b in p2]))
    fixed = list(minibatches(rng, x, y, batch_size=4, shuffle=False, drop_last=True))
    assert [b[1].tolist() for b in fixed] == [[0, 1, 2, 3], [4, 5, 6, 7]] and len(fixed[0]) == 2
    with pytest.raises(ShapeError, match="same number of rows"):
        list(minibatches(rng, x, y[:3]))


def test_take_does_not_consume_more_than_asked():
    it = iter(range(10))
    assert take(it, 3) == [0, 1, 2]
    assert next(it) == 3
    with pytest.raises(NpnetError, match="factory"):
        Stream(42)


# -- stratified split ------------------------------------------------------------------------------
def test_stratified_split_deterministic_and_proportional():
    labels = np.repeat(np.arange(5), [100, 50, 7, 2, 1])
    rng = np.random.default_rng(0)
    labels = labels[rng.permutation(labels.size)]
    tr1, te1 = stratified_split(labels, 0.2, rng=42)
    tr2, te2 = stratified_split(labels, 0.2, rng=42)
    np.testing.assert_array_equal(tr1, tr2)
    np.testing.assert_array_equal(te1, te2)
    tr3, te3 = stratified_split(labels, 0.2, rng=43)
    assert not np.array_equal(te1, te3)
    # a partition of range(N)
    np.testing.assert_array_equal(np.sort(np.concatenate([tr1, te1])), np.arange(labels.size))
    assert np.all(np.diff(tr1) > 0) and np.all(np.diff(te1) > 0)
    # per class: round(0.2 n_c) in test, at least one kept for training
    np.testing.assert_array_equal(np.bincount(labels[te1], minlength=5), [20, 10, 1, 0, 0])
    np.testing.assert_array_equal(np.bincount(labels[tr1], minlength=5), [80, 40, 6, 2, 1])
    tr, te = stratified_split(labels, 0.0, rng=0)
    assert te.size == 0 and tr.size == labels.size
    with pytest.raises(ValueError):
        stratified_split(labels, 1.0)
    with pytest.raises(ValueError):
        stratified_split(labels.reshape(-1, 2))




# -- bucketing by length ---------------------------------------------------------------------------
def _padding(batches, lengths):
    """Padded steps: sum over batches of b * max(T) - sum(T)."""
    return sum(len(i) * lengths[i].max() - lengths[i].sum() for i in batches)


def test_bucket_by_length_is_a_seeded_partition(rng):
    lengths = rng.integers(1, 40, size=203)
    a = list(bucket_by_length(np.random.default_rng(7), lengths, batch_size=16, pool_batches=4))
    b = list(bucket_by_length(np.random.default_rng(7), lengths, batch_size=16, pool_batches=4))
    c = list(bucket_by_length(np.random.default_rng(8), lengths, batch_size=16, pool_batches=4))
    assert len(a) == 13 and all(i.dtype == np.int64 for i in a)
    assert [len(i) for i in a].count(16) == 12 and sorted(len(i) for i in a)[0] == 203 - 12 * 16
    np.testing.assert_array_equal(np.sort(np.concatenate(a)), np.arange(203))    # each index once
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    assert not all(np.array_equal(x, y) for x, y in zip(a, c))
    full = list(bucket_by_length(np.random.default_rng(7), lengths, batch_size=16, drop_last=True))
    assert len(full) == 12 and all(len(i) == 16 for i in full)
    assert len(np.unique(np.concatenate(full))) == 192


def test_bucket_by_length_one_pool_gives_slices_of_the_sorted_lengths(rng):
    lengths = rng.integers(0, 100, size=96)
    batches = list(bucket_by_length(rng, lengths, batch_size=8, pool_batches=12))   # one pool
    got = sorted(tuple(np.sort(lengths[i])) for i in batches)
    want = sorted(tuple(s) for s in np.sort(lengths).reshape(12, 8))
    assert got == want
    maxes = [int(lengths[i].max()) for i in batches]                 # batches come in random order
    assert maxes != sorted(maxes) and maxes != sorted(maxes, reverse=True)
    # shuffle=False: the whole set sorted (stable), shortest batch first, rng untouched
    state = rng.bit_generator.state
    plain = list(bucket_by_length(rng, lengths, batch_size=8, shuffle=False))
    assert rng.bit_generator.state == state
    np.testing.assert_array_equal(np.concatenate(plain), np.argsort(lengths, kind="stable"))


def test_bucket_by_length_pads_less_than_random_batches(rng):
    lengths = rng.integers(1, 60, size=640)
    random = list(minibatches(np.random.default_rng(0), np.arange(640), np.arange(640), batch_size=32))
    random = [x for x, _ in random]
    bucketed = list(bucket_by_length(np.random.default_rng(0), lengths, batch_size=32, pool_batches=5))
    # 5 batches per pool: lengths within a batch span about a fifth of the range or less
    assert _padding(bucketed, lengths) < 0.25 * _padding(random, lengths)


def test_bucket_by_length_in_a_stream_with_collate_resumes_from_rng_state():
    rng = np.random.default_rng(3)
    seqs = [np.full((n, 2), float(n)) for n in rng.integers(1, 12, size=50)]
    lengths = [len(s) for s in seqs]
    stream = Stream(bucket_by_length, 5, lengths, batch_size=8,
                    collate=lambda i: pad_sequences([seqs[j] for j in i]))
    first = list(stream)
    x, mask, lens = first[0]
    assert x.shape[0] == len(lens) <= 8 and x.shape[1] == lens.max() and mask.sum() == lens.sum()
    state = stream.rng.bit_generator.state
    second = list(stream)                                  # a new pass: a new order
    assert any(a[0].shape != b[0].shape or not np.array_equal(a[0], b[0]) for a, b in zip(first, second))
    stream.rng.bit_generator.state = state
    again = list(stream)
    assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(second, again))


def test_bucket_by_length_errors_name_the_argument():
    g = np.random.default_rng(0)
    with pytest.raises(ShapeError, match="1-D array of ints"):
        bucket_by_length(g, [[1, 2]], batch_size=2)
    with pytest.raises(ShapeError, match="1-D array of ints"):
        bucket_by_length(g, [1.5, 2.0], batch_size=2)
    with pytest.raises(ShapeError, match=">= 0"):
        bucket_by_length(g, [3, -1], batch_size=2)
    with pytest.raises(ShapeError, match="batch_size and pool_batches"):
        bucket_by_length(g, [3, 1], batch_size=0)
    with pytest.raises(ShapeError, match="batch_size and pool_batches"):
        bucket_by_length(g, [3, 1], pool_batches=0)
    assert list(bucket_by_length(g, np.zeros(0, np.int64), batch_size=4)) == []
