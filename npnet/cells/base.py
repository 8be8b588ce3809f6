"""What every recurrent cell shares: the sequence call signature, input checks, masks, state.

A cell runs over a whole batch-first sequence::

    out, state = cell.fprop(x, state=None, mask=None)   # x (B, T, D) -> out (B, T, H)
    dx, dstate0 = cell.bprop(dout, dstate=None)          # dout (B, T, H) -> dx (B, T, D)
    h, state = cell.step(x_t, state)                     # one step (B, D), no cache

``state`` is ``h`` (B, H) for single-state cells and the tuple ``(h, c)`` for the
LSTM. With ``recurrent_dropout=p`` (training mode) fprop draws one mask u (B, H) per call and uses
h_{t-1} * u in the recurrent term at every step (see :meth:`RecurrentCell.recurrent_dropout_mask`). ``mask`` (B, T) bool marks real steps: on a padded step the state is
carried through unchanged and the output is zero, so the gradient of a padded
step's output is ignored. Internally cells work time-major (T, B, .).
"""
from __future__ import annotations

import numpy as np

from ..layer import Layer, NpnetError, ShapeError, as_finite_float, as_size, check_input
from ._kernels import Workspace


def as_dropout_rate(value, name: str) -> float:
    """A dropout probability: a finite number in [0, 1), else NpnetError naming it."""
    p = as_finite_float(value, name)
    if not 0.0 <= p < 1.0:
        raise NpnetError(f"{name} must be in [0, 1), got {value!r}")
    return p


def dropout_multiplier(rng: np.random.Generator, p: float, shape: tuple, dtype: np.dtype) -> np.ndarray:
    """The one dropout scheme of npnet (every kind, in the cells and in SequenceModel):
    u = [r < 1 - p] / (1 - p) of ``shape``, r uniform from ``rng`` (inverted dropout: E[u] = 1)."""
    keep = 1.0 - p
    u = (rng.random(shape) < keep).astype(dtype)                 # 1 kept / 0 dropped
    u /= dtype.type(keep)                                        # inverted scaling 1 / (1 - p)
    return u


def recurrent_products(u):
    """(forward, backward) products of the recurrent term, chosen once per fprop/bprop, not per step.

    Without recurrent dropout (u None) both are ``np.dot`` itself: the hot loops call exactly what
    they called before, at no extra cost. With a mask u (B, H)::

        forward(h_prev, W_h, out)  : out = (h_prev * u) W_h
        backward(da, W_h_T, out)   : out = (da W_h^T) * u        the adjoint of the forward map
    """
    if u is None:
        return np.dot, np.dot
    h_u = np.empty_like(u)                                          # (B, H) h_{t-1} * u, reused every step

    def forward(h_prev, W_h, out):
        np.multiply(h_prev, u, out=h_u)
        return np.dot(h_u, W_h, out=out)

    def backward(da, W_h_T, out):
        np.dot(da, W_h_T, out=out)
        return np.multiply(out, u, out=out)
    return forward, backward


