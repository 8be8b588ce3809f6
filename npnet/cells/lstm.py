"""LSTMCell: the long short-term memory cell (gate order i, f, g, o as PyTorch) and its BPTT.

Written for speed in pure NumPy: time-major buffers, one input-projection GEMM for the whole
sequence, one recurrent GEMM and one exp for all four gates per step, and a backward pass that
computes its step-independent factors a block of steps at a time (npnet/cells/_kernels.py has
each trick, with why). The plain step-by-step math is lstm_step_forward / lstm_step_backward in
npnet/cells/reference.py (step() calls it); tests/cells/test_contract.py proves the two equal.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

import numpy as np

from .. import init as initializers
from . import _kernels, reference
from .base import RecurrentCell, recurrent_products
from ..layer import check_input


@dataclass
class LSTMCache:
    """What bprop needs from fprop. Gate derivatives come from the gates themselves
    (s' = s (1 - s), tanh' = 1 - tanh^2), so pre-activations are never kept."""
    x: np.ndarray                 # (T, B, D) inputs, time-major, our own copy: for dW_x
    gates: np.ndarray             # (T, B, 4H) [i|f|g|o]; bprop overwrites with da
    h: np.ndarray                 # (T+1, B, H) states h_0 .. h_T: for dW_h
    c: np.ndarray                 # (T+1, B, H) cells c_0 .. c_T: c_{t-1} for da_f
    tanh_c: np.ndarray            # (T, B, H) tanh(c~_t): used twice (da_o, the dc path), kept
                                  #   because a tanh is the dearest op per element
    mask: np.ndarray | None       # (T, B, 1) bool, True on real steps; None: all real
    drop: np.ndarray | None = None  # (B, H) recurrent dropout multiplier u of h_{t-1}; None: no dropout


class LSTMCell(RecurrentCell):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with forget gate of Gers et al. 2000).

    Equations (time-major, one step; s = logistic sigmoid, * elementwise)::

        forward:   a_t = x_t W_x + h_{t-1} W_h + b                      (B, 4H) = [a_i | a_f | a_g | a_o]
                   i_t = s(a_i)   f_t = s(a_f)   g_t = tanh(a_g)   o_t = s(a_o)
                   c_t = f_t * c_{t-1} + i_t * g_t
                   h_t = o_t * tanh(c_t)                                 out_t = h_t

        backward:  (dh, dc: what step t+1 sent back; (dh_T, dc_T) = dstate, zeros if None)
                   dh_total = dout_t + dh                                total dL/dh_t
                   dc_total = dc + dh_total * o_t * (1 - tanh^2(c_t))    total dL/dc_t
                   da_i = dc_total * g_t       * i_t (1 - i_t)
                   da_f = dc_total * c_{t-1}   * f_t (1 - f_t)
                   da_g = dc_total * i_t       * (1 - g_t^2)
                   da_o = dh_total * tanh(c_t) * o_t (1 - o_t)
                   dh_{t-1} = da_t W_h^T        dc_{t-1} = dc_total * f_t  sent to step t-1
                   dx_t = da_t W_x^T
                   dW_x += sum_t x_t^T da_t    dW_h += sum_t h_{t-1}^T da_t    db += sum_t da_t

    With a mask m_t (B, 1) in {0, 1}: (h_t, c_t) = m_t * (h~_t, c~_t) + (1 - m_t) * (h_{t-1}, c_{t-1})
    and out_t = m_t * h~_t, where (h~_t, c~_t) are the step's new values above. Backward:
    dh_total = m_t * dout_t + dh, dc_total = dc + m_t * dh_total * o_t (1 - tanh^2 c_t),
    da_t = m_t * (...), dh_{t-1} = da_t W_h^T + (1 - m_t) dh, dc_{t-1} = dc_total * (m_t f_t + 1 - m_t): a padded row's
    gate gradients are 0, its dout_t is ignored and (dh, dc) pass through unchanged.

    With recurrent dropout (mask u (B, H), one per sequence; see :class:`RecurrentCell`):
    a_t = x_t W_x + (h_{t-1} * u) W_h + b, so dh_{t-1} = (da_t W_h^T) * u [+ (1 - m_t) dh] and
    dW_h += sum_t (h_{t-1} * u)^T da_t; the cell path c is not dropped.

    Diagnostics: with ``track_state_grads = True`` each bprop stores ``state_grad_norms``
    {"h": (B, T), "c": (B, T)}, the norms over units of dh_total and dc_total above.

    Parameters
    ----------
    input_size : int (D)
    hidden_size : int (H)
    forget_bias : float
        Initial value of the forget-gate bias b[H:2H] (Jozefowicz, Zaremba & Sutskever 2015
        recommend 1.0: the cell starts by remembering). Ignored when ``chrono_t_max`` is set.
    weight_init, recurrent_init : initialiser or name (see :mod:`npnet.init`)
        For W_x (D, 4H) and W_h (H, 4H); the orthogonal default draws one H x H
        orthogonal block per gate.
    recurrent_dropout : float in [0, 1)
        Variational dropout on h_{t-1} in the recurrent term, training mode only (Keras
        ``recurrent_dropout``); 0 (default): none, and fprop runs exactly as without it.
    chrono_t_max : float or None
        Chrono initialisation (Tallec & Ollivier 2018): b_f ~ log U[1, T_max - 1], b_i = -b_f,
        for dependencies up to T_max steps long.
    dtype, rng : see :class:`npnet.layer.Layer`

    Params: ``W_x`` (D, 4H), ``W_h`` (H, 4H), ``b`` (4H,); gate blocks i, f, g, o side by side.
    PyTorch: ``weight_ih = W_x.T``, ``weight_hh = W_h.T``, ``bias_ih + bias_hh = b``.

    State: the tuple ``(h, c)``, each (B, H).

    Cache: :class:`LSTMCache` (what bprop needs, nothing more; each field says why).
    bprop spends the cache: it writes the gate gradients over the gates.
    """

    state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0,
                 weight_init="glorot_uniform", recurrent_init="orthogonal",
                 chrono_t_max: float | None = None, dtype=np.float64, rng=None,
                 recurrent_dropout: float = 0.0):
        super().__init__(input_size, hidden_size, dtype, rng, recurrent_dropout)
        D, H = self.input_size, self.hidden_size
        self.forget_bias = self._finite_hyperparameter(forget_bias, "forget_bias")
        self.chrono_t_max = None if chrono_t_max is None else self._finite_hyperparameter(chrono_t_max, "chrono_t_max")
        self._init_names = {"weight_init": weight_init, "recurrent_init": recurrent_init}
        self.add_param("W_x", initializers.get(weight_init)((D, 4 * H), self.rng, self.dtype))
        self.add_param("W_h", initializers.get(recurrent_init)((H, 4 * H), self.rng, self.dtype))
        b = np.zeros(4 * H, self.dtype)                          # (4H,) b_g = b_o = 0
        if self.chrono_t_max is None:
            b[H:2 * H] = self.forget_bias
        else:
            b[0:H], b[H:2 * H] = initializers.chrono_forget_bias(self.chrono_t_max, self.rng, H, self.dtype)
        self.add_param("b", b)
        # exp-form gates (see _kernels.gate_scales): (4H,) scale (-1, -1, -2, -1) per block i, f, g, o
        # of the weights, (4H,) numerators (1, 1, 2, 1)
        self._gate_scale, self._gate_numerator = _kernels.gate_scales("ssts", H, self.dtype)

    def get_config(self) -> dict:
        """Constructor arguments to rebuild the cell (initialiser callables are not recorded)."""
        cfg = {"input_size": self.input_size, "hidden_size": self.hidden_size,
               "forget_bias": self.forget_bias, "chrono_t_max": self.chrono_t_max}
        for name, value in self._init_names.items():
            if isinstance(value, str):
                cfg[name] = value
        cfg["dtype"] = self.dtype.name
        return self._dropout_config(cfg)

    # ------------------------------------------------------------------
    def fprop(self, x, state=None, mask=None, dropout_mask=None):
        """Run the cell over a sequence.

        Parameters
        ----------
        x : ndarray of shape (B, T, D)
        state : tuple (h0, c0) of arrays of shape (B, H), or None for zeros
        mask : bool ndarray of shape (B, T), or None (all steps real)
        dropout_mask : ndarray of shape (B, H), or None
            The recurrent dropout multiplier u to use (see :class:`RecurrentCell`); None draws one
            when training with ``recurrent_dropout > 0``.

        Returns
        -------
        out : ndarray of shape (B, T, H)
            h_t at real steps, 0 at padded ones.
        state : tuple (h_T, c_T), each of shape (B, H)
        """
        x, (h0, c0), mask, drop = self._begin_fprop(x, state, mask, dropout_mask)  # mask (T, B, 1), drop (B, H)
        B, T, D = x.shape
        H = self.hidden_size
        scale = self._gate_scale                                  # exact: |scale| is 1 or 2
        W_x_s, W_h_s, b_s = self.params["W_x"] * scale, self.params["W_h"] * scale, self.params["b"] * scale

        take = self._workspace.take                               # the last bprop's spent arrays, or new
        x_steps = take("x", (T, B, D), self.dtype)                # (T, B, D) own copy: x may change later
        np.copyto(x_steps, x.transpose(1, 0, 2))
        gates = take("gates", (T, B, 4 * H), self.dtype)          # (T, B, 4H) scale * x W_x, one GEMM
        np.matmul(x_steps.reshape(T * B, D), W_x_s, out=gates.reshape(T * B, 4 * H))
        gates += b_s
        h = take("h", (T + 1, B, H), self.dtype)                  # (T+1, B, H) h states, h[0] = h_0
        c = take("c", (T + 1, B, H), self.dtype)                  # (T+1, B, H) c states, c[0] = c_0
        tanh_c = take("tanh_c", (T, B, H), self.dtype)            # (T, B, H) tanh(c~_t)
        h[0] = h0
        c[0] = c0
        out = self._forward_loop(gates, h, c, tanh_c, W_h_s, mask, drop)
        self._cache = LSTMCache(x=x_steps, gates=gates, h=h, c=c, tanh_c=tanh_c, mask=mask, drop=drop)
        out_b = out.transpose(1, 0, 2).copy()                     # (B, T, H) never a view of the cache
        if mask is not None:
            self._workspace.give(out=out)                         # spent: copied into out_b
        return out_b, (h[T].copy(), c[T].copy())

    def _forward_loop(self, gates, h, c, tanh_c, W_h_s, mask, drop=None):
        """The sequential part of fprop, in place: gates (T, B, 4H) holds scale * (x_t W_x + b) and
        becomes [i|f|g|o]; h, c (T+1, B, H) and tanh_c (T, B, H) are filled. Returns the outputs
        (T, B, H): h[1:] itself, or with a mask m_t h~_t in a new array (padded rows keep h, c).
        ``drop`` (B, H) or None: the recurrent dropout mask, inside the recurrent product."""
        T, B, H = tanh_c.shape
        numerator = self._gate_numerator                          # (4H,)
        tanh_into = _kernels.tanh_kernel(_kernels.exp_tanh_pays(self.dtype, B * H))   # tanh(c): (c, out)
        h_W = np.empty((B, 4 * H), self.dtype)                    # (B, 4H) h_{t-1} (scale W_h)
        i_g = np.empty((B, H), self.dtype)                        # (B, H) i * g
        out = h[1:] if mask is None else self._workspace.take("out", (T, B, H), self.dtype)   # (T, B, H) outputs
        # per step: None, or (1.0 real / 0.0 padded (B, 1), True where padded rows keep (h, c) (B, 1))
        mask_steps = repeat(None) if mask is None else zip(mask.astype(self.dtype), ~mask)
        g4 = gates.reshape(T, B, 4, H)
        exp_gates = _kernels.exp_gates                            # a local name: one call per step
        rec_dot = recurrent_products(drop)[0]                     # np.dot itself without dropout
        steps = zip(gates, g4[:, :, 0], g4[:, :, 1], g4[:, :, 2], g4[:, :, 3], h[:-1], h[1:],
                    c[:-1], c[1:], tanh_c, out, mask_steps)       # per-step views, made by iteration
        with np.errstate(over="ignore"):                          # exp may overflow to inf: exact limits
            for a, i, f, g, o, h_prev, h_t, c_prev, c_t, tanh_c_t, out_t, mask_t in steps:
                rec_dot(h_prev, W_h_s, out=h_W)                   # the one recurrent GEMM
                a += h_W                                          # a' = scale * a_t   (B, 4H)
                exp_gates(a, numerator)                           # [i | f | g + 1 | o]
                g -= 1.0                                          # [i | f | g | o]
                np.multiply(f, c_prev, out=c_t)                   # c~ = f * c_{t-1} + i * g
                np.multiply(i, g, out=i_g)
                c_t += i_g
                tanh_into(c_t, tanh_c_t)
                np.multiply(o, tanh_c_t, out=h_t)                 # h~ = o * tanh(c~)
                if mask_t is not None:
                    real_t, padded_t = mask_t
                    np.multiply(h_t, real_t, out=out_t)           # out = m * h~
                    np.copyto(h_t, h_prev, where=padded_t)        # padded rows carry (h, c)
                    np.copyto(c_t, c_prev, where=padded_t)
        return out

    def bprop(self, dout, dstate=None):
        """Backpropagate through the whole sequence of the last fprop (adds into ``grads``).

        Parameters
        ----------
        dout : ndarray of shape (B, T, H)
            dL/dout; never modified.
        dstate : tuple (dh_T, dc_T) of arrays of shape (B, H), or None (zeros)
            Entries may be None (zeros).

        Returns
        -------
        dx : ndarray of shape (B, T, D)
        dstate0 : tuple (dh_0, dc_0), each of shape (B, H)
        """
        cache, dout, (dh, dc) = self._begin_bprop(dout, dstate)   # (B, H) each: running dL/dh, dL/dc
        T, B, D = cache.x.shape                                   #   sent back from step t+1
        H = self.hidden_size
        da = cache.gates                                          # (T, B, 4H) da_t in the gates' memory
        self._backward_loop(cache, dout.transpose(1, 0, 2), dh, dc)
        da_rows = da.reshape(T * B, 4 * H)                        # (T*B, 4H)
        self.grads["W_x"] += cache.x.reshape(T * B, D).T @ da_rows   # weight gradients: one GEMM each
        h_rec = cache.h[:-1] if cache.drop is None else cache.h[:-1] * cache.drop   # (T, B, H) what met W_h
        self.grads["W_h"] += h_rec.reshape(T * B, H).T @ da_rows
        self.grads["b"] += da_rows.sum(axis=0)
        dx = cache.x                                              # (T, B, D) dx over x: dW_x has used it
        np.matmul(da_rows, self.params["W_x"].T, out=dx.reshape(T * B, D))
        dx = dx.transpose(1, 0, 2).copy()                         # (B, T, D), always a copy: x goes back
        self._workspace.give(x=cache.x, gates=cache.gates, h=cache.h, c=cache.c, tanh_c=cache.tanh_c)  # all spent
        return dx, (dh, dc)

    def _backward_loop(self, cache, dout_steps, dh, dc):
        """Walk the steps backwards, a block of K steps at a time (see _kernels.reverse_blocks):
        the block's factors first (:meth:`_backward_factors`), then the sequential steps.
        Writes da over cache.gates; dh, dc (B, H) end as dL/dh_0, dL/dc_0."""
        T, B, H = cache.tanh_c.shape
        mask = cache.mask
        K = _kernels.block_steps(T, 10 * B * H * self.dtype.itemsize)   # 10 (B, H) arrays per step
        gates4 = cache.gates.reshape(T, B, 4, H)
        dc_dh = np.empty((K, B, H), self.dtype)                   # (K, B, H) o (1 - tanh^2 c) of the block
        scratch4 = np.empty((K, B, 4, H), self.dtype)             # (K, B, 4, H) scratch for the factors
        forget = np.empty((K, B, H), self.dtype)                  # (K, B, H) f of the block (dc chain)
        if mask is not None:
            real = mask.astype(self.dtype)                        # (T, B, 1) 1.0 real / 0.0 padded
            padded = 1.0 - real                                   # (T, B, 1)
            dout_real = np.empty((K, B, H), self.dtype)           # (K, B, H) dout, := 0 on padded rows
        loop = _BackwardSteps(self, B, H, cache.drop)
        track = self._start_tracking(B, T)
        for t0, t1 in _kernels.reverse_blocks(T, K):
            length = t1 - t0                                      # steps in this block (K, or fewer)
            dc_dh_k, da_factors = self._backward_factors(gates4[t0:t1], cache.c[t0:t1 + 1], cache.tanh_c[t0:t1],
                                                         dc_dh[:length], scratch4[:length], forget[:length])
            forget_k = forget[:length]
            if mask is None:
                dout_k, padded_k = dout_steps[t0:t1], repeat(None, length)
            else:                                                 # padded rows: no gate gradient, dc
                dc_dh_k *= real[t0:t1]                            # passes unchanged (f := 1), dout ignored
                da_factors *= real[t0:t1, :, :, None]
                forget_k *= real[t0:t1]
                forget_k += padded[t0:t1]
                dout_k = np.multiply(dout_steps[t0:t1], real[t0:t1], out=dout_real[:length])
                padded_k = padded[t0:t1][::-1]
            loop.run(range(t1 - 1, t0 - 1, -1), dout_k[::-1], dc_dh_k[::-1], da_factors[::-1],
                     forget_k[::-1], cache.gates[t0:t1][::-1], padded_k, dh, dc, track)

    @staticmethod
    def _backward_factors(gates4, c, tanh_c, dc_dh, scratch4, forget):
        """Everything in the backward step that does not depend on the running (dh, dc).

        Computed for a block of K steps at once, so the sequential loop needs only ~7 NumPy
        calls per step::

            dc_dh      = o (1 - tanh^2(c))                  dc_total = dc + dh_total * dc_dh
            da_factors = [g i(1-i) | c_{t-1} f(1-f) | i (1-g^2) | tanh(c) o(1-o)]
                                                            da_t = da_factors * [dc_total x3 | dh_total]

        In: gates4 (K, B, 4, H) [i, f, g, o], c (K+1, B, H) cells c_{t-1}..c_t, tanh_c (K, B, H).
        Out, in place: dc_dh (K, B, H); da_factors over the gates in gates4 (bprop spends the
        cache: the gates' memory becomes da, so backward allocates no (T, B, 4H) array of its
        own); forget (K, B, H) the forget gates themselves, which the dc chain still needs.
        scratch4 (K, B, 4, H) is scratch. Returns (dc_dh, da_factors).
        """
        i, f, g, o = gates4[:, :, 0], gates4[:, :, 1], gates4[:, :, 2], gates4[:, :, 3]
        np.copyto(forget, f)
        np.multiply(tanh_c, tanh_c, out=dc_dh)
        np.subtract(1.0, dc_dh, out=dc_dh)
        dc_dh *= o
        np.subtract(1.0, gates4, out=scratch4)                    # 1 - gate, then the factors
        scratch4 *= gates4                                        # s' = s (1 - s) on i, f, o
        scratch4[:, :, 0] *= g
        scratch4[:, :, 1] *= c[:-1]
        np.multiply(g, g, out=scratch4[:, :, 2])
        np.subtract(1.0, scratch4[:, :, 2], out=scratch4[:, :, 2])
        scratch4[:, :, 2] *= i
        scratch4[:, :, 3] *= tanh_c
        np.copyto(gates4, scratch4)
        return dc_dh, gates4

    def step(self, x_t, state=None):
        """One step without caching (closed-loop generation).

        Parameters
        ----------
        x_t : ndarray of shape (B, D)
        state : tuple (h, c) of arrays of shape (B, H), or None for zeros

        Returns
        -------
        h : ndarray of shape (B, H)
        state : tuple (h, c)

        The math is :func:`npnet.cells.reference.lstm_step_forward`, called as it is. No recurrent
        dropout: step() is for generation (evaluation).
        """
        x_t = check_input(x_t, "x_t", 2, self.input_size, self.dtype)
        h_prev, c_prev = self.unpack_state(state, x_t.shape[0])
        h, c, _ = reference.lstm_step_forward(x_t, h_prev, c_prev, self.params)
        return h, (h, c)


