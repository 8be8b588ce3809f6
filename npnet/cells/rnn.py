"""BasicRNNCell: the vanilla (Elman) recurrent cell with tanh or ReLU, and its BPTT.

Written for speed: time-major buffers, one input-projection GEMM for the whole sequence and three
NumPy calls per step each way. The plain step-by-step math is rnn_step_forward / rnn_step_backward
in npnet/cells/reference.py (step() calls it); tests/cells/test_contract.py proves the two equal.
"""
from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np

from .. import init as initializers
from ..activations import tanh_from_scaled
from . import _kernels, reference
from .base import RecurrentCell, recurrent_products
from ..layer import NpnetError, check_input


@dataclass
class RNNCache:
    """What bprop needs from fprop (act' comes from the outputs: pre-activations are not kept)."""
    x: np.ndarray                 # (T, B, D) the inputs, time-major, our own copy: for dW_x
    h: np.ndarray                 # (T+1, B, H) states h_0 .. h_T: for dW_h
    out: np.ndarray               # (T, B, H) outputs act(a_t) (m_t act(a_t) with a mask): for act'
    mask: np.ndarray | None       # (T, B, 1) bool, True on real steps; None: all real
    drop: np.ndarray | None = None  # (B, H) recurrent dropout multiplier u of h_{t-1}; None: no dropout


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

    With recurrent dropout (mask u (B, H), one per sequence; see :class:`RecurrentCell`)::

        a_t = x_t W_x + (h_{t-1} * u) W_h + b
        dh_{t-1} = (da_t W_h^T) * u,   dW_h += sum_t (h_{t-1} * u)^T da_t

    Parameters
    ----------
    input_size : int (D)
    hidden_size : int (H)
    nonlinearity : {"tanh", "relu"}
    weight_init, recurrent_init, bias_init : initialiser or name
        Defaults: glorot_uniform, orthogonal, zeros. For the IRNN of Le et al.
        (2015) use ``nonlinearity="relu", recurrent_init="identity"``.
    recurrent_dropout : float in [0, 1)
        Variational dropout on h_{t-1} in the recurrent term, training mode only (Keras
        ``recurrent_dropout``); 0 (default): none, and fprop runs exactly as without it.
    dtype, rng : see :class:`npnet.layer.Layer`

    Params: ``W_x`` (D, H), ``W_h`` (H, H), ``b`` (H,).
    Cache: :class:`RNNCache` (inputs, states, outputs); act' is recomputed from the outputs,
    so the pre-activations are never stored.
    """

    state_names = ("h",)

    def __init__(self, input_size: int, hidden_size: int, nonlinearity: str = "tanh",
                 weight_init="glorot_uniform", recurrent_init="orthogonal", bias_init="zeros",
                 dtype=np.float64, rng=None, recurrent_dropout: float = 0.0):
        super().__init__(input_size, hidden_size, dtype, rng, recurrent_dropout)
        if nonlinearity not in ("tanh", "relu"):
            raise NpnetError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        D, H = self.input_size, self.hidden_size
        self.add_param("W_x", initializers.get(weight_init)((D, H), self.rng, self.dtype))
        self.add_param("W_h", initializers.get(recurrent_init)((H, H), self.rng, self.dtype))
        self.add_param("b", initializers.get(bias_init)((H,), self.rng, self.dtype))

    def get_config(self) -> dict:
        return self._dropout_config({"input_size": self.input_size, "hidden_size": self.hidden_size,
                                     "nonlinearity": self.nonlinearity, "dtype": self.dtype.name})

    @staticmethod
    def _relu(a: np.ndarray, out: np.ndarray) -> np.ndarray:
        return np.maximum(a, 0.0, out=out)

    def _act_grad(self, out: np.ndarray, slope: np.ndarray) -> np.ndarray:
        """act'(a) from the output out = act(a), for a whole (T, B, H) block at once (into ``slope``
        for tanh; ``slope`` may not be ``out``)."""
        if self.nonlinearity == "tanh":
            np.multiply(out, out, out=slope)
            np.subtract(1.0, slope, out=slope)
            return slope
        return (out > 0).astype(self.dtype)

    # ------------------------------------------------------------------
    def fprop(self, x, state=None, mask=None, dropout_mask=None):
        """x (B, T, D), state h (B, H) or None, mask (B, T) bool or None -> (out (B, T, H), h_T).

        ``dropout_mask`` (B, H) or None: the recurrent dropout multiplier u to use (see
        :class:`RecurrentCell`); None draws one when training with ``recurrent_dropout > 0``."""
        x, (h0,), mask, drop = self._begin_fprop(x, state, mask, dropout_mask)   # mask (T, B, 1), drop (B, H)
        B, T, D = x.shape
        H = self.hidden_size
        W_x_s, W_h_s, b_s = self.params["W_x"], self.params["W_h"], self.params["b"]   # times s = 1 ...
        through_exp = self.nonlinearity == "tanh" and _kernels.exp_tanh_pays(self.dtype, B * H)
        if through_exp:                                        # ... or s = -2 (exact): the loop gets
            W_x_s, W_h_s, b_s = W_x_s * -2.0, W_h_s * -2.0, b_s * -2.0   # a' = -2 a for tanh through exp
        take = self._workspace.take                           # the last bprop's spent arrays, or new
        x_steps = take("x", (T, B, D), self.dtype)            # (T, B, D) own copy: the caller may edit x
        np.copyto(x_steps, x.transpose(1, 0, 2))
        a = take("a", (T, B, H), self.dtype)                  # (T, B, H) s x_t W_x, all steps in one GEMM
        np.matmul(x_steps.reshape(T * B, D), W_x_s, out=a.reshape(T * B, H))
        a += b_s
        h = take("h", (T + 1, B, H), self.dtype)              # (T+1, B, H) states, h[0] = h_0
        h[0] = h0
        out = self._forward_loop(a, h, W_h_s, mask, through_exp, drop)
        if mask is None:
            self._workspace.give(a=a)                         # spent: the outputs are h[1:] itself
        self._cache = RNNCache(x=x_steps, h=h, out=out, mask=mask, drop=drop)
        return out.transpose(1, 0, 2).copy(), h[T].copy()     # (B, T, H) never a view of the cache

    def _forward_loop(self, a, h, W_h_s, mask, through_exp, drop=None):
        """h_t = act(h_{t-1} W_h + a_t) for every step, in place in h; returns the outputs (T, B, H).

        a (T, B, H) holds x_t W_x + b and W_h_s is W_h (both times -2 when ``through_exp``: tanh through exp, see
        :mod:`npnet.cells._kernels`). Without a mask the outputs are h[1:] itself and the loop
        is the hot one, three NumPy calls per step (config D pays for every extra line).
        ``drop`` (B, H) or None: the recurrent dropout mask, inside the recurrent product."""
        act = np.tanh if self.nonlinearity == "tanh" else self._relu
        if mask is not None:
            return self._forward_loop_masked(a, h, W_h_s, mask, through_exp, act, drop)
        rec_dot = recurrent_products(drop)[0]                 # np.dot itself without dropout
        with np.errstate(over="ignore") if through_exp else nullcontext():   # ReLU keeps its warnings
            for h_prev, h_t, a_t in zip(h[:-1], h[1:], a):   # per-step views, made by iteration
                rec_dot(h_prev, W_h_s, out=h_t)               # the one recurrent GEMM
                h_t += a_t                                    # a_t (or a' = -2 a_t)
                if through_exp:
                    tanh_from_scaled(h_t)                     # h_t = tanh(a_t); exp = inf gives -1, exact
                else:
                    act(h_t, out=h_t)                         # h_t = act(a_t)
        return h[1:]

    @staticmethod
    def _forward_loop_masked(a, h, W_h_s, mask, through_exp, act, drop):
        """:meth:`_forward_loop` with a mask: the outputs m_t h~_t are written over a (a_t is used
        first) and padded rows keep h_{t-1}."""
        h_new = np.empty_like(h[0])                           # (B, H) h~_t, the step's new value
        rec_dot = recurrent_products(drop)[0]
        with np.errstate(over="ignore") if through_exp else nullcontext():
            for h_prev, h_t, a_t, real_t in zip(h[:-1], h[1:], a, mask):
                rec_dot(h_prev, W_h_s, out=h_new)
                h_new += a_t
                if through_exp:
                    tanh_from_scaled(h_new)
                else:
                    act(h_new, out=h_new)
                np.copyto(h_t, h_prev)                        # h_t = m_t h~_t + (1 - m_t) h_{t-1}
                np.copyto(h_t, h_new, where=real_t)
                np.multiply(h_new, real_t, out=a_t)           # out_t = m_t h~_t, over a_t
        return a

    def bprop(self, dout, dstate=None):
        """dout (B, T, H), dstate dL/dh_T (B, H) or None -> (dx (B, T, D), dh_0 (B, H))."""
        cache, dout, (dh,) = self._begin_bprop(dout, dstate)   # dh (B, H) running dL/dh from step t+1
        T, B, D = cache.x.shape
        H = self.hidden_size
        da = self._workspace.take("a", (T, B, H), self.dtype)   # (T, B, H) act'(a_t), then da_t in place
        da = self._act_grad(cache.out, da)
        dout_steps = dout.transpose(1, 0, 2)                  # (T, B, H) view, read only
        W_h_T = np.ascontiguousarray(self.params["W_h"].T)    # (H, H) contiguous: BLAS is faster on it
        track = self._start_tracking(B, T)
        rec_dot_T = recurrent_products(cache.drop)[1]         # np.dot itself without dropout
        if cache.mask is None and not track:
            self._backward_loop(da, dout_steps, dh, W_h_T, rec_dot_T)
        else:
            self._backward_loop_masked(da, dout_steps, dh, W_h_T, cache.mask, track, rec_dot_T)
        da_rows = da.reshape(T * B, H)                        # (T*B, H)
        h_rec = cache.h[:-1] if cache.drop is None else cache.h[:-1] * cache.drop   # (T, B, H) what met W_h
        self.grads["W_x"] += cache.x.reshape(T * B, D).T @ da_rows
        self.grads["W_h"] += h_rec.reshape(T * B, H).T @ da_rows
        self.grads["b"] += da_rows.sum(axis=0)
        dx = cache.x                                          # (T, B, D) dx over x: dW_x has used it
        np.matmul(da_rows, self.params["W_x"].T, out=dx.reshape(T * B, D))
        dx = dx.transpose(1, 0, 2).copy()                     # (B, T, D), always a copy: x goes back
        self._workspace.give(x=cache.x, h=cache.h, a=da)      # all spent
        return dx, dh

    @staticmethod
    def _backward_loop(da, dout_steps, dh, W_h_T, rec_dot_T=np.dot):
        """The hot loop, three NumPy calls per step: da_t = act'_t * (dout_t + dh); dh = da_t W_h^T.

        da (T, B, H) holds act'(a_t) and receives da_t; dh (B, H) ends as dL/dh_0. ``rec_dot_T``
        is np.dot, or with recurrent dropout (da_t W_h^T) * u (see :func:`recurrent_products`)."""
        dh_total = np.empty_like(dh)                          # (B, H) total dL/dh_t
        for dout_t, da_t in zip(dout_steps[::-1], da[::-1]):
            np.add(dout_t, dh, out=dh_total)
            da_t *= dh_total
            rec_dot_T(da_t, W_h_T, out=dh)

    def _backward_loop_masked(self, da, dout_steps, dh, W_h_T, mask, track, rec_dot_T=np.dot):
        """:meth:`_backward_loop` with a mask (padded rows pass dh through) and/or norm tracking."""
        T = da.shape[0]
        padded = None if mask is None else ~mask              # (T, B, 1)
        dh_total = np.empty_like(dh)                          # (B, H) total dL/dh_t (times m_t)
        carry = np.empty_like(dh)                             # (B, H) (1 - m_t) dh, passed straight through
        for t in range(T - 1, -1, -1):
            np.add(dout_steps[t], dh, out=dh_total)
            if mask is not None:
                np.multiply(dh, padded[t], out=carry)
                dh_total *= mask[t]
            if track:
                self._record_norms("h", t, dh_total if mask is None else dh_total + carry)
            da[t] *= dh_total
            rec_dot_T(da[t], W_h_T, out=dh)
            if mask is not None:
                dh += carry

    def step(self, x_t, state=None):
        """One step without caching (closed-loop generation): x_t (B, D) -> (h (B, H), h).

        The math is :func:`npnet.cells.reference.rnn_step_forward`, called as it is. No recurrent
        dropout: step() is for generation (evaluation)."""
        x_t = check_input(x_t, "x_t", 2, self.input_size, self.dtype)
        (h_prev,) = self.unpack_state(state, x_t.shape[0])
        h, _ = reference.rnn_step_forward(x_t, h_prev, self.params, self.nonlinearity)
        return h, h
