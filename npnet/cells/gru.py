"""GRUCell: the gated recurrent unit, in the form PyTorch and cuDNN use (reset after the recurrent
product, the default) or in Cho et al.'s (reset before it, reset_after=False), with its BPTT.

Written for speed: one input GEMM for the whole sequence plus one recurrent GEMM per step; the
backward pass is one GEMM per step (its step-independent factors computed a block of steps at a
time) plus one GEMM per weight (column) block after the loop. npnet/cells/_kernels.py has each
trick, with why. The plain step-by-step math is gru_step_forward / gru_step_backward in
npnet/cells/reference.py (step() calls it); tests/cells/test_contract.py proves the two equal.
"""
from __future__ import annotations

from dataclasses import dataclass
from itertools import repeat

import numpy as np

from .. import init as initializers
from . import _kernels, reference
from .base import RecurrentCell, recurrent_products
from ..layer import NpnetError, check_input


@dataclass
class GRUCache:
    """What bprop needs from fprop."""
    x: np.ndarray                 # (T, B, D) inputs, time-major, our own copy: for dW_x
    h: np.ndarray                 # (T+1, B, H) states h_0 .. h_T: for dW_h and (h_{t-1} - n_t)
    gates: np.ndarray             # (T, B, 3H) [r|z|n] for every derivative; bprop overwrites with dG_h
    q: np.ndarray                 # (T, B, H) q_t = h_{t-1} W_hn + b_hn: for da_r
    mask: np.ndarray | None       # (T, B, 1) bool, True on real steps; None: all real
    drop: np.ndarray | None = None  # (B, H) recurrent dropout multiplier u of h_{t-1}; None: no dropout