class _BackwardSteps:
    """The sequential part of LSTMCell.bprop: ~7 NumPy calls per step, in buffers made once."""

    def __init__(self, cell, B, H, drop=None):
        self.cell = cell
        self.rec_dot_T = recurrent_products(drop)[1]              # np.dot, or (da W_h^T) * u with dropout
        self.W_h_T = np.ascontiguousarray(cell.params["W_h"].T)   # (4H, H) contiguous: BLAS is faster on it
        self.dh_total = np.empty((B, H), cell.dtype)              # (B, H) total dL/dh_t
        self.dc_total = np.empty((B, H), cell.dtype)              # (B, H) total dL/dc_t
        self.carry = np.empty((B, H), cell.dtype)                 # (B, H) (1 - m_t) dh, passed straight through

    def run(self, ts, dout_k, dc_dh_k, da_factors, forget_k, da_k, padded_k, dh, dc, track):
        """One block, last step first: all arguments are per-step sequences in reverse order."""
        dh_total, dc_total, carry, W_h_T = self.dh_total, self.dc_total, self.carry, self.W_h_T
        rec_dot_T = self.rec_dot_T
        dc_total3 = dc_total[:, None, :]                          # (B, 1, H) view, scales the i, f, g blocks
        steps = zip(ts, dout_k, dc_dh_k, da_factors[:, :, :3], da_factors[:, :, 3], forget_k, da_k, padded_k)
        for t, dout_t, dc_dh_t, da_ifg, da_o, f_t, da_t, padded_t in steps:
            np.add(dout_t, dh, out=dh_total)
            np.multiply(dh_total, dc_dh_t, out=dc_total)
            dc_total += dc
            if track:
                self.cell._record_norms("h", t, dh_total)
                self.cell._record_norms("c", t, dc_total)
            da_ifg *= dc_total3                                   # da_i, da_f, da_g (in the gates' memory)
            da_o *= dh_total                                      # da_o
            np.multiply(dc_total, f_t, out=dc)
            if padded_t is not None:
                np.multiply(dh, padded_t, out=carry)
            rec_dot_T(da_t, W_h_T, out=dh)                        # the one recurrent GEMM
            if padded_t is not None:
                dh += carry
