"""BasicRNNCell: the vanilla (Elman) recurrent cell with tanh or ReLU, and its BPTT."""
from __future__ import annotations

from contextlib import nullcontext

import numpy as np

from .. import init as initializers
from ..activations import tanh_from_scaled
from . import reference
from .base import RecurrentCell
from ..layer import NpnetError, ShapeError, check_input


class BasicRNNCell(RecurrentCell):
    """h_t = act(x_t W_x + h_{t-1} W_h + b), act in {tanh, relu}.

    Equations (time-major, one step)::

        forward:   a_t = x_t W_x + h_{t-1} W_h + b          (B, H)
                   h_t = act(a_t)
        backward:  g_t  = dout_t + dh_t                       total dL/dh_t
                   da_t = g_t * act'(a_t)                     tanh: 1 - h_t^2;  relu: [h_t > 0]
                   dh_{t-1} = da_t W_h^T
                   dW_x += sum_t x_t^T da_t,   dW_h += sum_t h_{t-1}^T da_t,   db += sum_t da_t

    With a mask m_t (B, 1): h_t = m_t * act(a_t) + (1 - m_t) * h_{t-1} and
    out_t = m_t * act(a_t); backward uses g_t = m_t (dout_t + dh_t) and adds
    (1 - m_t) dh_t straight into dh_{t-1}.

    Parameters
    ----------
    input_size : int (D)
    hidden_size : int (H)
    nonlinearity : {"tanh", "relu"}
    weight_init, recurrent_init, bias_init : initialiser or name
        Defaults: glorot_uniform, orthogonal, zeros. For the IRNN of Le et al.
        (2015) use ``nonlinearity="relu", recurrent_init="identity"``.
    dtype, rng : see :class:`npnet.layer.Layer`

    Params: ``W_x`` (D, H), ``W_h`` (H, H), ``b`` (H,).
    Cache: the inputs X (T, B, D), the states S (T+1, B, H) and, with a mask,
    the outputs O (T, B, H); act' is recomputed from the outputs, so the
    pre-activations are never stored.
    """

    state_names = ("h",)

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh",
                 weight_init="glorot_uniform", recurrent_init="orthogonal", bias_init="zeros",
                 dtype=np.float64, rng=None):
        super().__init__(input_size, hidden_size, dtype, rng)
        if nonlinearity not in ("tanh", "relu"):
            raise NpnetError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        D, H = self.input_size, self.hidden_size
        self.add_param("W_x", initializers.get(weight_init)((D, H), self.rng, self.dtype))
        self.add_param("W_h", initializers.get(recurrent_init)((H, H), self.rng, self.dtype))
        self.add_param("b", initializers.get(bias_init)((H,), self.rng, self.dtype))

    def get_config(self) -> dict:
        return {"input_size": self.input_size, "hidden_size": self.hidden_size,
                "nonlinearity": self.nonlinearity, "dtype": self.dtype.name}

    # float64 tanh through exp (5 NumPy calls instead of 1) pays from about this many
    # elements per step (B * H); below it the per-call overhead dominates (config D).
    _EXP_TANH_MIN = 4096

    @staticmethod
    def _relu(a: np.ndarray, out: np.ndarray) -> np.ndarray:
        return np.maximum(a, 0.0, out=out)

    def _act(self, a: np.ndarray, out: np.ndarray) -> np.ndarray:
        if self.nonlinearity == "tanh":
            return np.tanh(a, out=out)
        return np.maximum(a, 0.0, out=out)

    def _act_grad(self, o: np.ndarray) -> np.ndarray:
        """act'(a) from the output o = act(a), for a whole (T, B, H) block at once."""
        if self.nonlinearity == "tanh":
            d = np.multiply(o, o)
            np.subtract(1.0, d, out=d)
            return d
        return (o > 0).astype(self.dtype)

    # ------------------------------------------------------------------
    def fprop(self, x, state=None, mask=None):
        """x (B, T, D), state h (B, H) or None, mask (B, T) bool or None -> (out (B, T, H), h_T)."""
        x = self._check_x(x)
        B, T, D = x.shape
        H = self.hidden_size
        (h0,) = self.unpack_state(state, B)
        m = self._check_mask(mask, B, T)                      # (T, B, 1) bool or None
        Wx, Wh, b = self.params["W_x"], self.params["W_h"], self.params["b"]

        # float64 tanh on big blocks: h = 2 / (1 + exp(a')) - 1 with a' = -2 a computed directly
        # (weights scaled by -2, exact). NumPy's float64 tanh is scalar code, 2.7x the cost of
        # this; its float32 tanh is vectorised, and on small blocks one call beats five.
        exp_tanh = (self.nonlinearity == "tanh" and self.dtype != np.float32
                    and B * H >= self._EXP_TANH_MIN)
        if exp_tanh:
            Wx, Wh, b = Wx * -2.0, Wh * -2.0, b * -2.0
        X = x.transpose(1, 0, 2).copy()                      # (T, B, D) own copy: the caller may edit x
        A = (X.reshape(T * B, D) @ Wx).reshape(T, B, H)       # (T, B, H) input projection, all steps
        A += b
        S = np.empty((T + 1, B, H), self.dtype)               # (T+1, B, H) states, S[0] = h0
        S[0] = h0
        if m is None and exp_tanh:
            with np.errstate(over="ignore"):                   # exp(a') = inf gives h = -1, exact
                for h_prev, h, a in zip(S[:-1], S[1:], A):
                    np.dot(h_prev, Wh, out=h)
                    h += a                                     # a' = -2 a_t
                    tanh_from_scaled(h)                        # h_t = tanh(a_t)
            O = S[1:]
        elif m is None:
            act = np.tanh if self.nonlinearity == "tanh" else self._relu
            for h_prev, h, a in zip(S[:-1], S[1:], A):
                np.dot(h_prev, Wh, out=h)
                h += a
                act(h, out=h)
            O = S[1:]
        else:
            O = A                                              # reuse A's memory for outputs
            a = np.empty((B, H), self.dtype)                   # (B, H) scratch
            with np.errstate(over="ignore") if exp_tanh else nullcontext():   # ReLU keeps its warnings
                for t in range(T):
                    np.dot(S[t], Wh, out=a)
                    a += A[t]
                    if exp_tanh:
                        tanh_from_scaled(a)
                    else:
                        self._act(a, out=a)
                    np.copyto(S[t + 1], S[t])
                    np.copyto(S[t + 1], a, where=m[t])
                    np.multiply(a, m[t], out=O[t])
        self._cache = {"X": X, "S": S, "O": O, "m": m}
        out = O.transpose(1, 0, 2).copy()                    # (B, T, H) never a view of the cache
        return out, S[T].copy()

    def bprop(self, dout, dstate=None):
        """dout (B, T, H), dstate dL/dh_T (B, H) or None -> (dx (B, T, D), dh_0 (B, H))."""
        if self._cache is None:
            self._take_cache()                                 # raises NotForwardedError
        X, S, O, m = (self._cache[k] for k in ("X", "S", "O", "m"))
        T, B, D = X.shape
        H = self.hidden_size
        dout = self._check_dout(dout, B, T)                    # checked before the cache is spent
        (dh,) = self.unpack_state(dstate, B, "dstate")
        self._take_cache()
        dh = dh.copy()                                         # (B, H) running dL/dh_t
        WhT = np.ascontiguousarray(self.params["W_h"].T)       # (H, H) contiguous: BLAS is faster on it

        dA = self._act_grad(O)                                 # (T, B, H) act', then da in place
        dO = dout.transpose(1, 0, 2)                           # (T, B, H) view, read only
        track = self._start_tracking(B, T)
        g = np.empty((B, H), self.dtype)                       # (B, H) total dL/dh_t
        if m is None and not track:                            # the hot loop: 3 NumPy calls per step
            for dout_t, da_t in zip(dO[::-1], dA[::-1]):
                np.add(dout_t, dh, out=g)
                da_t *= g
                np.dot(da_t, WhT, out=dh)
        else:
            keep = None if m is None else ~m                   # (T, B, 1) padded steps, inverted once
            carry = np.empty((B, H), self.dtype)               # (B, H) (1 - m) dh
            for t in range(T - 1, -1, -1):
                np.add(dO[t], dh, out=g)
                if m is not None:
                    np.multiply(dh, keep[t], out=carry)        # padded rows pass dh straight through
                    g *= m[t]
                if track:
                    self._record_norms("h", t, g if m is None else g + carry)
                dA[t] *= g
                np.dot(dA[t], WhT, out=dh)
                if m is not None:
                    dh += carry

        dA2 = dA.reshape(T * B, H)                              # (T*B, H)
        self.grads["W_x"] += X.reshape(T * B, D).T @ dA2
        self.grads["W_h"] += S[:-1].reshape(T * B, H).T @ dA2
        self.grads["b"] += dA2.sum(axis=0)
        dX = (dA2 @ self.params["W_x"].T).reshape(T, B, D)
        return np.ascontiguousarray(dX.transpose(1, 0, 2)), dh

    def step(self, x_t, state=None):
        """One step without caching (closed-loop generation): x_t (B, D) -> (h (B, H), h).

        The math is :func:`npnet.cells.reference.rnn_step_forward`, called as it is."""
        x_t = check_input(x_t, "x_t", 2, self.input_size, self.dtype)
        (h_prev,) = self.unpack_state(state, x_t.shape[0])
        h, _ = reference.rnn_step_forward(x_t, h_prev, self.params, self.nonlinearity)
        return h, h
