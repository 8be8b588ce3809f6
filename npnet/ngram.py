"""CharNGram: a smoothed character n-gram model of short sequences (names), optionally per condition.

The count-based baseline a character-level recurrent generator has to beat: it knows the last
n - 1 symbols (and the condition, e.g. the language), nothing else. Plain NumPy and dicts; no
training loop, nothing learned by gradient.
"""
from __future__ import annotations

import math
from collections import Counter

import numpy as np

from .layer import NpnetError, ShapeError

SMOOTHINGS = ("witten-bell", "add-k")
_NO_CONDITION = -1                     # the condition slot of a history that ignores the condition


class CharNGram:
    """Character n-gram model of whole sequences with an end symbol, smoothed, optionally conditioned.

    Every sequence s_1 .. s_n (ids in [0, V)) is scored as n + 1 events: each s_t given its
    history, and the end symbol E = V given the whole sequence. The history of position t is
    the condition l (when ``n_conditions`` is given) and the n - 1 symbols before t, padded
    on the left with the start symbol S = V + 1 (S only ever appears in histories)::

        h_t = (l, s_{t-n+1}, ..., s_{t-1})           s_j = S for j < 1;   s_{n+1} = E is predicted
        P(s_1 .. s_n | l) = prod_{t=1}^{n+1} P(s_t | h_t)
        nats = - sum over all events of ln P(s_t | h_t)  /  number of events (ends included)

    The outcomes are the V' = V + 1 symbols 0 .. V-1 and E; c(h, w) counts w after history h
    in the training sequences and c(h) = sum_w c(h, w).

    ``smoothing="witten-bell"`` (interpolated Witten-Bell; Witten & Bell 1991, in the form of
    Chen & Goodman 1998, eq. 12): with N1+(h) = |{w : c(h, w) > 0}| the number of distinct
    outcomes seen after h, and h' the next shorter history::

        P(w | h) = (c(h, w) + N1+(h) P(w | h')) / (c(h) + N1+(h))      if c(h) > 0
        P(w | h) = P(w | h')                                           if c(h) = 0 (unseen)
        histories, longest first:  (l, s_{t-n+1..t-1}), (l, s_{t-n+2..t-1}), ..., (l),  ()
        (without conditions:       (s_{t-n+1..t-1}), ..., ()),   and below ()  P(w) = 1 / V'.

    So the condition is the last part of the history to be dropped: a trigram per language
    backs off to the bigram and unigram of that language, then to the unigram of all languages.
    The weight N1+(h) / (c(h) + N1+(h)) given to the shorter history is large where h was
    followed by many different symbols relative to how often it was seen.

    ``smoothing="add-k"`` (Lidstone): only the full history, ``k`` added to every count::

        P(w | h) = (c(h, w) + k) / (c(h) + k V')                         (unseen h: 1 / V')

    Every P(. | h) is a distribution over the V' outcomes and is > 0 everywhere.

    Parameters
    ----------
    vocab_size : int >= 1 (V), the ids the sequences use (the end and start symbols are added).
    order : int >= 1 (n): 1 unigram, 2 bigram, 3 trigram, ...
    n_conditions : int >= 1 or None
        The number of conditions (languages); None: an unconditioned model (no ``conditions``).
    smoothing : "witten-bell" (default) or "add-k"
    k : float > 0, the pseudo-count of add-k (ignored by witten-bell).

    Attributes
    ----------
    end_id : int, V (the end symbol, the last outcome of :meth:`log_probs`)
    start_id : int, V + 1 (pads histories; never an outcome)
    n_events : int, the events counted by :meth:`fit` (0 before it)
    """

    def __init__(self, vocab_size: int, order: int = 3, n_conditions: int | None = None,
                 smoothing: str = "witten-bell", k: float = 1.0):
        self.vocab_size = _as_int(vocab_size, "vocab_size")
        self.order = _as_int(order, "order")
        self.n_conditions = None if n_conditions is None else _as_int(n_conditions, "n_conditions")
        if smoothing not in SMOOTHINGS:
            raise NpnetError(f"smoothing must be one of {SMOOTHINGS}, got {smoothing!r}")
        self.smoothing = smoothing
        if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) \
                or not (math.isfinite(k) and k > 0):
            raise NpnetError(f"k must be a finite number > 0, got {k!r}")
        self.k = float(k)
        self.end_id, self.start_id = self.vocab_size, self.vocab_size + 1
        self.n_events = 0
        self._counts: dict = {}        # history key -> (V',) float64 counts c(h, .)
        self._stats: dict = {}         # history key -> (c(h), N1+(h))
        self._memo: dict = {}          # full history key -> (V',) P(. | h)

    # -- input checks ----------------------------------------------------------------------
    def _check_ids(self, seq, what: str) -> tuple:
        a = np.asarray(seq)
        if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
            raise ShapeError(f"{what} must be a 1-D sequence of integer ids, got {a.dtype} {a.shape}")
        if a.size and (a.min() < 0 or a.max() >= self.vocab_size):
            raise ShapeError(f"{what} holds ids outside [0, {self.vocab_size}) (vocab_size; the end "
                             f"symbol {self.end_id} is added by the model, never given)")
        return tuple(int(i) for i in a)

    def _check_condition(self, condition, what: str) -> int:
        if self.n_conditions is None:
            if condition is not None:
                raise NpnetError(f"this model has no conditions (n_conditions=None), got {what}={condition!r}")
            return _NO_CONDITION
        if isinstance(condition, (bool, np.bool_)) or not isinstance(condition, (int, np.integer)) \
                or not 0 <= condition < self.n_conditions:
            raise NpnetError(f"{what} must be an int in [0, {self.n_conditions}) (n_conditions), got {condition!r}")
        return int(condition)

    def _check_data(self, sequences, conditions) -> list:
        """[(condition, ids tuple)] for the sequences and their conditions, checked."""
        if isinstance(sequences, np.ndarray) and sequences.ndim == 1 and sequences.dtype != object:
            raise ShapeError("sequences must be a list of id sequences, got one 1-D array (wrap it in a list)")
        seqs = [self._check_ids(s, f"sequences[{i}]") for i, s in enumerate(sequences)]
        if not seqs:
            raise ShapeError("sequences is empty: at least one sequence is needed")
        if self.n_conditions is None:
            if conditions is not None:
                raise NpnetError("this model has no conditions (n_conditions=None); leave conditions None")
            return [(_NO_CONDITION, s) for s in seqs]
        if conditions is None:
            raise NpnetError(f"this model is conditioned (n_conditions={self.n_conditions}): give one "
                             "condition per sequence")
        conds = list(conditions)
        if len(conds) != len(seqs):
            raise ShapeError(f"conditions must have one entry per sequence ({len(seqs)}), got {len(conds)}")
        return [(self._check_condition(c, f"conditions[{i}]"), s) for i, (c, s) in enumerate(zip(conds, seqs))]

    # -- counting and probabilities --------------------------------------------------------
    def _events(self, seq: tuple):
        """(history symbols (n - 1,), outcome) for each of the len(seq) + 1 events of ``seq``."""
        n1 = self.order - 1
        padded = (self.start_id,) * n1 + seq + (self.end_id,)
        for t in range(len(seq) + 1):
            yield padded[t:t + n1], padded[t + n1]

    def _keys(self, cond: int, hist: tuple) -> list:
        """The history keys P(. | h) interpolates over, longest first (add-k: the full one only)."""
        if self.smoothing == "add-k":
            return [(cond, hist)]
        keys = [(cond, hist[len(hist) - j:]) for j in range(len(hist), -1, -1)]
        if cond != _NO_CONDITION:
            keys.append((_NO_CONDITION, ()))
        return keys

    def fit(self, sequences, conditions=None) -> "CharNGram":
        """Count the events of ``sequences`` (list of 1-D id sequences in [0, V), possibly empty)
        with one condition id each (``conditions``, (N,) ints in [0, n_conditions); None for an
        unconditioned model). Replaces any earlier fit. Returns self."""
        data = self._check_data(sequences, conditions)
        counter = Counter()
        for cond, seq in data:
            for hist, w in self._events(seq):
                for key in self._keys(cond, hist):
                    counter[key, w] += 1
        V1 = self.vocab_size + 1
        self._counts, self._memo = {}, {}
        for (key, w), c in counter.items():
            self._counts.setdefault(key, np.zeros(V1))[w] = c            # (V',)
        self._stats = {key: (float(c.sum()), float(np.count_nonzero(c))) for key, c in self._counts.items()}
        self.n_events = sum(len(s) + 1 for _, s in data)
        return self

    def _dist(self, cond: int, hist: tuple) -> np.ndarray:
        """P(. | cond, hist) (V',), memoised per history."""
        key = (cond, hist)
        p = self._memo.get(key)
        if p is not None:
            return p
        V1 = self.vocab_size + 1
        p = np.full(V1, 1.0 / V1)                                            # (V',) below every history
        for h in reversed(self._keys(cond, hist)):                           # shortest history first
            c = self._counts.get(h)
            if c is None:                                                    # unseen: keep the shorter one's
                continue
            total, distinct = self._stats[h]
            if self.smoothing == "add-k":
                p = (c + self.k) / (total + self.k * V1)
            else:
                p = (c + distinct * p) / (total + distinct)
        self._memo[key] = p
        return p

    def _require_fit(self) -> None:
        if not self.n_events:
            raise NpnetError("CharNGram is not fitted: call fit(sequences, conditions) first")

    def log_probs(self, context, condition=None) -> np.ndarray:
        """ln P(w | context, condition) for every outcome w: (V + 1,) float64, the end symbol last.

        ``context`` is the sequence so far (1-D ids in [0, V), may be empty: the first symbol);
        only its last n - 1 ids matter, padded with the start symbol when shorter.
        """
        self._require_fit()
        ids = self._check_ids(context, "context")
        cond = self._check_condition(condition, "condition")
        n1 = self.order - 1
        hist = ((self.start_id,) * n1 + ids)[len(ids):] if n1 else ()
        return np.log(self._dist(cond, hist))

    def nats(self, sequences, conditions=None) -> float:
        """Mean negative log-likelihood per event (every symbol and each sequence's end), in nats."""
        self._require_fit()
        data = self._check_data(sequences, conditions)
        total, n = 0.0, 0
        for cond, seq in data:
            for hist, w in self._events(seq):
                total -= math.log(self._dist(cond, hist)[w])
                n += 1
        return total / n


def _as_int(value, name: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) or value < 1:
        raise NpnetError(f"{name} must be an int >= 1, got {value!r}")
    return int(value)


__all__ = ["CharNGram"]