class RecurrentCell(Layer):
    """Base class of BasicRNNCell, LSTMCell and GRUCell.

    Subclasses set ``state_names`` and implement ``fprop``, ``bprop``, ``step``.

    Recurrent dropout (Gal & Ghahramani 2016, "variational"; Keras ``recurrent_dropout``): with
    ``recurrent_dropout=p > 0`` and in training mode (``cell.train()``, the default; ``cell.eval()``
    turns it off) each ``fprop`` draws ONE mask per sequence, u = Bernoulli(1 - p) / (1 - p) of shape
    (B, H), from the cell's ``rng``, and every step uses it on h_{t-1} in the recurrent term only::

        a_t = x_t W_x + (h_{t-1} * u) W_h + b        (the state itself, h_{t-1} elsewhere, is not dropped)
        dW_h += (h_{t-1} * u)^T da_t                 dh_{t-1} gets (da_t W_h^T) * u

    ``fprop(..., dropout_mask=u)`` uses a given (B, H) multiplier instead (any values, in either
    mode): fixed masks for gradient checks, or Monte-Carlo dropout at inference.

    Diagnostics: set ``track_state_grads = True`` and every ``bprop`` stores
    ``state_grad_norms``, a dict name -> (B, T) array holding the Euclidean
    norm over units of dL/d(state_t) (the total gradient reaching each step's
    state, i.e. from the output at t and from step t+1). Off by default, at no cost.
    """

    state_names: tuple = ("h",)

    def __init__(self, input_size: int, hidden_size: int, dtype=np.float64, rng=None,
                 recurrent_dropout: float = 0.0):
        super().__init__(dtype, rng)
        self.input_size = as_size(input_size, "input_size")       # ints >= 1: 3.5 is refused, not cut to 3
        self.hidden_size = as_size(hidden_size, "hidden_size")
        self.recurrent_dropout = as_dropout_rate(recurrent_dropout, "recurrent_dropout")
        self.training = True
        self.track_state_grads = False
        self.state_grad_norms: dict | None = None
        self._workspace = Workspace()                             # spent cache arrays for the next fprop

    @staticmethod
    def _finite_hyperparameter(value, name: str) -> float:
        """The one check of a cell's float constructor argument (a bias offset, a time scale):
        a finite number, else NpnetError naming it (``forget_bias=inf`` would start a NaN cell)."""
        return as_finite_float(value, name)

    # -- train / eval and recurrent dropout ----------------------------------
    def train(self) -> "RecurrentCell":
        """Training mode: recurrent dropout (if any) is applied."""
        self.training = True
        return self

    def eval(self) -> "RecurrentCell":
        """Evaluation mode: recurrent dropout is off (a given ``dropout_mask`` is still used)."""
        self.training = False
        return self

    def _dropout_config(self, cfg: dict) -> dict:
        """Add ``recurrent_dropout`` to a get_config dict when it is on (configs without it stay as before)."""
        if self.recurrent_dropout > 0.0:
            cfg["recurrent_dropout"] = self.recurrent_dropout
        return cfg

    def recurrent_dropout_mask(self, batch: int, dropout_mask=None):
        """The multiplier u (B, H) of h_{t-1} in the recurrent term for one fprop, or None (no dropout).

        ``dropout_mask`` given: checked (shape (B, H), finite) and copied. Otherwise, in training mode
        with ``recurrent_dropout = p > 0``: u = [r < 1 - p] / (1 - p) with r uniform (B, H) from the
        cell's ``rng`` (:func:`dropout_multiplier`, as SequenceModel's dropouts; inside a SequenceModel the cells
        share the model's Generator, so one Generator state, saved in checkpoints, covers all masks).
        """
        H = self.hidden_size
        if dropout_mask is not None:
            u = check_input(dropout_mask, "dropout_mask", 2, H, self.dtype)
            if u.shape[0] != batch:
                raise ShapeError(f"dropout_mask must have shape ({batch}, {H}), got {u.shape}")
            return np.array(u, dtype=self.dtype)                    # our own copy
        if not self.training or self.recurrent_dropout == 0.0:
            return None
        return dropout_multiplier(self.rng, self.recurrent_dropout, (batch, H), self.dtype)   # (B, H)

    # -- state ------------------------------------------------------------
    def init_state(self, batch_size: int):
        """Zero state for a batch, in the public structure (array or tuple)."""
        zs = tuple(np.zeros((batch_size, self.hidden_size), self.dtype) for _ in self.state_names)
        return self.pack_state(zs)

    def pack_state(self, parts: tuple):
        """Tuple of (B, H) arrays -> the public state: ``h`` alone, or the tuple ``(h, c)``."""
        return parts[0] if len(parts) == 1 else tuple(parts)

    def unpack_state(self, state, batch: int, what: str = "state") -> tuple:
        """Validate a public state (array or tuple) and return a tuple of (B, H) arrays."""
        n = len(self.state_names)
        want = f"({batch}, {self.hidden_size})"
        if state is None:
            return tuple(np.zeros((batch, self.hidden_size), self.dtype) for _ in range(n))
        if n == 1:
            if isinstance(state, (tuple, list)):
                if len(state) != 1:
                    raise ShapeError(f"{what} of {type(self).__name__} must be one array h of shape {want}")
                state = state[0]
            parts = (state,)
        else:
            if not isinstance(state, (tuple, list)) or len(state) != n:
                names = ", ".join(self.state_names)
                raise ShapeError(f"{what} of {type(self).__name__} must be a tuple ({names}) of arrays of shape {want}")
            parts = tuple(state)
        out = []
        for name, p in zip(self.state_names, parts):
            p = check_input(p, f"{what} {name}", 2, self.hidden_size, self.dtype)
            if p.shape[0] != batch:
                raise ShapeError(f"{what} {name} must have shape {want}, got {p.shape}")
            out.append(p)
        return tuple(out)

    # -- inputs -----------------------------------------------------------
    def _check_x(self, x) -> np.ndarray:
        x = check_input(x, "x", 3, None, self.dtype)
        if x.shape[2] != self.input_size:
            raise ShapeError(f"x must have shape (B, T, {self.input_size}), got {x.shape}")
        if x.shape[0] < 1 or x.shape[1] < 1:
            raise ShapeError(f"x must have B >= 1 and T >= 1, got shape {x.shape}")
        return x

    def _check_mask(self, mask, batch: int, steps: int):
        """Return the mask as a time-major bool array (T, B, 1), or None."""
        if mask is None:
            return None
        if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
            got = mask.dtype if isinstance(mask, np.ndarray) else type(mask).__name__
            raise ShapeError(f"mask must be a bool array of shape ({batch}, {steps}), got {got}")
        if mask.shape != (batch, steps):
            raise ShapeError(f"mask must have shape ({batch}, {steps}), got {mask.shape}")
        return np.ascontiguousarray(mask.T)[:, :, None]

    def _check_dout(self, dout, batch: int, steps: int) -> np.ndarray:
        dout = check_input(dout, "dout", 3, None, self.dtype)
        if dout.shape != (batch, steps, self.hidden_size):
            raise ShapeError(f"dout must have shape ({batch}, {steps}, {self.hidden_size}), got {dout.shape}")
        return dout

    def _begin_fprop(self, x, state, mask, dropout_mask):
        """The one way every cell starts ``fprop``: check x, the state, the mask and the dropout mask.

        Returns (x (B, T, D) in the cell's dtype, the state parts: a tuple of (B, H) arrays, the
        mask time-major (T, B, 1) bool or None, the recurrent dropout multiplier (B, H) or None).
        """
        x = self._check_x(x)
        B, T = x.shape[:2]
        parts = self.unpack_state(state, B)
        return x, parts, self._check_mask(mask, B, T), self.recurrent_dropout_mask(B, dropout_mask)

    def _begin_bprop(self, dout, dstate):
        """The one way every cell starts ``bprop``: check the arguments, then spend the cache.

        Raises NotForwardedError without a cache; a bad ``dout`` or ``dstate`` raises before the
        cache is taken, so a correct call can follow. ``dstate`` is None (zeros), the public state
        structure, or for several states a tuple whose entries may be None (zeros).
        Returns (cache, dout (B, T, H), dstate parts: a tuple of (B, H) arrays, our own copies).
        """
        cache = self._cache
        if cache is None:
            self._take_cache()                                   # raises NotForwardedError
        T, B = cache.x.shape[:2]                                 # every cell caches x (T, B, D)
        dout = self._check_dout(dout, B, T)
        if isinstance(dstate, (tuple, list)) and len(dstate) == len(self.state_names) > 1:
            dstate = tuple(np.zeros((B, self.hidden_size), self.dtype) if d is None else d for d in dstate)
        parts = self.unpack_state(dstate, B, "dstate")
        self._take_cache()
        return cache, dout, tuple(d.copy() for d in parts)      # running gradients: never the caller's

    def _record_norms(self, name: str, t: int, g: np.ndarray) -> None:
        """Store ||dL/d state_t|| per batch row (only called when tracking)."""
        self.state_grad_norms[name][:, t] = np.sqrt(np.einsum("bh,bh->b", g, g))

    def _start_tracking(self, batch: int, steps: int) -> bool:
        if self.track_state_grads:
            self.state_grad_norms = {n: np.zeros((batch, steps)) for n in self.state_names}
        return self.track_state_grads

    # -- the shared sequence API -----------------------------------------
    def fprop(self, x, state=None, mask=None, dropout_mask=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def bprop(self, dout, dstate=None):  # pragma: no cover - abstract
        raise NotImplementedError

    def step(self, x_t, state=None):  # pragma: no cover - abstract
        raise NotImplementedError
