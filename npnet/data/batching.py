"""Batches for sequence models: padding, seeded re-iterable streams, length buckets and splits.

A :class:`Stream` wraps a generator function that takes an ``np.random.Generator``;
all of its randomness lives in that Generator, whose ``bit_generator.state`` a
checkpoint can capture, so a resumed run sees exactly the batches the
uninterrupted run would have seen. Nothing here knows about models or training.
"""
from __future__ import annotations

import itertools

import numpy as np

__all__ = ["pad_sequences", "Stream", "minibatches", "take", "bucket_by_length", "stratified_split"]

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


def bucket_by_length(rng, lengths, batch_size: int = 32, shuffle: bool = True, drop_last: bool = False,
                     pool_batches: int = 50, collate=None):
    """One epoch of batches of sequences of similar length (a Stream factory, a batch sampler).

    Padding a batch to its longest sequence wastes ``B * T_max - sum(T_b)`` steps; grouping
    sequences of similar length cuts that waste while keeping the batches random:

    1. draw a permutation of range(N) from ``rng`` (shuffle=True);
    2. cut it into pools of ``pool_batches * batch_size`` indices and sort each pool by length
       (stable, so equal lengths keep their random order);
    3. cut the pools into consecutive batches of ``batch_size`` (only the very last batch can
       be smaller; ``drop_last=True`` drops it) and yield the batches in an order drawn from
       ``rng``.

    A larger ``pool_batches`` gives less padding and less randomness (one pool over the whole
    set = every batch a slice of the length-sorted data); this is the "sortish" sampler of
    fastai and Hugging Face's ``group_by_length`` (pools of 50 batches). With shuffle=False the
    whole set is sorted by length (stable) and the batches come shortest first; ``rng`` is
    not used.

    Parameters
    ----------
    rng : np.random.Generator (a :class:`Stream` passes its own)
    lengths : array-like of shape (N,), non-negative ints: the length T_n of each sequence
    batch_size, pool_batches : int >= 1
    collate : callable(idx) -> batch, or None
        Applied to each index batch, e.g. ``lambda i: pad_sequences([seqs[j] for j in i])``;
        None yields the indices themselves.

    Returns
    -------
    An iterator of int64 index arrays of shape (b,), b <= batch_size (or of ``collate(idx)``).
    The arguments are checked and ``rng`` drawn from when it is called; ``collate`` runs lazily.
    """
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or (lengths.size and not np.issubdtype(lengths.dtype, np.integer)):
        raise ShapeError(f"lengths must be a 1-D array of ints (N,), got shape {lengths.shape} "
                         f"dtype {lengths.dtype}")
    if lengths.size and lengths.min() < 0:
        raise ShapeError(f"lengths must be >= 0, got {int(lengths.min())}")
    if int(batch_size) < 1 or int(pool_batches) < 1:
        raise ShapeError(f"batch_size and pool_batches must be >= 1, got {batch_size} and {pool_batches}")
    batch_size, n = int(batch_size), lengths.size
    if shuffle:
        order = rng.permutation(n)                                             # (N,)
        pool = int(pool_batches) * batch_size
        order = np.concatenate([p[np.argsort(lengths[p], kind="stable")]
                                for p in np.split(order, range(pool, n, pool))]) if n else order
    else:
        order = np.argsort(lengths, kind="stable")                             # (N,)
    stop = n - n % batch_size if drop_last else n
    batches = [order[s:s + batch_size].astype(np.int64) for s in range(0, stop, batch_size)]
    turn = rng.permutation(len(batches)) if shuffle else range(len(batches))
    return (batches[k] if collate is None else collate(batches[k]) for k in turn)


def stratified_split(labels, test_fraction: float = 0.2, rng=0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded train/test split that keeps each class's proportion.

    For each class c with n_c examples, round(test_fraction * n_c) of them (chosen by a
    permutation from ``rng``) go to test, but never all of them: a class with n_c >= 2 keeps
    at least one training example, and a class with a single example stays in train.
    The same labels and seed always give the same split.

    Returns (train_idx, test_idx): sorted int64 index arrays that partition range(N).
    """
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise NpnetError(f"labels must be 1-D (N,), got shape {labels.shape}")
    if not 0.0 <= float(test_fraction) < 1.0:
        raise NpnetError(f"test_fraction must be in [0, 1), got {test_fraction}")
    rng = as_rng(rng)
    test = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)                                # (n_c,)
        n_test = min(int(round(test_fraction * idx.size)), idx.size - 1)
        test.append(rng.permutation(idx)[:n_test])
    test_idx = np.sort(np.concatenate(test)).astype(np.int64) if test else np.zeros(0, np.int64)
    is_test = np.zeros(labels.size, dtype=bool)
    is_test[test_idx] = True
    return np.flatnonzero(~is_test).astype(np.int64), test_idx