@dataclass
class GRUResetBeforeCache:
    """What bprop needs from fprop in the reset_after=False form."""
    x: np.ndarray                 # (T, B, D) inputs, time-major, our own copy: for dW_x
    h: np.ndarray                 # (T+1, B, H) states h_0 .. h_T: for dW_hr, dW_hz, da_r, (h_{t-1} - n_t)
    gates: np.ndarray             # (T, B, 3H) [r|z|n]; bprop overwrites with dG = [da_r|da_z|da_n]
    rh: np.ndarray                # (T, B, H) r_t * h_{t-1}, the input of W_hn: for dW_hn
    mask: np.ndarray | None       # (T, B, 1) bool, True on real steps; None: all real
    drop: np.ndarray | None = None  # (B, H) recurrent dropout multiplier u of h_{t-1}; None: no dropout


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
        backward:  dh_total = dout_t + dh_t                            total dL/dh_t
                   da_n = dh_total * (1 - z_t) * (1 - n_t^2)
                   da_z = dh_total * (h_{t-1} - n_t) * z_t (1 - z_t)
                   da_r = da_n * q_t * r_t (1 - r_t)
                   dq_t = da_n * r_t
                   dG_x = [da_r, da_z, da_n]     gradient of x_t W_x + b          (B, 3H)
                   dG_h = [da_r, da_z, dq_t]     gradient of h_{t-1} W_h (+ b_hn)  (B, 3H)
                   dh_{t-1} = dh_total * z_t + dG_h W_h^T
                   dW_x += sum_t x_t^T dG_x,   db += sum_t dG_x
                   dW_h += sum_t h_{t-1}^T dG_h,   db_hn += sum_t dq_t
                   dx_t = dG_x W_x^T

    With a mask m_t (B, 1): h_t = m_t * h~_t + (1 - m_t) * h_{t-1} and
    out_t = m_t * h~_t, where h~_t is the update above. Backward: the output
    gradient is masked (dh_total = m_t dout_t + dh_t), the gate gradients of padded
    rows are zero, and padded rows pass dh_total straight to dh_{t-1} (as if z_t = 1).

    The other form, ``reset_after=False`` (Cho et al. 2014; Keras ``reset_after=False``;
    TensorFlow 1's GRUCell): the reset gate acts on the state *before* the matrix, with one
    bias per gate (no b_hn)::

        forward:   a_r, a_z as above
                   a_n = x_t W_xn + b_n + (r_t * h_{t-1}) W_hn
                   r_t = s(a_r),  z_t = s(a_z),  n_t = tanh(a_n)
                   h_t = (1 - z_t) * n_t + z_t * h_{t-1}
        backward:  da_n, da_z as above
                   drh_t = da_n W_hn^T                              dL/d(r_t * h_{t-1})
                   da_r = drh_t * h_{t-1} * r_t (1 - r_t)
                   dG = [da_r, da_z, da_n]                          (B, 3H)
                   dh_{t-1} = dh_total * z_t + [da_r, da_z] [W_hr, W_hz]^T + drh_t * r_t
                   dW_x += sum_t x_t^T dG,   db += sum_t dG
                   [dW_hr, dW_hz] += sum_t h_{t-1}^T [da_r, da_z],   dW_hn += sum_t (r_t h_{t-1})^T da_n
                   dx_t = dG W_x^T

    It costs two recurrent GEMMs per step each way (r_t must be known before W_hn). Masks
    work as above. The two reset placements give different functions, so weights do not
    transfer between them. Both write the update as h_t = z_t * h_{t-1} + (1 - z_t) * n_t
    (z the weight of the old state, as Cho et al., PyTorch and Keras; some texts, e.g.
    Chung et al. 2014, swap z and 1 - z). The default is PyTorch's and Keras 2+'s
    form: all three recurrent blocks share one GEMM per step.

    Parameters
    ----------
    input_size : int (D)
    hidden_size : int (H)
    weight_init, recurrent_init, bias_init : initialiser or name
        Defaults: glorot_uniform for W_x, orthogonal per gate block for W_h, zeros
        for b and b_hn.
    reset_after : bool, default True
        True: the reset gate multiplies ``h W_hn + b_hn`` (PyTorch, cuDNN, Keras's default).
        False: it multiplies h before W_hn (Cho et al. 2014, Keras ``reset_after=False``); the
        cell then has no ``b_hn``. PyTorch has no such GRU: npnet.interop's PyTorch functions
        refuse it; npnet.interop.keras_weights exchanges both forms with Keras.
    update_bias : float, default 0.0
        Added to the update-gate bias b_z after ``bias_init``. z weights the old state,
        so a positive value (like the LSTM's forget bias) starts the cell remembering:
        the gradient along the carry path is scaled by z per step, 0.5^T with zero bias.
        Measured on the first-element task (T=40, H=32, Adam 1e-2, 1,500 steps):
        update_bias 0 or 1 -> 10% (chance), 2 -> 100%.
    recurrent_dropout : float in [0, 1)
        Variational dropout (Keras ``recurrent_dropout``), training mode only: one mask u (B, H)
        per fprop, h_{t-1} * u wherever h_{t-1} meets W_h (all three blocks; with reset_after=False
        r_t * (h_{t-1} * u) before W_hn); the carry z_t h_{t-1} is not dropped. Backward:
        dW_h uses h_{t-1} * u and the W_h^T part of dh_{t-1} is multiplied by u.
    dtype, rng : see :class:`npnet.layer.Layer`

    Params: ``W_x`` (D, 3H), ``W_h`` (H, 3H), ``b`` (3H,) and ``b_hn`` (H,) (not with reset_after=False).
    PyTorch mapping: W_x = weight_ih.T, W_h = weight_hh.T,
    b = bias_ih + [bias_hh_r, bias_hh_z, 0], b_hn = bias_hh_n.

    Cache: :class:`GRUCache` (:class:`GRUResetBeforeCache` with reset_after=False); pre-activations are never stored (the sigmoid and tanh
    derivatives come from their outputs). bprop spends the cache: it writes dG_h over the gates.
    """

    state_names = ("h",)

    def __init__(self, input_size: int, hidden_size: int,
                 weight_init="glorot_uniform", recurrent_init="orthogonal", bias_init="zeros",
                 update_bias: float = 0.0, dtype=np.float64, rng=None, reset_after: bool = True,
                 recurrent_dropout: float = 0.0):
        super().__init__(input_size, hidden_size, dtype, rng, recurrent_dropout)
        if not isinstance(reset_after, (bool, np.bool_)):
            raise NpnetError(f"reset_after must be True or False, got {reset_after!r}")
        D, H = self.input_size, self.hidden_size
        self.update_bias = self._finite_hyperparameter(update_bias, "update_bias")
        self.reset_after = bool(reset_after)
        self.add_param("W_x", initializers.get(weight_init)((D, 3 * H), self.rng, self.dtype))
        self.add_param("W_h", initializers.get(recurrent_init)((H, 3 * H), self.rng, self.dtype))
        self.add_param("b", initializers.get(bias_init)((3 * H,), self.rng, self.dtype))
        if self.reset_after:                                    # the form decides the params: the
            self.add_param("b_hn", initializers.get(bias_init)((H,), self.rng, self.dtype))   # reference reads it
        self.params["b"][H:2 * H] += self.update_bias                # (H,) the z block
        # exp-form gates (see _kernels.gate_scales): (3H,) -1 on the r and z columns, 1 on n, so
        # the forward pass gets -a_r, -a_z directly and s(a) = 1 / (1 + exp(-a)) needs one exp
        self._gate_scale, _ = _kernels.gate_scales("ss-", H, self.dtype)

    def get_config(self) -> dict:
        cfg = {"input_size": self.input_size, "hidden_size": self.hidden_size,
               "dtype": self.dtype.name}
        if self.update_bias:
            cfg["update_bias"] = self.update_bias
        if not self.reset_after:                                # absent = True: older configs load as before
            cfg["reset_after"] = False
        return self._dropout_config(cfg)

    @staticmethod
    def require_pytorch_form(cell) -> None:
        """Raise NpnetError if ``cell`` is a GRUCell(reset_after=False); anything else passes.

        PyTorch's nn.GRU / nn.GRUCell have only the reset_after=True form (the reset gate after the
        recurrent product), so no PyTorch state dict can hold the other one. npnet.interop's PyTorch
        functions call this for every cell."""
        if isinstance(cell, GRUCell) and not cell.reset_after:
            raise NpnetError(f"PyTorch has no GRU with reset_after=False (the reset gate before the recurrent "
                             f"product): {type(cell).__name__}(reset_after=False) cannot be exchanged with nn.GRU; "
                             "use npnet.interop.keras_weights for Keras's GRU(reset_after=False), or a "
                             "GRUCell(reset_after=True)")

    # ------------------------------------------------------------------
    def fprop(self, x, state=None, mask=None, dropout_mask=None):
        """Run the cell over a sequence.

        Parameters
        ----------
        x : ndarray of shape (B, T, D)
        state : ndarray of shape (B, H) or None (zeros)
        mask : bool ndarray of shape (B, T) or None (all steps real)
        dropout_mask : ndarray of shape (B, H), or None
            The recurrent dropout multiplier u to use (see :class:`RecurrentCell`); None draws one
            when training with ``recurrent_dropout > 0``.

        Returns
        -------
        out : ndarray of shape (B, T, H)
            h_t on real steps, 0 on padded steps.
        h : ndarray of shape (B, H)
            The state after the last step (carried through padded steps).
        """
        x, (h0,), mask, drop = self._begin_fprop(x, state, mask, dropout_mask)   # mask (T, B, 1), drop (B, H)
        B, T, D = x.shape
        H = self.hidden_size
        scale = self._gate_scale                                # (3H,) exact sign flips
        take = self._workspace.take                             # the last bprop's spent arrays, or new
        x_steps = take("x", (T, B, D), self.dtype)              # (T, B, D), our own copy (cached)
        np.copyto(x_steps, x.transpose(1, 0, 2))
        gates = take("gates", (T, B, 3 * H), self.dtype)        # (T, B, 3H) [-a_r, -a_z | x W_xn + b_n] so far
        np.matmul(x_steps.reshape(T * B, D), self.params["W_x"] * scale, out=gates.reshape(T * B, 3 * H))
        gates += self.params["b"] * scale
        h = take("h", (T + 1, B, H), self.dtype)                # (T+1, B, H) states, h[0] = h_0
        h[0] = h0
        if self.reset_after:
            q = take("q", (T, B, H), self.dtype)                # (T, B, H) q_t = h_{t-1} W_hn + b_hn
            self._forward_loop(gates, q, h, self.params["W_h"] * scale, mask, drop)
            self._cache = GRUCache(x=x_steps, h=h, gates=gates, q=q, mask=mask, drop=drop)
        else:
            rh = take("q", (T, B, H), self.dtype)               # (T, B, H) r_t * h_{t-1}
            self._forward_loop_reset_before(gates, rh, h, mask, drop)
            self._cache = GRUResetBeforeCache(x=x_steps, h=h, gates=gates, rh=rh, mask=mask, drop=drop)
        out = h[1:] if mask is None else h[1:] * mask           # (T, B, H) outputs
        return out.transpose(1, 0, 2).copy(), h[T].copy()       # (B, T, H), never a view of the cache

    def _forward_loop(self, gates, q, h, W_h_s, mask, drop=None):
        """The sequential part of fprop, in place: gates (T, B, 3H) becomes [r | z | n]; q and
        h[1:] are filled. W_h_s is W_h with the r, z columns negated (exact)."""
        T, B, H = q.shape
        b_hn = self.params["b_hn"]
        tanh_into = _kernels.tanh_kernel(_kernels.exp_tanh_pays(self.dtype, B * H))   # n_t = tanh(a_n)
        h_W = np.empty((B, 3 * H), self.dtype)                  # (B, 3H) h_{t-1} W_h_s, scratch
        h_W_rz, h_W_n = h_W[:, :2 * H], h_W[:, 2 * H:]
        padded = repeat(None) if mask is None else ~mask        # (T, B, 1) True on padded steps
        sigmoid_gates = _kernels.exp_sigmoid_gates              # a local name: one call per step
        rec_dot = recurrent_products(drop)[0]                   # np.dot itself without dropout
        steps = zip(gates[:, :, :2 * H], gates[:, :, :H], gates[:, :, H:2 * H], gates[:, :, 2 * H:],
                    q, h[:-1], h[1:], padded)                   # per-step views, made by iteration
        with np.errstate(over="ignore"):                        # exp(-a) may be inf: s(a) = 1 / inf = 0, exact
            for rz, r, z, n, q_t, h_prev, h_t, padded_t in steps:
                rec_dot(h_prev, W_h_s, out=h_W)                 # the one recurrent GEMM
                np.add(h_W_n, b_hn, out=q_t)                    # q_t, kept for da_r
                rz += h_W_rz                                    # -a_r, -a_z
                sigmoid_gates(rz)                               # r_t, z_t
                np.multiply(r, q_t, out=h_W_n)                  # r_t * q_t (h_W_n is free now)
                n += h_W_n                                      # a_n
                tanh_into(n, n)                                 # n_t = tanh(a_n)
                np.subtract(h_prev, n, out=h_t)                 # h_t = n + z (h_{t-1} - n)
                h_t *= z
                h_t += n
                if padded_t is not None:
                    np.copyto(h_t, h_prev, where=padded_t)      # padded rows keep h_{t-1} exactly

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
        cache, dout, (dh,) = self._begin_bprop(dout, dstate)    # dh (B, H) running dL/dh_t
        if isinstance(cache, GRUResetBeforeCache):
            return self._bprop_reset_before(cache, dout, dh)
        T, B, D = cache.x.shape
        H = self.hidden_size
        da_n = self._workspace.take("da_n", (T, B, H), self.dtype)   # (T, B, H) the n block of dG_x
        self._backward_loop(cache, dout.transpose(1, 0, 2), dh, da_n)
        # Weight and input gradients, one GEMM per block of columns: dG_x = [dG_h r,z | da_n].
        dG_h = cache.gates.reshape(T * B, 3 * H)                # (T*B, 3H)
        dG_rz = dG_h[:, :2 * H]                                 # (T*B, 2H) strided view, no copy
        da_n_rows = da_n.reshape(T * B, H)                      # (T*B, H)
        x_rows, W_x = cache.x.reshape(T * B, D), self.params["W_x"]
        self.grads["W_x"][:, :2 * H] += x_rows.T @ dG_rz
        self.grads["W_x"][:, 2 * H:] += x_rows.T @ da_n_rows
        h_rec = cache.h[:-1] if cache.drop is None else cache.h[:-1] * cache.drop   # (T, B, H) what met W_h
        self.grads["W_h"] += h_rec.reshape(T * B, H).T @ dG_h
        self.grads["b"][:2 * H] += dG_rz.sum(axis=0)
        self.grads["b"][2 * H:] += da_n_rows.sum(axis=0)
        self.grads["b_hn"] += dG_h[:, 2 * H:].sum(axis=0)
        dx = cache.x.reshape(T * B, D)                          # (T*B, D) dx over x: dW_x has used it
        np.matmul(dG_rz, W_x[:, :2 * H].T, out=dx)
        dx += da_n_rows @ W_x[:, 2 * H:].T
        dx = dx.reshape(T, B, D).transpose(1, 0, 2).copy()      # (B, T, D), always a copy: x goes back
        self._workspace.give(x=cache.x, gates=cache.gates, h=cache.h, q=cache.q, da_n=da_n)   # all spent
        return dx, dh

    def _backward_loop(self, cache, dout_steps, dh, da_n):
        """Walk the steps backwards, a block of K steps at a time (see _kernels.reverse_blocks).

        dG_h[t] = F_t * [dh_total, dh_total, dh_total] with F = [A q r(1-r), (h_{t-1} - n) z(1-z), A r]
        and A = (1 - z)(1 - n^2): F for a block (:meth:`_backward_factors`) is written over the
        block's gates (the cache is spent), so the gates' memory ends up holding dG_h and backward
        allocates no (T, B, 3H) array. da_n = A dh_total goes to ``da_n``; dh ends as dL/dh_0.
        """
        T, B, H = cache.q.shape
        mask = cache.mask
        K = _kernels.block_steps(T, 4 * B * H * self.dtype.itemsize)   # 4 (B, H) arrays per step
        A_block = np.empty((K, B, H), self.dtype)               # (K, B, H) A of the block
        z_block = np.empty((K, B, H), self.dtype)               # (K, B, H) z of the block (the gates get overwritten)
        scratch = np.empty((K, B, H), self.dtype)               # (K, B, H)
        if mask is not None:
            real = mask.astype(self.dtype)                      # (T, B, 1) 1.0 real / 0.0 padded
            dout_real = np.empty((K, B, H), self.dtype)         # (K, B, H) dout, := 0 on padded rows
        dh_total = np.empty((B, H), self.dtype)                 # (B, H) dh_total = dout_t + dh
        dh_total3 = dh_total[:, None, :]                        # (B, 1, H) view, scales all three blocks
        dh_carry = np.empty((B, H), self.dtype)                 # (B, H) dh_total * z
        W_h_T = np.ascontiguousarray(self.params["W_h"].T)      # (3H, H) contiguous: BLAS is faster on it
        rec_dot_T = recurrent_products(cache.drop)[1]           # np.dot, or (dG_h W_h^T) * u with dropout
        track = self._start_tracking(B, T)
        for t0, t1 in _kernels.reverse_blocks(T, K):
            length = t1 - t0                                    # steps in this block (K, or fewer)
            A, z_k = A_block[:length], z_block[:length]
            gates_k = cache.gates[t0:t1]                        # (n, B, 3H) gates [r, z, n] -> F
            self._backward_factors(gates_k, cache.h[t0:t1], cache.q[t0:t1], A, z_k, scratch[:length])
            dout_k = dout_steps[t0:t1]
            if mask is not None:                                # padded rows: no gate gradients, dout
                real_k = real[t0:t1]                            # ignored, dh_{t-1} = dh_total (as if z = 1)
                gates_k *= real_k
                A *= real_k
                np.copyto(z_k, 1.0, where=real_k == 0.0)
                dout_k = np.multiply(dout_k, real_k, out=dout_real[:length])
            for j in range(length - 1, -1, -1):
                t = t0 + j
                np.add(dout_k[j], dh, out=dh_total)             # dh_total = dout_t + dh_t
                if track:
                    self._record_norms("h", t, dh_total)
                dG_h_t = cache.gates[t]                         # (B, 3H) F_t -> dG_h[t]
                np.multiply(dG_h_t.reshape(B, 3, H), dh_total3, out=dG_h_t.reshape(B, 3, H))
                np.multiply(A[j], dh_total, out=da_n[t])        # da_n
                rec_dot_T(dG_h_t, W_h_T, out=dh)                    # the one GEMM per step
                np.multiply(dh_total, z_k[j], out=dh_carry)
                dh += dh_carry                                  # dh_{t-1} = dG_h W_h^T + dh_total z

    @staticmethod
    def _backward_factors(gates, h_prev, q, A, z_copy, scratch):
        """In place, for a block of K steps: gates (K, B, 3H) [r, z, n] -> F (see _backward_loop);
        A (K, B, H) := (1 - z)(1 - n^2); z_copy (K, B, H) := z. h_prev, q (K, B, H) are read."""
        H = q.shape[2]
        r, z, n = gates[..., :H], gates[..., H:2 * H], gates[..., 2 * H:]
        np.copyto(z_copy, z)
        np.subtract(1.0, z, out=scratch)                        # 1 - z
        np.multiply(n, n, out=A)
        np.subtract(1.0, A, out=A)
        A *= scratch                                            # A = (1 - z)(1 - n^2)
        z *= scratch                                            # F_z = (h_{t-1} - n) z (1 - z)
        np.subtract(h_prev, n, out=scratch)
        z *= scratch
        np.multiply(A, r, out=n)                                # F_n = A r
        np.subtract(1.0, r, out=scratch)                        # F_r = A q r (1 - r)
        r *= scratch
        r *= A
        r *= q

    # -- the reset_after=False form (Cho et al. 2014): two recurrent GEMMs per step each way ----
    def _forward_loop_reset_before(self, gates, rh, h, mask, drop=None):
        """The sequential part of fprop with reset_after=False, in place: gates (T, B, 3H) arrive as
        [-a_r, -a_z | x W_xn + b_n] without the recurrent parts and become [r | z | n]; rh (T, B, H)
        gets r_t * h_{t-1} and h[1:] the states. With recurrent dropout ``drop`` u (B, H), h_{t-1} * u
        replaces h_{t-1} in both recurrent products (GEMM 1 leaves it in ``h_u``, read by r_t * ...)."""
        T, B, H = rh.shape
        W_h = self.params["W_h"]
        W_hrz_s = W_h[:, :2 * H] * self._gate_scale[:2 * H]     # (H, 2H) [W_hr, W_hz] negated (exact), contiguous
        W_hn = np.ascontiguousarray(W_h[:, 2 * H:])             # (H, H)
        tanh_into = _kernels.tanh_kernel(_kernels.exp_tanh_pays(self.dtype, B * H))   # n_t = tanh(a_n)
        h_W_rz = np.empty((B, 2 * H), self.dtype)               # (B, 2H) h_{t-1} [W_hr, W_hz] (negated), scratch
        rh_W = np.empty((B, H), self.dtype)                     # (B, H) (r_t h_{t-1}) W_hn, scratch
        padded = repeat(None) if mask is None else ~mask        # (T, B, 1) True on padded steps
        sigmoid_gates = _kernels.exp_sigmoid_gates              # a local name: one call per step
        h_u = None if drop is None else np.empty((B, H), self.dtype)   # (B, H) h_{t-1} * u, per step
        rec_dot = np.dot if drop is None else _dropped_dot(drop, h_u)
        h_rec = h[:-1] if drop is None else repeat(h_u)         # what meets W_h: h_{t-1}, or h_{t-1} * u
        steps = zip(gates[:, :, :2 * H], gates[:, :, :H], gates[:, :, H:2 * H], gates[:, :, 2 * H:],
                    rh, h[:-1], h[1:], padded, h_rec)           # per-step views, made by iteration
        with np.errstate(over="ignore"):                        # exp(-a) may be inf: s(a) = 1 / inf = 0, exact
            for rz, r, z, n, rh_t, h_prev, h_t, padded_t, h_rec_t in steps:
                rec_dot(h_prev, W_hrz_s, out=h_W_rz)            # recurrent GEMM 1: r and z
                rz += h_W_rz                                    # -a_r, -a_z
                sigmoid_gates(rz)                               # r_t, z_t
                np.multiply(r, h_rec_t, out=rh_t)               # r_t * h_{t-1} (* u), kept for dW_hn
                np.dot(rh_t, W_hn, out=rh_W)                    # recurrent GEMM 2: needs r_t
                n += rh_W                                       # a_n
                tanh_into(n, n)                                 # n_t = tanh(a_n)
                np.subtract(h_prev, n, out=h_t)                 # h_t = n + z (h_{t-1} - n)
                h_t *= z
                h_t += n
                if padded_t is not None:
                    np.copyto(h_t, h_prev, where=padded_t)      # padded rows keep h_{t-1} exactly

    def _bprop_reset_before(self, cache, dout, dh):
        """bprop with reset_after=False, after :meth:`bprop` checked the arguments; dh (B, H) is dL/dh_T."""
        T, B, D = cache.x.shape
        H = self.hidden_size
        h_rec = cache.h[:-1] if cache.drop is None else cache.h[:-1] * cache.drop   # (T, B, H) what met W_h
        self._backward_loop_reset_before(cache, dout.transpose(1, 0, 2), dh, h_rec)
        dG = cache.gates.reshape(T * B, 3 * H)                  # (T*B, 3H) [da_r | da_z | da_n]
        x_rows = cache.x.reshape(T * B, D)                      # (T*B, D)
        self.grads["W_x"] += x_rows.T @ dG
        self.grads["W_h"][:, :2 * H] += h_rec.reshape(T * B, H).T @ dG[:, :2 * H]
        self.grads["W_h"][:, 2 * H:] += cache.rh.reshape(T * B, H).T @ dG[:, 2 * H:]
        self.grads["b"] += dG.sum(axis=0)
        dx = cache.x.reshape(T * B, D)                          # (T*B, D) dx over x: dW_x has used it
        np.matmul(dG, self.params["W_x"].T, out=dx)
        dx = dx.reshape(T, B, D).transpose(1, 0, 2).copy()      # (B, T, D), always a copy: x goes back
        self._workspace.give(x=cache.x, gates=cache.gates, h=cache.h, q=cache.rh)   # all spent
        return dx, dh

    def _backward_loop_reset_before(self, cache, dout_steps, dh, h_rec):
        """Walk the steps backwards a block at a time; cache.gates ends as dG = [da_r, da_z, da_n].

        Per block, :meth:`_backward_factors_reset_before` turns the gates into the factors
        [G_r, F_z, A] = [h_{t-1} r(1-r), (h_{t-1} - n) z(1-z), (1 - z)(1 - n^2)]; then per step
        da_z = F_z dh_total, da_n = A dh_total, drh = da_n W_hn^T, da_r = G_r drh and
        dh_{t-1} = [da_r, da_z] [W_hr, W_hz]^T + drh r + dh_total z. dh ends as dL/dh_0.
        With recurrent dropout u, h_rec = h_{t-1} * u (else h_{t-1}) replaces h_{t-1} in G_r and the
        first two terms of dh_{t-1} are multiplied by u (u is folded into the block's copy of r).
        """
        T, B, H = cache.rh.shape
        mask = cache.mask
        K = _kernels.block_steps(T, 4 * B * H * self.dtype.itemsize)   # 4 (B, H) arrays per step
        r_block, z_block, scratch = (np.empty((K, B, H), self.dtype) for _ in range(3))   # (K, B, H) each
        if mask is not None:
            real = mask.astype(self.dtype)                      # (T, B, 1) 1.0 real / 0.0 padded
            dout_real = np.empty((K, B, H), self.dtype)         # (K, B, H) dout, := 0 on padded rows
        dh_total = np.empty((B, H), self.dtype)                 # (B, H) dh_total = dout_t + dh
        dh_total2 = dh_total[:, None, :]                        # (B, 1, H) view, scales the z and n blocks
        drh = np.empty((B, H), self.dtype)                      # (B, H) dL/d(r_t h_{t-1})
        dh_carry = np.empty((B, H), self.dtype)                 # (B, H) dh_total * z
        W_hrz_T = np.ascontiguousarray(self.params["W_h"][:, :2 * H].T)   # (2H, H)
        W_hn_T = np.ascontiguousarray(self.params["W_h"][:, 2 * H:].T)    # (H, H)
        rec_dot_T = recurrent_products(cache.drop)[1]           # np.dot itself without dropout
        gates4 = cache.gates.reshape(T, B, 3, H)                # (T, B, 3, H) view
        track = self._start_tracking(B, T)
        for t0, t1 in _kernels.reverse_blocks(T, K):
            length = t1 - t0
            r_k, z_k, gates_k = r_block[:length], z_block[:length], cache.gates[t0:t1]
            self._backward_factors_reset_before(gates_k, cache.h[t0:t1], r_k, z_k, scratch[:length],
                                                h_rec[t0:t1])
            if cache.drop is not None:
                r_k *= cache.drop                               # drh r u
            dout_k = dout_steps[t0:t1]
            if mask is not None:                                # padded rows: no gate gradients, dout
                real_k = real[t0:t1]                            # ignored, dh_{t-1} = dh_total (z = 1, r = 0)
                gates_k *= real_k
                r_k *= real_k
                np.copyto(z_k, 1.0, where=real_k == 0.0)
                dout_k = np.multiply(dout_k, real_k, out=dout_real[:length])
            for j in range(length - 1, -1, -1):
                t = t0 + j
                np.add(dout_k[j], dh, out=dh_total)             # dh_total = dout_t + dh_t
                if track:
                    self._record_norms("h", t, dh_total)
                g = gates4[t]                                   # (B, 3, H) [G_r, F_z, A] -> dG
                np.multiply(g[:, 1:], dh_total2, out=g[:, 1:])  # da_z, da_n
                np.dot(g[:, 2], W_hn_T, out=drh)                # drh = da_n W_hn^T
                g[:, 0] *= drh                                  # da_r = G_r drh
                rec_dot_T(cache.gates[t][:, :2 * H], W_hrz_T, out=dh)   # [da_r, da_z] [W_hr, W_hz]^T (* u)
                drh *= r_k[j]
                dh += drh
                np.multiply(dh_total, z_k[j], out=dh_carry)
                dh += dh_carry                                  # dh_{t-1}

    @staticmethod
    def _backward_factors_reset_before(gates, h_prev, r_copy, z_copy, scratch, h_rec):
        """In place, for a block of K steps: gates (K, B, 3H) [r, z, n] -> [G_r, F_z, A] (see
        :meth:`_backward_loop_reset_before`); r_copy, z_copy (K, B, H) := r, z. h_prev and h_rec
        (h_prev * u with recurrent dropout, else h_prev itself) are read."""
        H = h_prev.shape[2]
        r, z, n = gates[..., :H], gates[..., H:2 * H], gates[..., 2 * H:]
        np.copyto(r_copy, r)
        np.copyto(z_copy, z)
        np.subtract(1.0, r, out=scratch)                        # G_r = h_rec r (1 - r)
        r *= scratch
        r *= h_rec
        np.subtract(h_prev, n, out=scratch)                     # h_{t-1} - n
        n *= n
        np.subtract(1.0, n, out=n)                              # 1 - n^2
        z *= scratch                                            # z (h_{t-1} - n)
        np.subtract(1.0, z_copy, out=scratch)                   # 1 - z
        z *= scratch                                            # F_z = (h_{t-1} - n) z (1 - z)
        n *= scratch                                            # A = (1 - z)(1 - n^2)

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

        The math is :func:`npnet.cells.reference.gru_step_forward`, called as it is (it takes the
        form from the params: no ``b_hn`` with reset_after=False).
        """
        x_t = check_input(x_t, "x_t", 2, self.input_size, self.dtype)
        (h_prev,) = self.unpack_state(state, x_t.shape[0])
        h, _ = reference.gru_step_forward(x_t, h_prev, self.params)
        return h, h


def _dropped_dot(u: np.ndarray, h_u: np.ndarray):
    """out = (h_prev * u) W, leaving h_prev * u in ``h_u`` for the caller (GRU reset_after=False
    reads it again for r_t * (h_{t-1} * u))."""
    def dot(h_prev, W, out):
        np.multiply(h_prev, u, out=h_u)
        return np.dot(h_u, W, out=out)
    return dot
