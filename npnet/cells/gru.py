"""GRUCell: the gated recurrent unit in the form PyTorch and cuDNN use, with its BPTT.

The forward pass is one input GEMM for the whole sequence plus one recurrent
GEMM per step; the backward pass is one GEMM per step plus one GEMM per weight
(column) block after the loop.
The plain step-by-step version it is tested against lives in tests/reference_gru.py.
"""
from __future__ import annotations

from itertools import repeat

import numpy as np

from .. import init as initializers
from ..activations import sigmoid, sigmoid_from_negated, tanh_from_scaled
from . import reference
from .base import RecurrentCell
from ..layer import check_input


class GRUCell(RecurrentCell):
    """Gated recurrent unit (Cho et al. 2014) in the PyTorch / cuDNN formulation.

    Gate order r (reset), z (update), n (candidate); the reset gate multiplies
    the *projected* previous state ``h W_hn + b_hn``, and ``z`` is the weight of
    the old state.

    Equations (time-major, one step; s = sigmoid, * elementwise)::

        forward:   a_r = x_t W_xr + h_{t-1} W_hr + b_r                 (B, H)
                   a_z = x_t W_xz + h_{t-1} W_hz + b_z
                   q_t = h_{t-1} W_hn + b_hn                           pre-reset recurrent part
                   a_n = x_t W_xn + b_n + r_t * q_t
                   r_t = s(a_r),  z_t = s(a_z),  n_t = tanh(a_n)
                   h_t = (1 - z_t) * n_t + z_t * h_{t-1}
        backward:  g_t  = dout_t + dh_t                                total dL/dh_t
                   da_n = g_t * (1 - z_t) * (1 - n_t^2)
                   da_z = g_t * (h_{t-1} - n_t) * z_t (1 - z_t)
                   da_r = da_n * q_t * r_t (1 - r_t)
                   dq_t = da_n * r_t
                   dG_x = [da_r, da_z, da_n]     gradient of x_t W_x + b          (B, 3H)
                   dG_h = [da_r, da_z, dq_t]     gradient of h_{t-1} W_h (+ b_hn)  (B, 3H)
                   dh_{t-1} = g_t * z_t + dG_h W_h^T
                   dW_x += sum_t x_t^T dG_x,   db += sum_t dG_x
                   dW_h += sum_t h_{t-1}^T dG_h,   db_hn += sum_t dq_t
                   dx_t = dG_x W_x^T

    With a mask m_t (B, 1): h_t = m_t * h~_t + (1 - m_t) * h_{t-1} and
    out_t = m_t * h~_t, where h~_t is the update above. Backward: the output
    gradient is masked (g_t = m_t dout_t + dh_t), the gate gradients of padded
    rows are zero, and padded rows pass g_t straight to dh_{t-1} (as if z_t = 1).

    Difference from the original GRU of Cho et al. (2014): there the reset gate
    acts on the state *before* the matrix, n_t = tanh(x_t W_xn + (r_t * h_{t-1}) W_hn + b),
    and the update is written h_t = z_t * h_{t-1} + (1 - z_t) * n_t with z the
    weight of the old state (Cho et al.), which some texts (e.g. Chung et al. 2014)
    swap to h_t = (1 - z_t) * h_{t-1} + z_t * n_t. npnet follows PyTorch/cuDNN
    (and Keras with ``reset_after=True``): the reset applies after the matrix
    product, which lets all three recurrent blocks share one GEMM per step, and
    z weights the old state. The two reset placements give different functions,
    so weights do not transfer between them.

    Parameters
    ----------
    input_size : int (D)
    hidden_size : int (H)
    weight_init, recurrent_init, bias_init : initialiser or name
        Defaults: glorot_uniform for W_x, orthogonal per gate block for W_h, zeros
        for b and b_hn.
    update_bias : float, default 0.0
        Added to the update-gate bias b_z after ``bias_init``. z weights the old state,
        so a positive value (like the LSTM's forget bias) starts the cell remembering:
        the gradient along the carry path is scaled by z per step, 0.5^T with zero bias.
        Measured on the first-element task (T=40, H=32, Adam 1e-2, 1,500 steps):
        update_bias 0 or 1 -> 10% (chance), 2 -> 100%.
    dtype, rng : see :class:`npnet.layer.Layer`

    Params: ``W_x`` (D, 3H), ``W_h`` (H, 3H), ``b`` (3H,) and ``b_hn`` (H,).
    PyTorch mapping: W_x = weight_ih.T, W_h = weight_hh.T,
    b = bias_ih + [bias_hh_r, bias_hh_z, 0], b_hn = bias_hh_n.

    Cache: X (T, B, D) for dW_x; the states S (T+1, B, H) for dW_h and the
    (h_{t-1} - n_t) factor; the gates G = [r, z, n] (T, B, 3H) for every
    derivative; q (T, B, H) for da_r. Pre-activations are never stored (the
    sigmoid and tanh derivatives come from their outputs). bprop spends the
    cache: it writes dG_h over G.
    """

    state_names = ("h",)

    def __init__(self, input_size: int, hidden_size: int,
                 weight_init="glorot_uniform", recurrent_init="orthogonal", bias_init="zeros",
                 update_bias: float = 0.0, dtype=np.float64, rng=None):
        super().__init__(input_size, hidden_size, dtype, rng)
        D, H = self.input_size, self.hidden_size
        self.update_bias = float(update_bias)
        self.add_param("W_x", initializers.get(weight_init)((D, 3 * H), self.rng, self.dtype))
        self.add_param("W_h", initializers.get(recurrent_init)((H, 3 * H), self.rng, self.dtype))
        self.add_param("b", initializers.get(bias_init)((3 * H,), self.rng, self.dtype))
        self.add_param("b_hn", initializers.get(bias_init)((H,), self.rng, self.dtype))
        self.params["b"][H:2 * H] += self.update_bias                # (H,) the z block

    def get_config(self) -> dict:
        cfg = {"input_size": self.input_size, "hidden_size": self.hidden_size,
               "dtype": self.dtype.name}
        if self.update_bias:
            cfg["update_bias"] = self.update_bias
        return cfg

    # float64 tanh through exp (5 NumPy calls instead of 1) pays from about this many
    # elements per step (B * H); below it the per-call overhead dominates (config D).
    _EXP_TANH_MIN = 4096

    def _rz_sign(self) -> np.ndarray:
        """(3H,) -1 on the r and z columns, +1 on n: the forward pass computes -a_r, -a_z
        directly (sign-flipped weights, exact) so that s(a) = 1 / (1 + exp(-a)) needs one
        exp and no negation. NumPy's exp is vectorised; SciPy's expit is not (float32 on a
        (64, 512) block, measured: exp + 2 passes 0.07 ms, expit 0.18 ms)."""
        neg = np.ones(3 * self.hidden_size, self.dtype)
        neg[:2 * self.hidden_size] = -1.0
        return neg

    # ------------------------------------------------------------------
    def fprop(self, x, state=None, mask=None):
        """Run the cell over a sequence.

        Parameters
        ----------
        x : ndarray of shape (B, T, D)
        state : ndarray of shape (B, H) or None (zeros)
        mask : bool ndarray of shape (B, T) or None (all steps real)

        Returns
        -------
        out : ndarray of shape (B, T, H)
            h_t on real steps, 0 on padded steps.
        h : ndarray of shape (B, H)
            The state after the last step (carried through padded steps).
        """
        x = self._check_x(x)
        B, T, D = x.shape
        H = self.hidden_size
        (h0,) = self.unpack_state(state, B)
        m = self._check_mask(mask, B, T)                        # (T, B, 1) bool or None
        Wx, Wh, b, b_hn = self.params["W_x"], self.params["W_h"], self.params["b"], self.params["b_hn"]

        neg = self._rz_sign()                                   # (3H,) -1 on the r, z columns, 1 on n
        X = x.transpose(1, 0, 2).copy()                         # (T, B, D), our own copy (cached)
        G = (X.reshape(T * B, D) @ (Wx * neg)).reshape(T, B, 3 * H)   # (T, B, 3H) [-a_r, -a_z | x W_xn] ...
        G += b * neg                                            # ... + b; becomes [r, z, n] in place
        Wh_s = Wh * neg                                         # exact sign flips: -a_r, -a_z come out directly
        Q = np.empty((T, B, H), self.dtype)                     # (T, B, H) q_t = h_{t-1} W_hn + b_hn
        S = np.empty((T + 1, B, H), self.dtype)                 # (T+1, B, H) states, S[0] = h0
        S[0] = h0
        gh = np.empty((B, 3 * H), self.dtype)                   # (B, 3H) h_{t-1} W_h, scratch
        gh_rz, gh_n = gh[:, :2 * H], gh[:, 2 * H:]
        pad = None if m is None else ~m                         # (T, B, 1) True on padded steps
        exp_tanh = self.dtype != np.float32 and B * H >= self._EXP_TANH_MIN   # see the loop
        steps = zip(G[:, :, :2 * H], G[:, :, :H], G[:, :, H:2 * H], G[:, :, 2 * H:],   # per-step views,
                    Q, S[:-1], S[1:], repeat(None) if pad is None else pad)          # made by iteration
        with np.errstate(over="ignore"):                        # exp(-a) may be inf: s(a) = 1 / inf = 0, exact
            for rz, r, z, n, q, h_prev, h, pad_t in steps:
                np.dot(h_prev, Wh_s, out=gh)                    # the one recurrent GEMM
                np.add(gh_n, b_hn, out=q)                       # q_t, kept for da_r
                rz += gh_rz                                     # -a_r, -a_z
                sigmoid_from_negated(rz)                        # r_t, z_t
                np.multiply(r, q, out=gh_n)                     # r_t * q_t (gh_n is free now)
                n += gh_n                                       # a_n
                if exp_tanh:                                    # n_t = tanh(a_n), through exp on big
                    n *= -2.0                                   # float64 blocks
                    tanh_from_scaled(n)
                else:
                    np.tanh(n, out=n)
                np.subtract(h_prev, n, out=h)                   # h_t = n + z (h_{t-1} - n)
                h *= z
                h += n
                if pad_t is not None:
                    np.copyto(h, h_prev, where=pad_t)           # padded rows keep h_{t-1} exactly
        # Cache for bprop: X for dW_x; S for dW_h and (h_{t-1} - n_t); G = [r, z, n] for every
        # derivative (sigmoid' and tanh' from the outputs); Q for da_r; m for the padded rows.
        self._cache = {"X": X, "S": S, "G": G, "Q": Q, "m": m}
        O = S[1:] if m is None else S[1:] * m                   # (T, B, H) outputs
        out = O.transpose(1, 0, 2).copy()                       # (B, T, H), never a view of the cache
        return out, S[T].copy()

    def bprop(self, dout, dstate=None):
        """Backpropagate through the last :meth:`fprop`.

        Parameters
        ----------
        dout : ndarray of shape (B, T, H)
            dL/dout (ignored on padded steps, whose output is constant zero).
        dstate : ndarray of shape (B, H) or None
            dL/dh_T from beyond the sequence (zeros if None).

        Returns
        -------
        dx : ndarray of shape (B, T, D)
        dh0 : ndarray of shape (B, H)
        """
        cache = self._take_cache()
        X, S, G, Q, m = cache["X"], cache["S"], cache["G"], cache["Q"], cache["m"]
        T, B, D = X.shape
        H = self.hidden_size
        try:
            dout = self._check_dout(dout, B, T)
            (dh,) = self.unpack_state(dstate, B, "dstate")
        except Exception:
            self._cache = cache                                 # a bad call does not lose the forward pass
            raise
        dh = dh.copy()                                          # (B, H) running dL/dh_t; never the caller's array

        # dG_h[t] = F[t] * [g_t, g_t, g_t] with F = [A q r(1-r), (h_{t-1} - n) z(1-z), A r] and
        # A = (1 - z)(1 - n^2): F for a block of K steps at a time (sized to stay in cache) is
        # written over the block's gates in G (the cache is spent), so G's memory ends up
        # holding dG_h and backward allocates no (T, B, 3H) array. da_n = A g_t goes to DXn.
        K = int(min(T, max(1, self._BLOCK_BYTES // (4 * B * H * self.dtype.itemsize))))
        Ak = np.empty((K, B, H), self.dtype)                    # (K, B, H) A of the block
        Zk = np.empty((K, B, H), self.dtype)                    # (K, B, H) z of the block (G's copy is overwritten)
        Wk = np.empty((K, B, H), self.dtype)                    # (K, B, H) scratch
        DXn = np.empty((T, B, H), self.dtype)                   # (T, B, H) da_n = A g_t, the n block of dG_x
        dO = dout.transpose(1, 0, 2)                            # (T, B, H) view, read only
        if m is not None:
            mf = m.astype(self.dtype)                           # (T, B, 1) 1.0 real / 0.0 padded
            dOK = np.empty((K, B, H), self.dtype)               # (K, B, H) dout, := 0 on padded rows
        g = np.empty((B, H), self.dtype)                        # (B, H) g_t = dout_t + dh_t
        g3 = g[:, None, :]                                      # (B, 1, H) view, scales all three blocks
        tmp = np.empty((B, H), self.dtype)                      # (B, H) scratch
        WhT = np.ascontiguousarray(self.params["W_h"].T)        # (3H, H) contiguous: BLAS is faster on it
        track = self._start_tracking(B, T)
        for t1 in range(T, 0, -K):                              # blocks [t0, t1), last block first
            t0 = max(0, t1 - K)
            k = t1 - t0
            Gk = G[t0:t1]                                       # (k, B, 3H) gates [r, z, n] -> F
            r, z, n = Gk[..., :H], Gk[..., H:2 * H], Gk[..., 2 * H:]
            A, Z, W = Ak[:k], Zk[:k], Wk[:k]
            np.copyto(Z, z)
            np.subtract(1.0, z, out=W)                          # 1 - z
            np.multiply(n, n, out=A)
            np.subtract(1.0, A, out=A)
            A *= W                                              # A = (1 - z)(1 - n^2)
            z *= W                                              # F_z = (h_{t-1} - n) z (1 - z)
            np.subtract(S[t0:t1], n, out=W)
            z *= W
            np.multiply(A, r, out=n)                            # F_n = A r
            np.subtract(1.0, r, out=W)                          # F_r = A q r (1 - r)
            r *= W
            r *= A
            r *= Q[t0:t1]
            dOk = dO[t0:t1]
            if m is not None:                                   # padded rows: no gate gradients, dout
                mk = mf[t0:t1]                                  # ignored, dh_{t-1} = g_t (as if z = 1)
                Gk *= mk
                A *= mk
                np.copyto(Z, 1.0, where=mk == 0.0)
                dOk = np.multiply(dOk, mk, out=dOK[:k])
            for j in range(k - 1, -1, -1):
                t = t0 + j
                np.add(dOk[j], dh, out=g)                       # g_t = dout_t + dh_t
                if track:
                    self._record_norms("h", t, g)
                dg = G[t]                                       # (B, 3H) F_t -> dG_h[t]
                np.multiply(dg.reshape(B, 3, H), g3, out=dg.reshape(B, 3, H))
                np.multiply(A[j], g, out=DXn[t])                # da_n
                np.dot(dg, WhT, out=dh)                         # the one GEMM per step
                np.multiply(g, Z[j], out=tmp)
                dh += tmp                                       # dh_{t-1} = dG_h W_h^T + g z

        # Weight and input gradients, one GEMM per block of columns: dG_x = [dG_h r,z | DXn].
        dGh = G.reshape(T * B, 3 * H)                           # (T*B, 3H) dG_h
        dGrz = dGh[:, :2 * H]                                   # (T*B, 2H) strided view, no copy
        dXn = DXn.reshape(T * B, H)                             # (T*B, H)
        X2, Wx = X.reshape(T * B, D), self.params["W_x"]
        self.grads["W_x"][:, :2 * H] += X2.T @ dGrz
        self.grads["W_x"][:, 2 * H:] += X2.T @ dXn
        self.grads["W_h"] += S[:-1].reshape(T * B, H).T @ dGh
        self.grads["b"][:2 * H] += dGrz.sum(axis=0)
        self.grads["b"][2 * H:] += dXn.sum(axis=0)
        self.grads["b_hn"] += dGh[:, 2 * H:].sum(axis=0)
        dX = dGrz @ Wx[:, :2 * H].T                             # (T*B, D)
        dX += dXn @ Wx[:, 2 * H:].T
        return np.ascontiguousarray(dX.reshape(T, B, D).transpose(1, 0, 2)), dh

    # Steps per block of the backward pass: a block's arrays should stay in a 256 KiB L2 cache.
    _BLOCK_BYTES = 1 << 18

    def step(self, x_t, state=None):
        """One step without caching (closed-loop generation).

        Parameters
        ----------
        x_t : ndarray of shape (B, D)
        state : ndarray of shape (B, H) or None

        Returns
        -------
        h : ndarray of shape (B, H)
            The output, which is also the new state (returned twice, as ``(h, h)``).

        The math is :func:`npnet.cells.reference.gru_step_forward`, called as it is.
        """
        x_t = check_input(x_t, "x_t", 2, self.input_size, self.dtype)
        (h_prev,) = self.unpack_state(state, x_t.shape[0])
        h, _ = reference.gru_step_forward(x_t, h_prev, self.params)
        return h, h
