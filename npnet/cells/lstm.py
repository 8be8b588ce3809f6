"""LSTMCell: the long short-term memory cell (gate order i, f, g, o as PyTorch) and its BPTT.

Written for speed in pure NumPy: time-major buffers, one input-projection GEMM for the
whole sequence, one recurrent GEMM, one exp for all four gates and about 15 NumPy calls per
step (7 in the backward loop). The plain step-by-step version it is tested against lives in
tests/reference_lstm.py.
"""
from __future__ import annotations

from itertools import repeat

import numpy as np

from .. import init as initializers
from ..activations import tanh_from_scaled
from . import reference
from .base import RecurrentCell
from ..layer import check_input


class LSTMCell(RecurrentCell):
    """Long short-term memory (Hochreiter & Schmidhuber 1997, with forget gate of Gers et al. 2000).

    Equations (time-major, one step; s = logistic sigmoid, * elementwise)::

        forward:   a_t = x_t W_x + h_{t-1} W_h + b                      (B, 4H) = [a_i | a_f | a_g | a_o]
                   i_t = s(a_i)   f_t = s(a_f)   g_t = tanh(a_g)   o_t = s(a_o)
                   c_t = f_t * c_{t-1} + i_t * g_t
                   h_t = o_t * tanh(c_t)                                 out_t = h_t

        backward:  (dh, dc: what step t+1 sent back; (dh_T, dc_T) = dstate, zeros if None)
                   gh_t = dout_t + dh                                    total dL/dh_t
                   dc_t = dc + gh_t * o_t * (1 - tanh^2(c_t))            total dL/dc_t
                   da_i = dc_t * g_t       * i_t (1 - i_t)
                   da_f = dc_t * c_{t-1}   * f_t (1 - f_t)
                   da_g = dc_t * i_t       * (1 - g_t^2)
                   da_o = gh_t * tanh(c_t) * o_t (1 - o_t)
                   dh_{t-1} = da_t W_h^T        dc_{t-1} = dc_t * f_t     sent to step t-1
                   dx_t = da_t W_x^T
                   dW_x += sum_t x_t^T da_t    dW_h += sum_t h_{t-1}^T da_t    db += sum_t da_t

    With a mask m_t (B, 1) in {0, 1}: (h_t, c_t) = m_t * (h~_t, c~_t) + (1 - m_t) * (h_{t-1}, c_{t-1})
    and out_t = m_t * h~_t, where (h~_t, c~_t) are the step's new values above. Backward:
    gh_t = m_t * dout_t + dh, dc_t = dc + m_t * gh_t * o_t (1 - tanh^2 c_t), da_t = m_t * (...),
    dh_{t-1} = da_t W_h^T + (1 - m_t) dh, dc_{t-1} = dc_t * (m_t f_t + 1 - m_t): a padded row's
    gate gradients are 0, its dout_t is ignored and (dh, dc) pass through unchanged.

    Diagnostics: with ``track_state_grads = True`` each bprop stores ``state_grad_norms``
    {"h": (B, T), "c": (B, T)}, the norms over units of gh_t and dc_t above.

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
    chrono_t_max : float or None
        Chrono initialisation (Tallec & Ollivier 2018): b_f ~ log U[1, T_max - 1], b_i = -b_f,
        for dependencies up to T_max steps long.
    dtype, rng : see :class:`npnet.layer.Layer`

    Params: ``W_x`` (D, 4H), ``W_h`` (H, 4H), ``b`` (4H,); gate blocks i, f, g, o side by side.
    PyTorch: ``weight_ih = W_x.T``, ``weight_hh = W_h.T``, ``bias_ih + bias_hh = b``.

    State: the tuple ``(h, c)``, each (B, H).

    Cache (what bprop needs, nothing more): the inputs X (T, B, D) for dW_x; the gate
    activations G (T, B, 4H), from which every gate derivative is computed (s' = s (1 - s),
    tanh' = 1 - tanh^2, so pre-activations are never kept); the states H (T+1, B, H) for dW_h
    and C (T+1, B, H) for da_f; tanh(c_t) (T, B, H), kept rather than recomputed because
    backward needs it twice (da_o and the dc path) and a tanh is the dearest op per element.
    bprop spends the cache: it writes the gate gradients over G.
    """

    state_names = ("h", "c")

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 1.0,
                 weight_init="glorot_uniform", recurrent_init="orthogonal",
                 chrono_t_max: float | None = None, dtype=np.float64, rng=None):
        super().__init__(input_size, hidden_size, dtype, rng)
        D, H = self.input_size, self.hidden_size
        self.forget_bias = float(forget_bias)
        self.chrono_t_max = None if chrono_t_max is None else float(chrono_t_max)
        self._init_names = {"weight_init": weight_init, "recurrent_init": recurrent_init}
        self.add_param("W_x", initializers.get(weight_init)((D, 4 * H), self.rng, self.dtype))
        self.add_param("W_h", initializers.get(recurrent_init)((H, 4 * H), self.rng, self.dtype))
        b = np.zeros(4 * H, self.dtype)                          # (4H,) b_g = b_o = 0
        if self.chrono_t_max is None:
            b[H:2 * H] = self.forget_bias
        else:
            b[0:H], b[H:2 * H] = initializers.chrono_forget_bias(self.chrono_t_max, self.rng, H, self.dtype)
        self.add_param("b", b)
        self._gate_constants()

    def _gate_constants(self) -> None:
        """Constants of the gate nonlinearities: all four blocks in ONE exp call per step.

        With per-column constants k and n over the blocks (i, f, g, o), the pre-activations
        are computed already scaled, a' = k * a (with k-scaled weights; exact, |k| is a power
        of 2), and::

            gates = n / (1 + exp(a')) - [0, 0, 1, 0],   k = (-1, -1, -2, -1),   n = (1, 1, 2, 1)

        since sigmoid(a) = 1 / (1 + exp(-a)) and tanh(a) = 2 sigmoid(2 a) - 1; tanh(c) the
        same way. exp(a') may overflow to inf for a' > 709 (float64) or 88 (float32): then
        the gate is n / inf = 0 (or -1 for g), its exact limit, so the loops run under
        ``np.errstate(over="ignore")`` and no warning is raised for any finite input.

        Why not ``scipy.special.expit`` or ``np.tanh``: NumPy's exp is vectorised (AVX2 in
        float32), expit and tanh are not. One (64, 1024) gate block (config B) costs, measured
        with NumPy 2.4 on the benchmark machine, in float64: exp + 3 cheap passes 0.39 ms,
        expit 0.48 ms, tanh 0.88 ms; in float32: 0.11, 0.27 and 0.17 ms.
        """
        H = self.hidden_size
        k = np.full(4 * H, -1.0, self.dtype)
        k[2 * H:3 * H] = -2.0
        self._k = k                                              # (4H,) pre-activation scale
        self._n = -k                                             # (4H,) numerators (1, 1, 2, 1)

    def get_config(self) -> dict:
        """Constructor arguments to rebuild the cell (initialiser callables are not recorded)."""
        cfg = {"input_size": self.input_size, "hidden_size": self.hidden_size,
               "forget_bias": self.forget_bias, "chrono_t_max": self.chrono_t_max}
        for k, v in self._init_names.items():
            if isinstance(v, str):
                cfg[k] = v
        cfg["dtype"] = self.dtype.name
        return cfg

    # ------------------------------------------------------------------
    def _scaled_weights(self):
        """(W_x * k, W_h * k, b * k): the weights producing a' = k * a (exact: |k| is 1 or 2)."""
        k = self._k
        return self.params["W_x"] * k, self.params["W_h"] * k, self.params["b"] * k

    def _gates(self, a: np.ndarray) -> np.ndarray:
        """In place: a' = k * a (B, 4H) -> [i | f | g | o] (see :meth:`_gate_constants`).

        Call under ``np.errstate(over="ignore")``."""
        np.exp(a, out=a)
        a += 1.0
        np.divide(self._n, a, out=a)
        a[:, 2 * self.hidden_size:3 * self.hidden_size] -= 1.0
        return a

    def _tanh(self, c: np.ndarray, out: np.ndarray) -> np.ndarray:
        """out = tanh(c): ``np.tanh`` in float32 (vectorised) and on small blocks (one call beats
        five), else 2 / (1 + exp(-2 c)) - 1 (NumPy's float64 tanh is scalar code, about 2.7x
        the cost). Call under ``np.errstate(over="ignore")``."""
        if self.dtype == np.float32 or c.size < self._EXP_TANH_MIN:
            return np.tanh(c, out=out)
        np.multiply(c, -2.0, out=out)
        return tanh_from_scaled(out)

    # float64 tanh(c) through exp (5 NumPy calls instead of 1) pays from about this many
    # elements per step (B * H); below it the per-call overhead dominates (config D).
    _EXP_TANH_MIN = 4096

    def fprop(self, x, state=None, mask=None):
        """Run the cell over a sequence.

        Parameters
        ----------
        x : ndarray of shape (B, T, D)
        state : tuple (h0, c0) of arrays of shape (B, H), or None for zeros
        mask : bool ndarray of shape (B, T), or None (all steps real)

        Returns
        -------
        out : ndarray of shape (B, T, H)
            h_t at real steps, 0 at padded ones.
        state : tuple (h_T, c_T), each of shape (B, H)
        """
        x = self._check_x(x)
        B, T, D = x.shape
        H = self.hidden_size
        h0, c0 = self.unpack_state(state, B)
        m = self._check_mask(mask, B, T)                          # (T, B, 1) bool or None
        Wx_s, Wh_s, b_s = self._scaled_weights()

        X = x.transpose(1, 0, 2).copy()                           # (T, B, D) own copy: x may change later
        G = (X.reshape(T * B, D) @ Wx_s).reshape(T, B, 4 * H)     # (T, B, 4H) k * (x W_x), all steps in one GEMM
        G += b_s
        Hs = np.empty((T + 1, B, H), self.dtype)                  # (T+1, B, H) h states, Hs[0] = h0
        C = np.empty((T + 1, B, H), self.dtype)                   # (T+1, B, H) c states, C[0] = c0
        TC = np.empty((T, B, H), self.dtype)                      # (T, B, H) tanh(c~_t)
        Hs[0] = h0
        C[0] = c0
        hW = np.empty((B, 4 * H), self.dtype)                     # (B, 4H) h_{t-1} (k W_h)
        ig = np.empty((B, H), self.dtype)                         # (B, H) i * g
        G4 = G.reshape(T, B, 4, H)
        steps = zip(G, G4[:, :, 0], G4[:, :, 1], G4[:, :, 2], G4[:, :, 3],   # per-step views, made by
                    Hs[:-1], Hs[1:], C[:-1], C[1:], TC)                      # iteration (cheaper than indexing)
        nk = self._n
        np_tanh = self.dtype == np.float32 or B * H < self._EXP_TANH_MIN   # as in _tanh
        with np.errstate(over="ignore"):                          # exp may overflow to inf: see _gate_constants
            if m is None:
                for a, i, f, g, o, h_prev, h, c_prev, c, tc in steps:
                    np.dot(h_prev, Wh_s, out=hW)                  # the one recurrent GEMM
                    a += hW                                       # a' = k * a_t   (B, 4H)
                    np.exp(a, out=a)                              # gates = n / (1 + exp(a')) - [0,0,1,0]
                    a += 1.0
                    np.divide(nk, a, out=a)
                    g -= 1.0                                      # [i | f | g | o]
                    np.multiply(f, c_prev, out=c)                 # c = f * c_{t-1} + i * g
                    np.multiply(i, g, out=ig)
                    c += ig
                    if np_tanh:                                   # tanh(c): NumPy's float32 tanh is
                        np.tanh(c, out=tc)                        # vectorised, its float64 one is not
                    else:                                         # tanh(c) = 2 / (1 + exp(-2c)) - 1
                        np.multiply(c, -2.0, out=tc)
                        tanh_from_scaled(tc)
                    np.multiply(o, tc, out=h)                     # h = o * tanh(c)
            else:
                keep = ~m                                         # (T, B, 1) padded rows keep their state
                mf = m.astype(self.dtype)                         # (T, B, 1) 1.0 real / 0.0 padded
                O = np.empty((T, B, H), self.dtype)               # (T, B, H) outputs (0 on padded steps)
                for (a, i, f, g, o, h_prev, h, c_prev, c, tc), m_t, k_t, out_t in zip(steps, mf, keep, O):
                    np.dot(h_prev, Wh_s, out=hW)
                    a += hW
                    self._gates(a)
                    np.multiply(f, c_prev, out=c)                 # c~
                    np.multiply(i, g, out=ig)
                    c += ig
                    self._tanh(c, out=tc)
                    np.multiply(o, tc, out=h)                     # h~
                    np.multiply(h, m_t, out=out_t)                # out = m * h~
                    np.copyto(h, h_prev, where=k_t)               # padded rows carry (h, c)
                    np.copyto(c, c_prev, where=k_t)
        if m is None:
            O = Hs[1:]
        self._cache = {"X": X, "G": G, "H": Hs, "C": C, "TC": TC, "m": m}
        out = np.ascontiguousarray(O.transpose(1, 0, 2))          # (B, T, H)
        return out, (Hs[T].copy(), C[T].copy())

    def _check_dstate(self, dstate, batch: int):
        """dstate: None, or a tuple (dh_T, dc_T) whose entries may be None (zeros)."""
        if isinstance(dstate, (tuple, list)) and len(dstate) == 2:
            dstate = tuple(np.zeros((batch, self.hidden_size), self.dtype) if d is None else d
                           for d in dstate)
        return self.unpack_state(dstate, batch, "dstate")

    def _backward_factors(self, G4, C, TC, E, S4, f_raw):
        """Everything in the backward step that does not depend on the running (dh, dc).

        Computed for a block of K steps at once, so the sequential loop in ``bprop``
        needs only ~7 NumPy calls per step::

            E = o * (1 - tanh^2(c))                         dc_t = dc^{(t+1)} + dh_t * E_t
            F = [g i(1-i) | c_{t-1} f(1-f) | i (1-g^2) | tanh(c) o(1-o)]
                                                            da_t = F_t * [dc_t | dc_t | dc_t | dh_t]

        In: G4 (K, B, 4, H) gates [i, f, g, o], C (K+1, B, H) cells c_{t-1}..c_t, TC (K, B, H)
        tanh(c~). Out, in place: E (K, B, H); F over the gates in G4 (bprop spends the cache:
        G's memory becomes da, so backward allocates no (T, B, 4H) array of its own); f_raw
        (K, B, H) the forget gates themselves, which the dc chain still needs. S4 (K, B, 4, H)
        is scratch.
        """
        i, f, g, o = G4[:, :, 0], G4[:, :, 1], G4[:, :, 2], G4[:, :, 3]
        np.copyto(f_raw, f)
        np.multiply(TC, TC, out=E)
        np.subtract(1.0, E, out=E)
        E *= o
        np.subtract(1.0, G4, out=S4)                              # 1 - gate, then F
        S4 *= G4                                                  # s' = s (1 - s) on i, f, o
        S4[:, :, 0] *= g
        S4[:, :, 1] *= C[:-1]
        np.multiply(g, g, out=S4[:, :, 2])
        np.subtract(1.0, S4[:, :, 2], out=S4[:, :, 2])
        S4[:, :, 2] *= i
        S4[:, :, 3] *= TC
        np.copyto(G4, S4)
        return E, G4

    # Steps per block of the backward pass: the block's factor arrays (about 6H numbers
    # per row and step) should stay in a 256 KiB L2 cache while the loop uses them.
    _BLOCK_BYTES = 1 << 18

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
        cache = self._cache
        if cache is None:
            self._take_cache()                                    # raises NotForwardedError
        X, G, Hs, C, TC, m = cache["X"], cache["G"], cache["H"], cache["C"], cache["TC"], cache["m"]
        T, B, D = X.shape
        H = self.hidden_size
        dout = self._check_dout(dout, B, T)                       # checked before the cache is spent
        dh, dc = self._check_dstate(dstate, B)
        self._take_cache()
        dh = dh.copy()                                            # (B, H) running dL/dh_t from step t+1
        dc = dc.copy()                                            # (B, H) running dL/dc_t from step t+1

        K = int(min(T, max(1, self._BLOCK_BYTES // (10 * B * H * self.dtype.itemsize))))
        dA = G                                                    # (T, B, 4H) da_t in G's memory (the cache
        dA4 = dA.reshape(T, B, 4, H)                              #   is spent); F first, see _backward_factors
        E = np.empty((K, B, H), self.dtype)                       # (K, B, H) block factor, see _backward_factors
        S4 = np.empty((K, B, 4, H), self.dtype)                   # (K, B, 4, H) scratch for the factors
        fR = np.empty((K, B, H), self.dtype)                      # (K, B, H) forget gates of the block
        dO = dout.transpose(1, 0, 2)                              # (T, B, H) view, read only
        if m is not None:
            mf = m.astype(self.dtype)                             # (T, B, 1) 1.0 real / 0.0 padded
            keepf = 1.0 - mf
            dOK = np.empty((K, B, H), self.dtype)                 # (K, B, H) dout, := 0 on padded rows
            carry = np.empty((B, H), self.dtype)                  # (B, H) (1 - m) dh
        WhT = np.ascontiguousarray(self.params["W_h"].T)          # (4H, H) contiguous: BLAS is faster on it
        gh = np.empty((B, H), self.dtype)                         # (B, H) total dL/dh_t
        dct = np.empty((B, H), self.dtype)                        # (B, H) total dL/dc_t
        dct3 = dct[:, None, :]                                    # (B, 1, H) view, scales the i, f, g blocks
        track = self._start_tracking(B, T)
        rev = slice(None, None, -1)
        for t1 in range(T, 0, -K):                                # blocks [t0, t1), last block first
            t0 = max(0, t1 - K)
            n = t1 - t0
            Ek, Fk = self._backward_factors(dA4[t0:t1], C[t0:t1 + 1], TC[t0:t1], E[:n], S4[:n], fR[:n])
            fk = fR[:n]
            if m is None:
                dOk, kk = dO[t0:t1], repeat(None, n)
            else:                                                 # padded rows: no gate gradient, dc
                Ek *= mf[t0:t1]                                   # passes unchanged (f := 1), dout ignored
                Fk *= mf[t0:t1, :, :, None]
                fk *= mf[t0:t1]
                fk += keepf[t0:t1]
                dOk = np.multiply(dO[t0:t1], mf[t0:t1], out=dOK[:n])
                kk = keepf[t0:t1][rev]
            steps = zip(range(t1 - 1, t0 - 1, -1), dOk[rev], Ek[rev], Fk[rev, :, :3], Fk[rev, :, 3],
                        fk[rev], dA[t0:t1][rev], kk)              # per-step views, made by iteration
            for t, dout_t, E_t, F3_t, Fo_t, f_t, da_t, keep_t in steps:
                np.add(dout_t, dh, out=gh)
                np.multiply(gh, E_t, out=dct)
                dct += dc
                if track:
                    self._record_norms("h", t, gh)
                    self._record_norms("c", t, dct)
                F3_t *= dct3                                      # da_i, da_f, da_g (in dA)
                Fo_t *= gh                                        # da_o (in dA)
                np.multiply(dct, f_t, out=dc)
                if keep_t is not None:
                    np.multiply(dh, keep_t, out=carry)
                np.dot(da_t, WhT, out=dh)                         # the one recurrent GEMM
                if keep_t is not None:
                    dh += carry

        dA2 = dA.reshape(T * B, 4 * H)                            # (T*B, 4H)
        self.grads["W_x"] += X.reshape(T * B, D).T @ dA2          # weight gradients: one GEMM each
        self.grads["W_h"] += Hs[:-1].reshape(T * B, H).T @ dA2
        self.grads["b"] += dA2.sum(axis=0)
        dX = (dA2 @ self.params["W_x"].T).reshape(T, B, D)        # (T, B, D)
        return np.ascontiguousarray(dX.transpose(1, 0, 2)), (dh, dc)

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

        The math is :func:`npnet.cells.reference.lstm_step_forward`, called as it is.
        """
        x_t = check_input(x_t, "x_t", 2, self.input_size, self.dtype)
        h_prev, c_prev = self.unpack_state(state, x_t.shape[0])
        h, c, _ = reference.lstm_step_forward(x_t, h_prev, c_prev, self.params)
        return h, (h, c)
