"""Numerically stable elementwise activations shared by the layers.

Each takes an optional ``out`` so hot loops can work in preallocated buffers.
No function here overflows or warns for any finite input.
"""
from __future__ import annotations

import numpy as np
from scipy.special import expit as _expit


def sigmoid(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """sigma(x) = 1 / (1 + exp(-x)), via SciPy's ``expit`` ufunc.

    ``expit`` evaluates exp(-|x|) on the safe side, so it never overflows or
    warns, keeps full relative precision for very negative x, preserves the
    dtype, and costs one call. Derivative: sigma'(x) = sigma(x) * (1 - sigma(x)).
    """
    return _expit(x, out=out) if out is not None else _expit(x)


def tanh(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """tanh(x); derivative 1 - tanh(x)**2."""
    return np.tanh(x, out=out)


def sigmoid_from_negated(an: np.ndarray) -> np.ndarray:
    """In place: an = -a  ->  sigmoid(a) = 1 / (1 + exp(-a)). Returns ``an``.

    The fast form the cells use in their loops: NumPy's ``exp`` is vectorised (AVX2), SciPy's
    ``expit`` is not (timings: docs/performance.md, "Exp-form gates").
    Callers produce -a directly (sign-flipped weights, exact). exp overflows to inf for
    -a > 709 (float64) or 88 (float32), giving 1 / inf = 0, the exact limit: call under
    ``np.errstate(over="ignore")``.
    """
    np.exp(an, out=an)
    an += 1.0
    np.reciprocal(an, out=an)
    return an


def tanh_from_scaled(a2: np.ndarray) -> np.ndarray:
    """In place: a2 = -2 a  ->  tanh(a) = 2 / (1 + exp(-2 a)) - 1. Returns ``a2``.

    For float64 on large blocks: NumPy's float64 ``tanh`` is scalar code, several times the
    cost of this; its float32 ``tanh`` is vectorised and one call beats these four (timings:
    docs/performance.md, "float64 tanh through exp on big blocks"). exp overflows to inf for
    large -2a, giving tanh = -1 exactly: call under ``np.errstate(over="ignore")``.
    """
    np.exp(a2, out=a2)
    a2 += 1.0
    np.divide(2.0, a2, out=a2)
    a2 -= 1.0
    return a2


def relu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """max(x, 0); derivative 1 where the output is positive, else 0."""
    return np.maximum(x, 0.0, out=out)


def logsumexp(x: np.ndarray, axis: int = -1, keepdims: bool = False) -> np.ndarray:
    """log(sum(exp(x))) along ``axis``, shifted by the maximum so it never overflows."""
    m = np.max(x, axis=axis, keepdims=True)
    s = np.log(np.sum(np.exp(x - m), axis=axis, keepdims=True)) + m
    return s if keepdims else np.squeeze(s, axis=axis)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """x - logsumexp(x): stable log-probabilities."""
    return x - logsumexp(x, axis=axis, keepdims=True)


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)): stable probabilities."""
    e = np.exp(x - np.max(x, axis=axis, keepdims=True))
    e /= e.sum(axis=axis, keepdims=True)
    return e
