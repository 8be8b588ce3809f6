"""Synthetic sequence tasks that probe what a recurrent network can remember and count.

Each task has a one-batch function (``memory_batch``, ...) and a seeded generator
(``memory_task``, ...) that yields such batches for ever (or ``num_batches`` times).
Inputs are batch-first float arrays (B, T, D); targets are integer classes or floats.
Nothing here knows about models: the arrays feed any npnet model or user code.
"""
from __future__ import annotations

import math
from typing import Iterator, NamedTuple

import numpy as np

from ..layer import NpnetError, as_float_dtype, as_rng

__all__ = [
    "Batch", "memory_batch", "memory_task", "memory_layout", "sine_batch", "sine_task",
    "counting_batch", "counting_task", "counting_class_rates", "first_element_batch",
    "first_element_task", "COUNTING_CLASSES",
]


class Batch(NamedTuple):
    """One batch of a task: ``x, y, mask = batch``.

    x : ndarray (B, T, D) float
    y : ndarray of targets: (B, T) int classes, (B, T, 1) floats, (B,) ints or (B, 1) floats
    mask : ndarray (B, T) bool or None
        Which steps are scored (the memory task's recall steps); None when the
        target is read out after the last step or every step counts.
    """
    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray | None = None


# -- argument checks ------------------------------------------------------------
def _positive_int(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise NpnetError(f"{name} must be an integer >= {minimum}, got {value!r}")
    if value < minimum:
        raise NpnetError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


class _Repeat:
    """An iterator calling ``make()`` ``num_batches`` times (None: for ever).

    ``endless`` is True without ``num_batches``: ``Learner.fit`` reads it to refuse, at once,
    a pass over data that never ends (an epoch count over it would run for ever).
    """

    def __init__(self, make, num_batches):
        self.make, self.num_batches, self.n = make, num_batches, 0

    @property
    def endless(self) -> bool:
        return self.num_batches is None

    def __iter__(self):
        return self

    def __next__(self) -> Batch:
        if self.num_batches is not None and self.n >= self.num_batches:
            raise StopIteration
        self.n += 1
        return self.make()


def _repeat(make, num_batches) -> Iterator[Batch]:
    """An iterator calling ``make()`` ``num_batches`` times (None: for ever); checks eagerly."""
    if num_batches is not None:
        num_batches = _positive_int(num_batches, "num_batches", 0)
    return _Repeat(make, num_batches)


def _one_hot(idx: np.ndarray, depth: int, dtype) -> np.ndarray:
    out = np.zeros(idx.shape + (depth,), dtype)               # (..., depth)
    np.put_along_axis(out, idx[..., None], 1.0, axis=-1)
    return out


# -- memory (copy) ----------------------------------------------------------------
def memory_layout(remember: int = 5, seq_len: int | None = None, gap: int | None = None) -> dict:
    """Resolve and check the memory task's lengths.

    Give ``seq_len`` (L) or ``gap`` (not both; default gap 10). They are tied by
    L = 2 K + gap + 1: K symbols, ``gap`` blanks, one delimiter, K recall steps.

    Returns
    -------
    dict with ``remember`` (K), ``gap``, ``seq_len`` (L) and ``recall`` (the
    first recall step, K + gap + 1).
    """
    K = _positive_int(remember, "remember (K)")
    if seq_len is not None and gap is not None:
        raise NpnetError("give seq_len or gap, not both (seq_len = 2 * remember + gap + 1)")
    if seq_len is None:
        gap = 10 if gap is None else _positive_int(gap, "gap", 0)
        seq_len = 2 * K + gap + 1
    else:
        seq_len = _positive_int(seq_len, "seq_len")
        if seq_len < 2 * K + 1:
            raise NpnetError(
                f"seq_len must be >= 2 * remember + 1 = {2 * K + 1} (K symbols, a delimiter, "
                f"K recall steps), got seq_len={seq_len} with remember={K}")
        gap = seq_len - 2 * K - 1
    return {"remember": K, "gap": gap, "seq_len": seq_len, "recall": K + gap + 1}


def memory_batch(batch_size: int, remember: int = 5, seq_len: int | None = None,
                 gap: int | None = None, symbols: int = 8, rng=None,
                 dtype=np.float64) -> Batch:
    """One batch of the memory (copy) task.

    Tests whether a network can store K symbols for ``gap`` + K steps and then
    replay them in order: the span it must bridge grows with the gap.

    Layout of one sequence (L = 2K + gap + 1 steps)::

        input:   s_1 .. s_K  blank x gap  DELIM  blank x K
        target:  blank x (K + gap + 1)           s_1 .. s_K

    Symbols are drawn uniformly from ``symbols`` classes (0 .. symbols-1);
    class ``symbols`` is the blank and ``symbols + 1`` the delimiter.

    Parameters
    ----------
    batch_size : int (B)
    remember : int (K), default 5
    seq_len : int (L) or None; gap : int or None -- see :func:`memory_layout`
    symbols : int, default 8 (chance accuracy on the recall steps is 1 / symbols)
    rng : numpy.random.Generator, int seed or None
    dtype : float32 or float64 (of ``x``)

    Returns
    -------
    Batch with
      x : (B, L, symbols + 2) one-hot over symbols + blank + delimiter
      y : (B, L) int64 classes in [0, symbols] (``symbols`` = blank)
      mask : (B, L) bool, True on the K recall steps (the scored ones)

    The mask says which steps to *score*; it is not a padding mask. Do not pass it as a
    model's ``mask`` (or as the third element of a Learner batch): a model carries its
    state through masked steps and ignores their input, so it would never see the symbols.
    Score with it instead, e.g. ``y[~mask] = -1`` and a loss that skips -1 (see
    ``experiments/common.py``), or ``loss.fprop(out, y, mask)`` in your own loop.
    """
    B = _positive_int(batch_size, "batch_size")
    S = _positive_int(symbols, "symbols")
    lay = memory_layout(remember, seq_len, gap)
    rng, dtype = as_rng(rng), as_float_dtype(dtype)
    K, L, r = lay["remember"], lay["seq_len"], lay["recall"]
    blank, delim = S, S + 1

    seq = rng.integers(0, S, size=(B, K))                       # (B, K) the symbols to store
    inp = np.full((B, L), blank, np.int64)                      # (B, L) input classes
    inp[:, :K] = seq
    inp[:, r - 1] = delim
    y = np.full((B, L), blank, np.int64)                        # (B, L) target classes
    y[:, r:] = seq
    mask = np.zeros((B, L), bool)                               # (B, L) recall steps
    mask[:, r:] = True
    return Batch(_one_hot(inp, S + 2, dtype), y, mask)


def memory_task(batch_size: int, remember: int = 5, seq_len: int | None = None,
                gap: int | None = None, symbols: int = 8, rng=None, dtype=np.float64,
                num_batches: int | None = None) -> Iterator[Batch]:
    """Yield :func:`memory_batch` batches from one seeded generator (for ever by default)."""
    memory_layout(remember, seq_len, gap)                       # fail now, not at first next()
    _positive_int(batch_size, "batch_size")
    _positive_int(symbols, "symbols")
    rng = as_rng(rng)
    return _repeat(lambda: memory_batch(batch_size, remember, seq_len, gap, symbols, rng, dtype),
                   num_batches)


# -- sine -------------------------------------------------------------------------
def _check_period(period) -> tuple[float, float]:
    try:
        lo, hi = (float(p) for p in period)
    except (TypeError, ValueError) as exc:
        raise NpnetError(f"period must be a pair (low, high) of sample counts, got {period!r}") from exc
    if not (0 < lo <= hi) or not math.isfinite(hi):
        raise NpnetError(f"period must satisfy 0 < low <= high, got ({lo}, {hi})")
    return lo, hi


def sine_batch(batch_size: int, seq_len: int = 100, period=(12.5, 50.0), rng=None,
               dtype=np.float64) -> Batch:
    """One batch of next-sample prediction on sine curves.

    Tests whether a network can infer a curve's frequency and phase from what it
    has seen and continue it: x_t = sin(2 pi t / P + phi) with the period P
    uniform in ``period`` (in samples) and the phase phi uniform in [0, 2 pi).

    Returns
    -------
    Batch with
      x : (B, T, 1) the samples x_0 .. x_{T-1}
      y : (B, T, 1) the next samples x_1 .. x_T
      mask : None
    """
    B = _positive_int(batch_size, "batch_size")
    T = _positive_int(seq_len, "seq_len")
    lo, hi = _check_period(period)
    rng, dtype = as_rng(rng), as_float_dtype(dtype)
    P = rng.uniform(lo, hi, size=(B, 1))                        # (B, 1) periods
    phi = rng.uniform(0.0, 2 * np.pi, size=(B, 1))              # (B, 1) phases
    t = np.arange(T + 1)                                        # (T+1,)
    s = np.sin(2 * np.pi * t / P + phi).astype(dtype)           # (B, T+1)
    return Batch(s[:, :-1, None].copy(), s[:, 1:, None].copy(), None)


def sine_task(batch_size: int, seq_len: int = 100, period=(12.5, 50.0), rng=None,
              dtype=np.float64, num_batches: int | None = None) -> Iterator[Batch]:
    """Yield :func:`sine_batch` batches from one seeded generator."""
    _positive_int(batch_size, "batch_size")
    _positive_int(seq_len, "seq_len")
    _check_period(period)
    rng = as_rng(rng)
    return _repeat(lambda: sine_batch(batch_size, seq_len, period, rng, dtype), num_batches)


# -- counting ---------------------------------------------------------------------
COUNTING_CLASSES = ("first more common", "second more common", "equal")


def counting_batch(batch_size: int, seq_len: int = 20, mode: str = "classification",
                   rng=None, dtype=np.float64) -> Batch:
    """One batch of the counting task.

    Tests whether a network can keep two running counts over a sequence and
    compare them at the end. Two different digits a, b are queried; the
    sequence holds ``seq_len`` digits uniform in 0..9. Every step shows
    one-hot(a), one-hot(b) and one-hot(digit_t), so D = 30. After the last step:

      classification: 0 if count(a) > count(b), 1 if count(b) > count(a), 2 if equal
      regression:     count(a) - count(b)

    The classes are not balanced; :func:`counting_class_rates` gives the exact
    rates (about 40 / 40 / 20 % at seq_len 20, so the majority baseline is ~40 %).

    Returns
    -------
    Batch with x (B, T, 30); y (B,) int64 classes or (B, 1) floats; mask None.
    """
    B = _positive_int(batch_size, "batch_size")
    T = _positive_int(seq_len, "seq_len")
    if mode not in ("classification", "regression"):
        raise NpnetError(f"mode must be 'classification' or 'regression', got {mode!r}")
    rng, dtype = as_rng(rng), as_float_dtype(dtype)
    a = rng.integers(0, 10, size=B)                             # (B,) first queried digit
    b = (a + rng.integers(1, 10, size=B)) % 10                  # (B,) second one, never equal to a
    digits = rng.integers(0, 10, size=(B, T))                   # (B, T)
    x = np.empty((B, T, 30), dtype)                             # (B, T, 30)
    x[:, :, :10] = _one_hot(a, 10, dtype)[:, None, :]
    x[:, :, 10:20] = _one_hot(b, 10, dtype)[:, None, :]
    x[:, :, 20:] = _one_hot(digits, 10, dtype)
    diff = (digits == a[:, None]).sum(1) - (digits == b[:, None]).sum(1)   # (B,)
    if mode == "regression":
        return Batch(x, diff.astype(dtype)[:, None], None)
    y = np.where(diff > 0, 0, np.where(diff < 0, 1, 2)).astype(np.int64)    # (B,)
    return Batch(x, y, None)


def counting_task(batch_size: int, seq_len: int = 20, mode: str = "classification", rng=None,
                  dtype=np.float64, num_batches: int | None = None) -> Iterator[Batch]:
    """Yield :func:`counting_batch` batches from one seeded generator."""
    _positive_int(batch_size, "batch_size")
    _positive_int(seq_len, "seq_len")
    if mode not in ("classification", "regression"):
        raise NpnetError(f"mode must be 'classification' or 'regression', got {mode!r}")
    rng = as_rng(rng)
    return _repeat(lambda: counting_batch(batch_size, seq_len, mode, rng, dtype), num_batches)


def counting_class_rates(seq_len: int = 20) -> np.ndarray:
    """Exact probabilities of the classes (first, second, equal) for uniform digits.

    The counts (c_a, c_b, rest) are multinomial(T; 0.1, 0.1, 0.8), so
    P(equal) = sum_k T! / (k! k! (T-2k)!) 0.01^k 0.8^(T-2k) and the other two
    classes share the rest by symmetry. ``max`` of the result is the majority
    baseline.
    """
    T = _positive_int(seq_len, "seq_len")
    p_eq = sum(math.factorial(T) / (math.factorial(k) ** 2 * math.factorial(T - 2 * k))
               * 0.01 ** k * 0.8 ** (T - 2 * k) for k in range(T // 2 + 1))
    return np.array([(1 - p_eq) / 2, (1 - p_eq) / 2, p_eq])


# -- first element ----------------------------------------------------------------
def first_element_batch(batch_size: int, seq_len: int = 20, rng=None, dtype=np.float64) -> Batch:
    """One batch of the first-element task.

    Tests pure long-range memory: the network reads ``seq_len`` numbers uniform
    in [-1, 1] and, after the last step, must output the first one. Every later
    number is a distractor, so the first must survive ``seq_len - 1`` updates.

    Returns
    -------
    Batch with x (B, T, 1), y (B, 1) = x[:, 0, :], mask None.
    """
    B = _positive_int(batch_size, "batch_size")
    T = _positive_int(seq_len, "seq_len")
    rng, dtype = as_rng(rng), as_float_dtype(dtype)
    x = rng.uniform(-1.0, 1.0, size=(B, T, 1)).astype(dtype)    # (B, T, 1)
    return Batch(x, x[:, 0, :].copy(), None)


def first_element_task(batch_size: int, seq_len: int = 20, rng=None, dtype=np.float64,
                       num_batches: int | None = None) -> Iterator[Batch]:
    """Yield :func:`first_element_batch` batches from one seeded generator."""
    _positive_int(batch_size, "batch_size")
    _positive_int(seq_len, "seq_len")
    rng = as_rng(rng)
    return _repeat(lambda: first_element_batch(batch_size, seq_len, rng, dtype), num_batches)
