"""Batches for sequence models: padding variable-length sequences, and seeded re-iterable streams.

A :class:`Stream` wraps a generator function that takes an ``np.random.Generator``;
all of its randomness lives in that Generator, whose ``bit_generator.state`` a
checkpoint can capture, so a resumed run sees exactly the batches the
uninterrupted run would have seen. Nothing here knows about models or training.
"""
from __future__ import annotations

import itertools

import numpy as np

__all__ = ["pad_sequences", "Stream", "minibatches", "take"]

from ..layer import NpnetError, ShapeError, as_rng


def pad_sequences(seqs, dtype=np.float64, maxlen: int | None = None, value=0):
    """Stack variable-length sequences into one zero-padded batch (padding at the end).

    Parameters
    ----------
    seqs : sequence of B array-likes, each of shape (T_b, D) or (T_b,)
        All with the same trailing shape; T_b may be 0.
    dtype : output dtype of ``x`` (e.g. np.int64 for class-index targets)
    maxlen : int or None
        Pad or cut every sequence to this many steps (None: the longest T_b).
    value : the padding value

    Returns
    -------
    x : ndarray of shape (B, T, D) (or (B, T) for 1-d sequences)
    mask : bool ndarray of shape (B, T), True on real steps
    lengths : int64 ndarray of shape (B,), the (possibly cut) lengths
    """
    seqs = [np.asarray(s) for s in seqs]
    if not seqs:
        raise ShapeError("pad_sequences needs at least one sequence")
    tail = seqs[0].shape[1:]
    for i, s in enumerate(seqs):
        if s.ndim not in (1, 2) or s.shape[1:] != tail:
            raise ShapeError(f"every sequence must have shape (T_b,) + {tail} like the first "
                             f"(1-d or 2-d), got shape {s.shape} at index {i}")
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)              # (B,)
    if maxlen is not None:
        if int(maxlen) < 1:
            raise ShapeError(f"maxlen must be >= 1 or None, got {maxlen}")
        lengths = np.minimum(lengths, int(maxlen))
    T = int(maxlen) if maxlen is not None else int(lengths.max())
    if T == 0:
        raise ShapeError("all sequences are empty: nothing to pad")
    x = np.full((len(seqs), T) + tail, value, dtype=dtype)                   # (B, T[, D])
    for b, (s, n) in enumerate(zip(seqs, lengths)):
        x[b, :n] = s[:n]
    mask = np.arange(T)[None, :] < lengths[:, None]                          # (B, T) bool
    return x, mask, lengths


class Stream:
    """A seeded, re-iterable source of batches: ``iter(stream)`` = ``factory(stream.rng, *args, **kw)``.

    Parameters
    ----------
    factory : callable(rng, *args, **kwargs) -> iterator of batches
        Typically a generator function yielding ``(x, y)`` or ``(x, y, mask)``. It must
        draw ALL of its randomness from the Generator it is given (no other state
        across batches), so the Generator's state determines the batches to come.
    rng : np.random.Generator, int seed or None
    *args, **kwargs : passed on to ``factory``.

    Each ``iter()`` starts a new pass with the Generator where the previous pass
    left it (a finite factory = one epoch, reshuffled every pass; an infinite one =
    an endless stream). ``rng.bit_generator.state`` is what a checkpoint stores.
    """

    def __init__(self, factory, rng=None, *args, **kwargs):
        if not callable(factory):
            raise NpnetError(f"factory must be a callable(rng, ...) returning an iterator, got {factory!r}")
        self.factory, self.rng, self.args, self.kwargs = factory, as_rng(rng), args, kwargs

    def __iter__(self):
        return iter(self.factory(self.rng, *self.args, **self.kwargs))

    def __repr__(self) -> str:
        return f"Stream({getattr(self.factory, '__name__', self.factory)!r})"


def minibatches(rng, x, y, mask=None, batch_size: int = 32, shuffle: bool = True, drop_last: bool = False):
    """One epoch of minibatches over arrays with a leading batch axis (a Stream factory).

    Yields ``(x[i], y[i])`` or ``(x[i], y[i], mask[i])`` for consecutive index blocks i
    of size ``batch_size`` of a permutation drawn from ``rng`` (identity if not shuffle).
    """
    n = len(x)
    if len(y) != n or (mask is not None and len(mask) != n):
        raise ShapeError(f"x, y (and mask) need the same number of rows, got {len(x)}, {len(y)}"
                         + ("" if mask is None else f", {len(mask)}"))
    if int(batch_size) < 1:
        raise ShapeError(f"batch_size must be >= 1, got {batch_size}")
    order = rng.permutation(n) if shuffle else np.arange(n)
    stop = n - n % batch_size if drop_last else n
    for s in range(0, stop, batch_size):
        i = order[s:s + batch_size]
        yield (x[i], y[i]) if mask is None else (x[i], y[i], mask[i])


def take(batches, n: int) -> list:
    """The first ``n`` batches of an iterable as a list (a fixed evaluation set)."""
    return list(itertools.islice(batches, int(n)))
