"""Gradient clipping (global L2 norm, elementwise value) and the non-finite check of a training step.

Every function takes ``grads``, a dict name -> ndarray (e.g. ``model.grads``),
and changes it in place; none knows about models or optimisers.
"""
from __future__ import annotations

import math

import numpy as np

from ..layer import NpnetError

__all__ = ["NonFiniteError", "global_norm", "clip_grad_norm", "clip_grad_value", "check_finite"]


class NonFiniteError(NpnetError):
    """The loss or a gradient holds NaN or inf (training has diverged)."""


def _check_grads(grads) -> None:
    if not isinstance(grads, dict):
        raise NpnetError(f"grads must be a dict name -> ndarray, got {type(grads).__name__}")
    for name, g in grads.items():
        if not isinstance(g, np.ndarray) or g.dtype.kind != "f":
            what = g.dtype if isinstance(g, np.ndarray) else type(g).__name__
            raise NpnetError(f"gradient {name!r} must be a float ndarray, got {what}")


def _array_norm(g: np.ndarray) -> float:
    """||g||_2 in float64 without overflow or underflow: amax * ||g / amax||.

    Squaring first would overflow float32 for |g| > 1.8e19 and float64 for
    |g| > 1.3e154; dividing by the largest magnitude first keeps every square in [0, 1].
    """
    if g.size == 0:
        return 0.0
    amax = float(np.max(np.abs(g)))                         # NaN if any NaN, inf if any inf
    if amax == 0.0 or not math.isfinite(amax):
        return amax
    s = np.divide(g, amax, dtype=np.float64).ravel()         # (N,) float64, entries in [-1, 1]
    return amax * math.sqrt(float(np.dot(s, s)))


def global_norm(grads: dict) -> float:
    """sqrt(sum over all arrays and elements of g^2), accumulated in float64 (NaN/inf propagate)."""
    _check_grads(grads)
    norms = [_array_norm(g) for g in grads.values()]
    if not norms:
        return 0.0
    if any(math.isnan(n) for n in norms):
        return math.nan
    big = max(norms)
    if big == 0.0 or math.isinf(big):
        return big
    return big * math.sqrt(math.fsum((n / big) ** 2 for n in norms))


def clip_grad_norm(grads: dict, max_norm: float) -> float:
    """Rescale all gradients together so that their global L2 norm is at most ``max_norm``.

    Equations::

        norm = sqrt(sum_k ||g_k||^2)               over every array k in grads
        g_k *= max_norm / norm   for every k        only when norm > max_norm

    Parameters
    ----------
    grads : dict str -> ndarray (any shapes, float32 or float64), modified in place.
    max_norm : float > 0

    Returns
    -------
    float
        The global norm *before* clipping (useful to log). If it is NaN or inf
        the gradients are left untouched (scaling would only spread the NaN);
        use :func:`check_finite` to stop such a step.
    """
    max_norm = float(max_norm)
    if not (math.isfinite(max_norm) and max_norm > 0.0):
        raise NpnetError(f"max_norm must be a finite number > 0, got {max_norm!r}")
    norm = global_norm(grads)
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / norm
        for g in grads.values():
            g *= scale                                       # python float: float32 stays float32
    return norm


def clip_grad_value(grads: dict, clip: float) -> None:
    """Clip every gradient element to [-clip, clip] in place (NaN stays NaN).

    Equation: g = min(max(g, -clip), clip), elementwise.
    """
    clip = float(clip)
    if not (math.isfinite(clip) and clip > 0.0):
        raise NpnetError(f"clip must be a finite number > 0, got {clip!r}")
    _check_grads(grads)
    for g in grads.values():
        np.clip(g, -clip, clip, out=g)


def check_finite(loss, grads: dict, step: int) -> None:
    """Raise :class:`NonFiniteError` if ``loss`` or any gradient holds NaN or inf.

    The message names the step and either the loss or the first parameter (in
    dict order) whose gradient is not finite, with how many entries are NaN/inf.
    ``loss`` may be None to check the gradients only.
    """
    if loss is not None:
        arr = np.asarray(loss)
        if arr.size != 1 or arr.dtype.kind not in "fiub":
            raise NpnetError(f"loss must be a real scalar, got {loss!r}")
        value = float(arr.reshape(()))
        if not math.isfinite(value):
            raise NonFiniteError(f"loss is {value} at step {step}")
    _check_grads(grads)
    for name, g in grads.items():
        if not np.isfinite(g).all():
            n_nan = int(np.count_nonzero(np.isnan(g)))
            n_inf = int(np.count_nonzero(np.isinf(g)))
            raise NonFiniteError(f"gradient of parameter {name!r} is not finite at step {step} "
                                 f"({n_nan} NaN, {n_inf} inf of {g.size} entries)")
