"""npnet.sample: generate a sequence of class ids from a trained next-id model (char-rnn style).

The prime runs through the model once (one fprop, evaluation mode), then each new id is drawn
from the softmax of the last output and fed back in through ``model.step``. Nothing here trains.
"""
from __future__ import annotations

import numpy as np

from .layer import NpnetError, ShapeError, as_rng


def _check_temperature(temperature) -> float:
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.integer, np.floating)) \
            or not np.isfinite(temperature) or temperature < 0:
        raise NpnetError(f"temperature must be a finite number >= 0 (0 = argmax), got {temperature!r}")
    return float(temperature)


def _check_top_k(top_k, V: int):
    if top_k is None:
        return None
    if isinstance(top_k, bool) or not isinstance(top_k, (int, np.integer)) or not 1 <= top_k:
        raise NpnetError(f"top_k must be an int >= 1 or None, got {top_k!r}")
    return min(int(top_k), V)


def draw(logits, temperature: float = 1.0, top_k: int | None = None, rng=None) -> int:
    """One class id from softmax(logits / temperature), optionally among the top_k logits only.

    Equations (logits z (V,), temperature tau > 0)::

        p_v = exp(z_v / tau) / sum_u exp(z_u / tau)        over v in K
        K = all classes, or (top_k) the classes whose logit is >= the k-th largest
            (ties at the k-th value are all kept, as the usual top-k filter that masks
            ``logits < topk(logits, k)[-1]``)
        tau = 0: argmax z (the first maximum), no randomness used.

    The probabilities are computed in float64 whatever the logits' dtype.
    """
    z = np.asarray(logits)
    if z.ndim != 1 or z.size == 0 or z.dtype.kind not in "fiu":
        raise ShapeError(f"logits must be a non-empty 1-D real array (V,), got {z.dtype} {z.shape}")
    z = z.astype(np.float64)
    if not np.isfinite(z).all():
        raise ShapeError("logits contain NaN or inf")
    tau, k = _check_temperature(temperature), _check_top_k(top_k, z.size)
    if tau == 0.0:
        return int(np.argmax(z))
    rng = as_rng(rng)
    if k is not None and k < z.size:
        kth = np.partition(z, z.size - k)[z.size - k]                 # the k-th largest logit
        z = np.where(z >= kth, z, -np.inf)
    s = (z - z.max()) / tau                                           # (V,) <= 0: exp cannot overflow
    p = np.exp(s)
    p /= p.sum()
    return int(rng.choice(z.size, p=p))


def _encode(ids: np.ndarray, one_hot: bool, width: int | None, dtype) -> np.ndarray:
    """ids (...) -> the model's input: the ids themselves, or one-hot rows (..., width)."""
    if not one_hot:
        return ids
    return np.eye(width, dtype=dtype)[ids]


def _check_model(model, one_hot: bool) -> int | None:
    """The one-hot width (model.input_size) or None; refuse a model that cannot take the ids."""
    for attr in ("fprop", "step"):
        if not callable(getattr(model, attr, None)):
            raise NpnetError(f"sample needs a model with fprop and step (a SequenceModel), "
                             f"{type(model).__name__} has no {attr}")
    if getattr(model, "bidirectional", False):
        raise NpnetError("sample generates left to right; a bidirectional model cannot step")
    if one_hot:
        return int(model.input_size)
    if not getattr(model, "takes_indices", False):
        raise NpnetError("this model takes float inputs (B, T, D), not ids: pass one_hot=True to feed "
                         "one-hot rows of width input_size, or build it with read_in=npnet.Embedding(V, E)")
    return None


def _check_prime(prime, width: int | None) -> np.ndarray:
    ids = np.asarray(prime)
    if ids.ndim != 1 or ids.size == 0 or ids.dtype.kind not in "iu":
        raise ShapeError(f"prime must be a non-empty 1-D sequence of integer ids, got {ids.dtype} {ids.shape}")
    if width is not None and (ids.min() < 0 or ids.max() >= width):
        raise ShapeError(f"prime ids must lie in [0, {width}) (the one-hot width, model.input_size)")
    return ids.astype(np.intp)


def sample(model, prime, steps: int, temperature: float = 1.0, top_k: int | None = None,
           rng=None, one_hot: bool = False) -> np.ndarray:
    """Prime the model with ``prime`` and generate ``steps`` more ids, each fed back as the next input.

    Parameters
    ----------
    model : a unidirectional SequenceModel whose output at each step is V logits over the next id
        (a per-step read-out; the softmax is taken here). Its input is the ids themselves when
        its read-in takes indices (``read_in=npnet.Embedding(V, E)``), else one-hot rows.
    prime : 1-D sequence of int ids, at least one.
    steps : int >= 0, the number of ids to generate.
    temperature : float >= 0
        The logits are divided by it: < 1 sharpens, > 1 flattens; 0 means argmax (greedy).
    top_k : int >= 1 or None
        Draw only among the k largest logits (None: among all V).
    rng : numpy.random.Generator, int seed or None; the only source of randomness.
    one_hot : bool
        Feed one-hot rows of width ``model.input_size`` (a model with float inputs) instead of ids.

    Returns
    -------
    ndarray of int, shape (len(prime) + steps,)
        The prime followed by the generated ids, as char-rnn's sample.lua and d2l's
        ``predict_ch8`` return the prime followed by the prediction; the new ids are
        ``out[len(prime):]``.

    The prime runs in one ``fprop`` in evaluation mode (no dropout); the model's train/eval
    mode is restored afterwards and no cache is left behind. The output at the last prime
    step gives the first new id; each new id then goes through ``model.step``.
    """
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise NpnetError(f"steps must be an int >= 0, got {steps!r}")
    _check_temperature(temperature)
    width = _check_model(model, bool(one_hot))
    ids = _check_prime(prime, width)
    rng = as_rng(rng)
    dtype = getattr(model, "dtype", np.float64)
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        out, state = model.fprop(_encode(ids[None, :], one_hot, width, dtype))   # (1, T, V)
    finally:
        if hasattr(model, "clear_cache"):
            model.clear_cache()
        if was_training and hasattr(model, "train"):
            model.train()
    logits = out[0, -1] if np.ndim(out) == 3 else out[0]                           # (V,)
    if width is not None and np.shape(logits)[0] > width:
        raise NpnetError(f"the model outputs {np.shape(logits)[0]} classes but its one-hot input has "
                         f"width {width}: a drawn id could not be fed back")
    new = []
    for i in range(int(steps)):
        new.append(draw(logits, temperature, top_k, rng))
        if i + 1 < steps:                                      # the last id needs no further step
            y, state = model.step(_encode(np.array(new[-1:]), one_hot, width, dtype), state)   # (1, V)
            logits = y[0]
    return np.concatenate([ids, np.array(new, dtype=np.intp)])


__all__ = ["sample", "draw"]
