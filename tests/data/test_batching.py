"""pad_sequences, Stream, minibatches, take: shapes, values, seeding and capturable RNG state."""
import numpy as np
import pytest

import npnet
from npnet.data import Stream, minibatches, pad_sequences, take
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
