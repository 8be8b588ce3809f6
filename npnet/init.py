"""Weight initialisers, all in one place.

Every initialiser is a callable ``init(shape, rng, dtype) -> ndarray``. The
factories below (``uniform(scale)``, ``orthogonal(gain)``, ...) return such
callables; :func:`get` also accepts their names as strings. Recurrent weights
of shape ``(H, G*H)`` (G gate blocks side by side) are initialised block by
block, so each gate's ``H x H`` recurrent matrix is orthogonal (or identity).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .layer import NpnetError

Initializer = Callable[[tuple, np.random.Generator, np.dtype], np.ndarray]


def _blocks(shape) -> int:
    """How many square (rows x rows) blocks sit side by side in a 2-D shape (0: not blocky)."""
    if len(shape) != 2 or shape[0] == 0 or shape[1] % shape[0] != 0:
        return 0
    return shape[1] // shape[0]


def zeros() -> Initializer:
    def init(shape, rng, dtype):
        return np.zeros(shape, dtype=dtype)
    return init


def constant(value: float) -> Initializer:
    def init(shape, rng, dtype):
        return np.full(shape, value, dtype=dtype)
    return init


def uniform(scale: float = 0.08) -> Initializer:
    """U(-scale, scale). PyTorch's RNN default is ``uniform(1 / sqrt(H))``."""
    def init(shape, rng, dtype):
        return rng.uniform(-scale, scale, size=shape).astype(dtype)
    return init


def normal(std: float = 0.01) -> Initializer:
    def init(shape, rng, dtype):
        return (rng.standard_normal(shape) * std).astype(dtype)
    return init


def glorot_uniform(gain: float = 1.0) -> Initializer:
    """Glorot/Xavier: U(-a, a), a = gain * sqrt(6 / (fan_in + fan_out)).

    For a ``(D, G*H)`` gate matrix the fan-out is taken per gate block (H), as
    Keras does, so the gate count does not shrink the scale.
    """
    def init(shape, rng, dtype):
        fan_in = shape[0] if len(shape) > 1 else 1
        fan_out = shape[-1]
        a = gain * np.sqrt(6.0 / max(fan_in + fan_out, 1))
        return rng.uniform(-a, a, size=shape).astype(dtype)
    return init


def orthogonal(gain: float = 1.0) -> Initializer:
    """Orthogonal matrices (Saxe et al. 2014) via QR of a Gaussian matrix, one per gate block."""
    def one(n, m, rng):
        a = rng.standard_normal((max(n, m), min(n, m)))
        q, r = np.linalg.qr(a)
        q *= np.sign(np.diag(r))  # make the decomposition unique (uniform over O(n))
        return q if n >= m else q.T

    def init(shape, rng, dtype):
        if len(shape) != 2:
            raise NpnetError(f"orthogonal needs a 2-D shape, got {shape}")
        g = _blocks(shape)
        if g:
            n = shape[0]
            w = np.concatenate([one(n, n, rng) for _ in range(g)], axis=1)
        else:
            w = one(shape[0], shape[1], rng)
        return (gain * w).astype(dtype)
    return init


def identity(gain: float = 1.0) -> Initializer:
    """gain * I, one identity per gate block (the IRNN of Le, Jaitly & Hinton 2015)."""
    def init(shape, rng, dtype):
        g = _blocks(shape)
        if not g:
            raise NpnetError(f"identity needs a (H, k*H) shape, got {shape}")
        return (gain * np.tile(np.eye(shape[0]), (1, g))).astype(dtype)
    return init


def chrono_forget_bias(t_max: float, rng: np.random.Generator, hidden: int, dtype) -> tuple[np.ndarray, np.ndarray]:
    """Chrono initialisation of the LSTM (Tallec & Ollivier 2018).

    ``b_f ~ log(U[1, t_max - 1])`` and ``b_i = -b_f``, so forget gates start with
    characteristic memory times spread up to ``t_max`` steps. Returns ``(b_i, b_f)``.
    """
    if not (np.isfinite(t_max) and t_max > 2):
        raise NpnetError(f"chrono t_max must be a finite number > 2 (the longest dependency, in steps), got {t_max}")
    b_f = np.log(rng.uniform(1.0, t_max - 1.0, size=hidden))
    return (-b_f).astype(dtype), b_f.astype(dtype)


_NAMES = {
    "zeros": zeros,
    "uniform": uniform,
    "normal": normal,
    "glorot_uniform": glorot_uniform,
    "xavier_uniform": glorot_uniform,
    "orthogonal": orthogonal,
    "identity": identity,
}


def get(init) -> Initializer:
    """Resolve an initialiser given as a callable or one of the names in ``_NAMES``."""
    if callable(init):
        return init
    if isinstance(init, str) and init in _NAMES:
        return _NAMES[init]()
    raise NpnetError(f"unknown initialiser {init!r}; expected a callable or one of {sorted(_NAMES)}")
