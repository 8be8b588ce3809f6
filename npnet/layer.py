"""The layer contract every npnet layer follows, and the input checks they share.

A layer owns ``params`` (name -> ndarray) and ``grads`` (same keys and shapes).
``fprop`` computes an output and caches only what ``bprop`` needs; ``bprop``
*adds* parameter gradients into ``grads`` and returns the gradient of the input.
Nothing here knows about sequences; see :mod:`npnet.cell` for recurrent cells.
"""
from __future__ import annotations

import dataclasses

import numpy as np


class NpnetError(ValueError):
    """Base class of npnet's errors; a ``ValueError`` so plain handlers catch it."""


class ShapeError(NpnetError):
    """An array has the wrong rank, size, dtype or values for the call."""


class NonFiniteInputError(ShapeError):
    """An array handed to a layer holds NaN or inf.

    A :class:`ShapeError` like every bad input; its own class lets the training step tell
    a diverged network (a non-finite value between two layers of a finite batch) from bad
    data (see :meth:`npnet.SequenceRunner.train_step`).
    """


class NotForwardedError(NpnetError):
    """``bprop`` was called without a matching ``fprop`` (or twice for one)."""


FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def as_float_dtype(dtype) -> np.dtype:
    """Return ``dtype`` as a NumPy dtype, refusing anything but float32/float64."""
    try:
        dt = np.dtype(dtype)
    except TypeError as exc:
        raise NpnetError(f"dtype must be float32 or float64, got {dtype!r}") from exc
    if dt not in FLOAT_DTYPES:
        raise NpnetError(f"dtype must be float32 or float64, got {dt}")
    return dt


def as_rng(rng) -> np.random.Generator:
    """Accept a Generator, an int seed >= 0 or None (fresh entropy); never global state."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None:
        return np.random.default_rng()
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, (bool, np.bool_)):
        if rng < 0:
            raise NpnetError(f"rng as an int seed must be >= 0, got {rng}")
        return np.random.default_rng(rng)
    raise NpnetError(f"rng must be a numpy.random.Generator, an int seed >= 0 or None, got {rng!r}")


def as_size(value, name: str, minimum: int = 1) -> int:
    """Return ``value`` as an int >= ``minimum``; refuse floats (3.5 and 3.0), bools and strings.

    Sizes are ints as in PyTorch (``nn.LSTM(3.5, 4)`` is a TypeError there): truncating
    3.5 to 3 would build a layer the caller did not ask for.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise NpnetError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise NpnetError(f"{name} must be an int >= {minimum}, got {value}")
    return int(value)


def as_finite_float(value, name: str) -> float:
    """Return ``value`` as a finite Python float; refuse NaN, inf, strings and bools."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        raise NpnetError(f"{name} must be a finite number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise NpnetError(f"{name} must be a finite number, got {value!r}") from None
    if not np.isfinite(v):
        raise NpnetError(f"{name} must be a finite number, got {value!r}")
    return v


def check_input(x, name: str, ndim: int | tuple, last: int | None, dtype: np.dtype,
                finite: bool = True) -> np.ndarray:
    """Validate an input array and return it as ``dtype`` (a copy only if a cast is needed).

    ``ndim`` is the required rank (or a tuple of allowed ranks, or -1 for "at least 1");
    ``last`` the required size of the last axis (None: any).
    """
    if not isinstance(x, np.ndarray):
        try:
            x = np.asarray(x)
        except Exception as exc:  # pragma: no cover - exotic objects
            raise ShapeError(f"{name} must be an array, got {type(x).__name__}") from exc
    if x.dtype.kind not in "fiub":
        raise ShapeError(f"{name} must hold real numbers, got dtype {x.dtype}")
    ranks = (ndim,) if isinstance(ndim, int) else tuple(ndim)
    if ranks != (-1,) and x.ndim not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise ShapeError(f"{name} must have {want} dimensions, got shape {x.shape}")
    if x.ndim == 0:
        raise ShapeError(f"{name} must have at least 1 dimension, got a scalar")
    if last is not None and x.shape[-1] != last:
        raise ShapeError(f"{name} must have last dimension {last}, got shape {x.shape}")
    x = x.astype(dtype, copy=False)
    if finite and not np.isfinite(x).all():
        raise NonFiniteInputError(f"{name} contains NaN or inf")
    return x


def _nbytes(obj) -> int:
    """Total bytes of the distinct arrays inside a cache (arrays, dicts, sequences, dataclasses)."""
    seen, total, todo = set(), 0, [obj]
    while todo:
        o = todo.pop()
        if isinstance(o, np.ndarray):
            root = o
            while isinstance(root.base, np.ndarray):                 # a view is charged to its base
                root = root.base
            if id(root) not in seen:
                seen.add(id(root))
                total += root.nbytes
        elif isinstance(o, dict):
            todo.extend(o.values())
        elif isinstance(o, (list, tuple)):
            todo.extend(o)
        elif dataclasses.is_dataclass(o) and not isinstance(o, type):
            todo.extend(getattr(o, f.name) for f in dataclasses.fields(o))
    return total


class Layer:
    """Base class: parameter and gradient dictionaries plus cache bookkeeping.

    Parameters
    ----------
    dtype : float32 or float64
        The dtype of every parameter, gradient and output (inputs are cast to it).
    rng : numpy.random.Generator, int or None
        Source of randomness for initialisation; npnet never uses global state.

    Contract
    --------
    - ``params[name]`` and ``grads[name]`` have equal shapes; layers read their
      weights from ``params`` on every call, so in-place updates take effect.
    - ``bprop`` adds into ``grads`` (a weight used at every time step collects
      every step's contribution); ``zero_grad()`` sets them to zero.
    - ``bprop`` never modifies the array it is handed, consumes the cache left
      by the last ``fprop``, and raises :class:`NotForwardedError` without one.
    """

    def __init__(self, dtype=np.float64, rng=None):
        self.dtype = as_float_dtype(dtype)
        self.rng = as_rng(rng)
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self._cache = None

    # -- parameters -------------------------------------------------------
    def add_param(self, name: str, value: np.ndarray) -> np.ndarray:
        """Register a parameter (cast to the layer dtype) and its zero gradient."""
        value = np.ascontiguousarray(value, dtype=self.dtype)
        self.params[name] = value
        self.grads[name] = np.zeros_like(value)
        return value

    def zero_grad(self) -> None:
        for g in self.grads.values():
            g.fill(0.0)

    @property
    def num_params(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def get_config(self) -> dict:
        """JSON-serialisable constructor arguments (used by checkpoints)."""
        raise NotImplementedError

    # -- cache ------------------------------------------------------------
    def clear_cache(self) -> None:
        """Drop what the last ``fprop`` kept for ``bprop`` (call when no bprop will follow)."""
        self._cache = None

    @property
    def has_cache(self) -> bool:
        """Whether an ``fprop`` is waiting for its ``bprop``."""
        return self._cache is not None

    def cache_nbytes(self) -> int:
        """Bytes held by the arrays the last ``fprop`` cached (0 when nothing is cached)."""
        return _nbytes(self._cache)

    def _take_cache(self):
        """Return and clear the cache of the last fprop, or raise if there is none."""
        cache = self._cache
        if cache is None:
            raise NotForwardedError(
                f"{type(self).__name__}.bprop called without a matching fprop "
                "(each fprop allows one bprop)")
        self._cache = None
        return cache

    def __repr__(self) -> str:
        try:
            cfg = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        except NotImplementedError:
            cfg = ""
        return f"{type(self).__name__}({cfg})"
