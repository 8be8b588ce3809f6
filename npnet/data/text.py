"""Character-level text: Tiny Shakespeare, a character vocabulary, the train/validation split,
B parallel streams cut into chunks for stateful truncated BPTT, and the per-character scores
(nats, bits, perplexity) with the unigram and bigram baselines they are judged against.

Nothing here knows about models: ids are int64 NumPy arrays, chunks are plain ``(x, y)`` pairs.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ..layer import NpnetError, ShapeError
from .download import DownloadError, download, find_data_dir, verify_file

__all__ = [
    "TINYSHAKESPEARE_URL", "TINYSHAKESPEARE_SHA256", "TINYSHAKESPEARE_CHARS", "load_tinyshakespeare",
    "CharVocab", "split_text", "TextStreams", "nats_per_char", "bits_per_char", "perplexity",
    "unigram_nats", "bigram_nats", "stream_nats",
]

TINYSHAKESPEARE_URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
TINYSHAKESPEARE_CHARS = 1_115_394
_FILE = "input.txt"


# -- the data set ------------------------------------------------------------------------------
def load_tinyshakespeare(data_dir=None, url: str = TINYSHAKESPEARE_URL,
                         sha256: str | None = TINYSHAKESPEARE_SHA256, timeout: float = 60.0) -> str:
    """The Tiny Shakespeare text (1,115,394 characters, 65 distinct) as one ``str``.

    Parameters
    ----------
    data_dir : path or None
        A folder holding ``input.txt`` (resolved by :func:`npnet.data.find_data_dir`
        ``("tinyshakespeare", data_dir)``: without it ``$NPNET_DATA/tinyshakespeare`` or
        ``~/.cache/npnet/tinyshakespeare``), or the path of the text file itself.
    url : where to download ``input.txt`` from when the folder does not hold it (char-rnn's copy).
    sha256 : the pinned digest. A present file and a download are both checked against it; a
        mismatch raises :class:`npnet.data.download.DownloadError` and a bad download is not
        kept. ``None`` skips the check (your own text in the same place).
    timeout : seconds for the download.

    Returns
    -------
    str -- the file's bytes decoded as UTF-8, newlines untouched.
    """
    if data_dir is not None and Path(data_dir).expanduser().is_file():
        path = Path(data_dir).expanduser()
    else:
        path = find_data_dir("tinyshakespeare", data_dir) / _FILE
    if path.is_file():
        if sha256 is not None:
            verify_file(path, sha256=sha256)
    else:
        if sha256 is None:
            raise DownloadError(f"no {path} and no sha256 to verify a download from {url} against: "
                                "pass data_dir= (a folder with input.txt, or the file) or sha256=")
        download(url, path, sha256=sha256, timeout=timeout)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NpnetError(f"{path} is not UTF-8 text: {exc}") from exc


# -- characters <-> ids ------------------------------------------------------------------------
class CharVocab:
    """A character vocabulary: character ``chars[i]`` has id ``i``.

    ``CharVocab.from_text(text)`` uses the sorted distinct characters of ``text`` (65 for Tiny
    Shakespeare: ``"\\n"`` is id 0, ``" "`` id 1). ``encode`` refuses a character outside the
    vocabulary (:class:`npnet.NpnetError` naming it and its position) rather than mapping it to
    an "unknown" id; ``get_config()`` / ``from_config`` round-trip through JSON.
    """

    def __init__(self, chars):
        chars = list(chars)
        bad = [c for c in chars if not (isinstance(c, str) and len(c) == 1)]
        if bad or not chars:
            raise NpnetError(f"chars must be a non-empty sequence of single characters, got {bad[:3] or chars!r}")
        if len(set(chars)) != len(chars):
            dup = sorted({c for c in chars if chars.count(c) > 1})
            raise NpnetError(f"chars must be distinct, got repeated {dup!r}")
        self.chars = "".join(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}
        codes = np.array([ord(c) for c in self.chars], dtype=np.int64)
        self._lut = np.full(int(codes.max()) + 1, -1, dtype=np.int64)     # code point -> id, -1 unknown
        self._lut[codes] = np.arange(len(codes), dtype=np.int64)

    @classmethod
    def from_text(cls, text: str) -> "CharVocab":
        """The vocabulary of the sorted distinct characters of ``text``."""
        if not isinstance(text, str) or not text:
            raise NpnetError(f"from_text needs a non-empty str, got {type(text).__name__} {text[:20]!r}")
        return cls(sorted(set(text)))

    @property
    def size(self) -> int:
        """V, the number of characters."""
        return len(self.chars)

    def __len__(self) -> int:
        return len(self.chars)

    def __repr__(self) -> str:
        return f"CharVocab(size={self.size})"

    def encode(self, text: str) -> np.ndarray:
        """``text`` -> int64 ids of shape (len(text),), vectorised (see :meth:`encode_plain`)."""
        if not isinstance(text, str):
            raise NpnetError(f"encode takes a str, got {type(text).__name__}")
        codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)   # (N,)
        ids = np.full(codes.shape, -1, dtype=np.int64)                                      # (N,)
        known = codes < len(self._lut)
        ids[known] = self._lut[codes[known]]
        if (ids < 0).any():
            pos = int(np.flatnonzero(ids < 0)[0])
            self._unknown(text, pos)
        return ids

    def encode_plain(self, text: str) -> np.ndarray:
        """The reference of :meth:`encode`: one dictionary look-up per character."""
        out = []
        for pos, c in enumerate(text):
            if c not in self.index:
                self._unknown(text, pos)
            out.append(self.index[c])
        return np.array(out, dtype=np.int64)

    def _unknown(self, text: str, pos: int):
        raise NpnetError(f"character {text[pos]!r} (U+{ord(text[pos]):04X}) at position {pos} is not in "
                         f"the vocabulary of {self.size} characters (build it from a text that has it)")

    def decode(self, ids) -> str:
        """Ids (any shape of ints in [0, V)) -> the string of their characters, in order."""
        ids = np.asarray(ids)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise NpnetError(f"decode takes integer ids, got dtype {ids.dtype}")
        flat = ids.reshape(-1).astype(np.int64)
        if flat.size and (flat.min() < 0 or flat.max() >= self.size):
            bad = int(flat[(flat < 0) | (flat >= self.size)][0])
            raise NpnetError(f"id {bad} is outside the vocabulary [0, {self.size})")
        return "".join(self.chars[i] for i in flat)

    def get_config(self) -> dict:
        """JSON-able: ``{"chars": "..."}``."""
        return {"chars": self.chars}

    @classmethod
    def from_config(cls, config: dict) -> "CharVocab":
        return cls(config["chars"])


def split_text(ids, val_fraction: float = 0.1):
    """``(train, val)``: the first ``int(N * (1 - val_fraction))`` items and the rest, in order.

    By characters, not lines (the usual Tiny Shakespeare split: 1,003,854 + 111,540). Works on a
    str or an array; both parts must be non-empty.
    """
    vf = float(val_fraction)
    if not 0.0 < vf < 1.0:
        raise NpnetError(f"val_fraction must be in (0, 1), got {val_fraction}")
    n = len(ids)
    n_train = int(n * (1.0 - vf))
    if n_train < 1 or n_train >= n:
        raise NpnetError(f"a text of {n} items is too short to split with val_fraction={vf}")
    return ids[:n_train], ids[n_train:]


# -- B parallel streams in chunks of T -----------------------------------------------------------
class TextStreams:
    """Chunks ``(x, y)`` of B parallel streams over ``ids`` for stateful truncated BPTT.

    The text is cut into B contiguous parts of L = (N - 1) // B characters; stream b reads
    ``ids[b*L : (b+1)*L]`` and predicts ``ids[b*L + 1 : (b+1)*L + 1]`` (the next character, so
    every one of ``ids[1 : B*L + 1]`` is a target once; the last (N - 1) % B are left out).
    Chunk k is ``x = streams[:, k*T : (k+1)*T]`` (B, T) and ``y`` the same window shifted by
    one: chunk k + 1 continues every row of chunk k, so a runner that carries its state across
    chunks (``Learner(..., stateful=True)``) reads each stream as one long sequence while the
    gradient stops at chunk boundaries. The last chunk is shorter when T does not divide L
    (``drop_last=True`` drops it).

    A re-iterable: every ``iter()`` is one pass from the start of the streams, deterministic
    (the Learner resets the carried state at the start of each pass); ``len()`` is the number
    of chunks. ``one_hot=V`` yields ``x`` as (B, T, V) one-hot in ``dtype`` instead of ids.
    """

    def __init__(self, ids, batch_size: int, seq_len: int, drop_last: bool = False,
                 one_hot: int | None = None, dtype=np.float32):
        ids = np.asarray(ids)
        if ids.ndim != 1 or not (ids.size == 0 or np.issubdtype(ids.dtype, np.integer)):
            raise ShapeError(f"ids must be a 1-d integer array (CharVocab.encode), got shape {ids.shape} "
                             f"dtype {ids.dtype}")
        B, T = int(batch_size), int(seq_len)
        if B < 1 or T < 1:
            raise NpnetError(f"batch_size and seq_len must be >= 1, got {batch_size}, {seq_len}")
        L = (len(ids) - 1) // B
        if L < 1:
            raise NpnetError(f"{len(ids)} ids are too few for {B} streams (need at least {B + 1})")
        if one_hot is not None and (int(one_hot) < 1 or ids.min() < 0 or ids.max() >= int(one_hot)):
            raise NpnetError(f"one_hot={one_hot} must be the vocabulary size (> every id, ids span "
                             f"{ids.min()}..{ids.max()})")
        self.batch_size, self.seq_len, self.stream_len, self.drop_last = B, T, L, bool(drop_last)
        self.one_hot, self.dtype = (None if one_hot is None else int(one_hot)), np.dtype(dtype)
        self._x = ids[:B * L].reshape(B, L).astype(np.int64)              # (B, L)
        self._y = ids[1:B * L + 1].reshape(B, L).astype(np.int64)         # (B, L)

    @property
    def n_targets(self) -> int:
        """How many characters a pass scores (B * L, or fewer with drop_last)."""
        return self.batch_size * (len(self) * self.seq_len if self.drop_last else self.stream_len)

    def __len__(self) -> int:
        full, rest = divmod(self.stream_len, self.seq_len)
        return full + (1 if rest and not self.drop_last else 0)

    def __iter__(self):
        for k in range(len(self)):
            s, e = k * self.seq_len, min((k + 1) * self.seq_len, self.stream_len)
            x = self._x[:, s:e]                                              # (B, T)
            if self.one_hot is not None:
                x = np.eye(self.one_hot, dtype=self.dtype)[x]                # (B, T, V)
            yield x, self._y[:, s:e]

    def __repr__(self) -> str:
        return (f"TextStreams(batch_size={self.batch_size}, seq_len={self.seq_len}, "
                f"stream_len={self.stream_len}, chunks={len(self)})")


# -- scores --------------------------------------------------------------------------------------
def nats_per_char(scores, targets, mask=None) -> float:
    """Mean cross-entropy in nats of the ``targets`` under ``scores``: -mean log p(target).

    ``scores`` (..., V) are logits or log-probabilities (a log-softmax is applied, which leaves
    log-probabilities unchanged); ``targets`` (...) int ids; ``mask`` (...) bool selects the
    scored positions. Computed in float64: log p = s_t - logsumexp(s).
    """
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(targets)
    if s.ndim < 1 or t.shape != s.shape[:-1] or not np.issubdtype(t.dtype, np.integer):
        raise ShapeError(f"targets must be integer ids of shape scores.shape[:-1] = {s.shape[:-1]}, "
                         f"got {t.shape} {t.dtype}")
    V = s.shape[-1]
    if t.size and (t.min() < 0 or t.max() >= V):
        raise ShapeError(f"targets must lie in [0, {V}), got {t.min()}..{t.max()}")
    m = s.max(axis=-1, keepdims=True)                                       # (..., 1)
    lse = (m + np.log(np.exp(s - m).sum(axis=-1, keepdims=True)))[..., 0]    # (...)
    logp = np.take_along_axis(s, t[..., None], axis=-1)[..., 0] - lse       # (...)
    if mask is not None:
        mask = np.asarray(mask, dtype=bool)
        if mask.shape != t.shape:
            raise ShapeError(f"mask must have the targets' shape {t.shape}, got {mask.shape}")
        logp = logp[mask]
    if logp.size == 0:
        raise ShapeError("nothing to score (no targets, or the mask selects none)")
    return float(-logp.mean())


def bits_per_char(nats: float) -> float:
    """Nats per character -> bits per character: nats / ln 2."""
    return float(nats) / math.log(2.0)


def perplexity(nats: float) -> float:
    """Per-character perplexity: exp(nats)."""
    return math.exp(float(nats))


def _check_ids(ids, vocab_size: int, what: str) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.size == 0 or not np.issubdtype(ids.dtype, np.integer):
        raise ShapeError(f"{what} must be a non-empty 1-d integer array of ids, got shape {ids.shape} {ids.dtype}")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ShapeError(f"{what} must lie in [0, vocab_size={vocab_size}), got {ids.min()}..{ids.max()}")
    return ids.astype(np.int64)


def unigram_nats(train_ids, val_ids, vocab_size: int, k: float = 1.0) -> float:
    """Nats/char on ``val_ids`` of the add-k unigram model of ``train_ids``.

    p(c) = (n(c) + k) / (N + k V), with n(c) the count of c in the N training ids.
    """
    V = int(vocab_size)
    train, val = _check_ids(train_ids, V, "train_ids"), _check_ids(val_ids, V, "val_ids")
    if k < 0 or (k == 0 and np.bincount(train, minlength=V)[val].min() == 0):
        raise NpnetError(f"k must be >= 0 (and > 0 when a validation character is unseen), got {k}")
    counts = np.bincount(train, minlength=V).astype(np.float64) + k        # (V,)
    logp = np.log(counts) - np.log(counts.sum())                           # (V,)
    return float(-logp[val].mean())


def bigram_nats(train_ids, val_ids, vocab_size: int, k: float = 1.0) -> float:
    """Nats/char on ``val_ids[1:]`` (each given the one before it) of the add-k bigram model.

    p(b | a) = (n(a, b) + k) / (n(a, .) + k V), with n(a, b) the count of the pair "ab" in
    ``train_ids`` and n(a, .) the number of pairs starting with a. The first validation
    character has no predecessor in ``val_ids`` and is not scored.
    """
    V = int(vocab_size)
    train, val = _check_ids(train_ids, V, "train_ids"), _check_ids(val_ids, V, "val_ids")
    if len(train) < 2 or len(val) < 2:
        raise ShapeError(f"train_ids and val_ids need at least 2 ids each, got {len(train)} and {len(val)}")
    if k <= 0:
        raise NpnetError(f"k must be > 0 (unseen pairs would have probability 0), got {k}")
    pairs = np.bincount(train[:-1] * V + train[1:], minlength=V * V).reshape(V, V)   # (V, V)
    counts = pairs.astype(np.float64) + k
    logp = np.log(counts) - np.log(counts.sum(axis=1, keepdims=True))                # (V, V)
    return float(-logp[val[:-1], val[1:]].mean())


def stream_nats(model, streams) -> float:
    """Teacher-forced nats/char of ``model`` over every target of ``streams``, state carried.

    ``model`` is any object with ``fprop(x, state) -> (logits, state)`` and ``clear_cache()``
    (a :class:`npnet.SequenceModel`), put in evaluation mode (no dropout) for the pass and
    restored after. Each stream starts from the zero state and carries its state from chunk to
    chunk, so the score is that of reading the B streams whole (what ``Learner.evaluate`` does
    not do: it starts every batch from zeros). Chunks are weighted by their number of targets.
    """
    was = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    total, count, state = 0.0, 0, None
    try:
        for x, y in streams:
            out, state = model.fprop(x, state)                        # (B, T, V) logits
            model.clear_cache()
            total += nats_per_char(out, y) * y.size
            count += y.size
    finally:
        if was and hasattr(model, "train"):
            model.train()
    if count == 0:
        raise NpnetError("stream_nats got no chunks")
    return total / count
