"""The textbook math of the three recurrent cells: one forward/backward pair per step, plainly.

This is the place to read how backpropagation through time works in npnet. Every line is the
equation beside it, in the plainest NumPy (np.tanh, a stable sigmoid, np.split into gates); no
buffers, no in-place tricks, no speed. The fast cells (rnn.py, lstm.py, gru.py) compute the
same numbers, and tests/cells/test_contract.py proves it; each cell's ``step()`` calls the step
function here.

Conventions (the same for the three cells):

- ``params`` is the cell's own ``params`` dict (same names and layouts as the fast cell);
  ``grads`` is a dict of arrays of the same shapes that the backward functions ADD into.
- A step works on one time step of a batch: x_t (B, D), states (B, H).
- The sequence loops take batch-first x (B, T, D), the state in the cell's public form
  (``h``, or the tuple ``(h, c)`` for the LSTM; None = zeros) and a mask (B, T) bool or None.
  On a padded step (mask False) a row keeps its state and outputs zero; backward ignores
  that output's gradient and passes the state gradient straight through.
- Recurrent dropout (every cell): an optional ``dropout_mask`` u (B, H), the same at every step,
  multiplies h_prev where it meets W_h (:func:`recurrent_input`, and its adjoint
  :func:`recurrent_input_backward`); None (the default) is the plain cell.
"""
from __future__ import annotations

import numpy as np

__all__ = ["rnn_step_forward", "rnn_step_backward", "lstm_step_forward", "lstm_step_backward",
           "gru_step_forward", "gru_step_backward", "rnn_forward", "rnn_backward", "lstm_forward",
           "lstm_backward", "gru_forward", "gru_backward", "lstm_dc_total", "sigmoid"]


def sigmoid(a):
    """Stable logistic function 1 / (1 + exp(-a)): exp is only taken of -|a|, so it never overflows."""
    e = np.exp(-np.abs(a))                                       # in (0, 1]
    return np.where(a >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


# ----------------------------------------------------------------------------------- RNN
def recurrent_input(h_prev, dropout_mask):
    """What meets W_h: h_prev, or h_prev * u with recurrent dropout (u (B, H), the same every step)."""
    return h_prev if dropout_mask is None else h_prev * dropout_mask


def recurrent_input_backward(dh_rec, dropout_mask):
    """The adjoint of :func:`recurrent_input`: dL/dh_prev = dL/d(h_prev * u) * u."""
    return dh_rec if dropout_mask is None else dh_rec * dropout_mask


def rnn_step_forward(x_t, h_prev, params, nonlinearity="tanh", dropout_mask=None):
    """One step of BasicRNNCell: h = act(x_t W_x + h_prev W_h + b), act = tanh or relu.

    x_t (B, D), h_prev (B, H), params {"W_x": (D, H), "W_h": (H, H), "b": (H,)}; dropout_mask u
    (B, H) or None: recurrent dropout, the recurrent term is then (h_prev * u) W_h.
    Returns h (B, H) and the step's cache for :func:`rnn_step_backward`.
    """
    h_rec = recurrent_input(h_prev, dropout_mask)                # (B, H) h_prev (* u)
    a = x_t @ params["W_x"] + h_rec @ params["W_h"] + params["b"]    # (B, H) a = x W_x + h_rec W_h + b
    h = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)   # (B, H) h = act(a)
    cache = {"x_t": x_t, "h_prev": h_prev, "h_rec": h_rec, "dropout_mask": dropout_mask, "h": h,
             "params": params, "nonlinearity": nonlinearity}
    return h, cache


def rnn_step_backward(dh, cache, grads):
    """Backward of one RNN step: dh = dL/dh (B, H) -> (dx_t (B, D), dh_prev (B, H)); adds into grads."""
    h, params = cache["h"], cache["params"]
    if cache["nonlinearity"] == "tanh":
        da = dh * (1.0 - h ** 2)                                  # (B, H) da = dh * tanh'(a) = dh (1 - h^2)
    else:
        da = dh * (h > 0)                                         # (B, H) da = dh * relu'(a) = dh [h > 0]
    grads["W_x"] += cache["x_t"].T @ da                           # (D, H) dW_x += x^T da
    grads["W_h"] += cache["h_rec"].T @ da                         # (H, H) dW_h += h_rec^T da
    grads["b"] += da.sum(axis=0)                                  # (H,)   db += sum over the batch of da
    dx_t = da @ params["W_x"].T                                   # (B, D) dx = da W_x^T
    dh_prev = recurrent_input_backward(da @ params["W_h"].T, cache["dropout_mask"])   # (B, H) da W_h^T (* u)
    return dx_t, dh_prev


# ----------------------------------------------------------------------------------- LSTM
def lstm_step_forward(x_t, h_prev, c_prev, params, dropout_mask=None):
    """One step of LSTMCell, gates in the order i, f, g, o (as PyTorch).

    x_t (B, D), h_prev (B, H), c_prev (B, H), params {"W_x": (D, 4H), "W_h": (H, 4H), "b": (4H,)};
    dropout_mask u (B, H) or None: recurrent dropout, the recurrent term is then (h_prev * u) W_h.
    Returns h (B, H), c (B, H) and the step's cache for :func:`lstm_step_backward`.
    """
    h_rec = recurrent_input(h_prev, dropout_mask)                    # (B, H) h_prev (* u)
    a = x_t @ params["W_x"] + h_rec @ params["W_h"] + params["b"]    # (B, 4H) a = x W_x + h_rec W_h + b
    a_i, a_f, a_g, a_o = np.split(a, 4, axis=1)                       # 4 x (B, H)
    i = sigmoid(a_i)                                                  # (B, H) input gate   i = s(a_i)
    f = sigmoid(a_f)                                                  # (B, H) forget gate  f = s(a_f)
    g = np.tanh(a_g)                                                  # (B, H) candidate    g = tanh(a_g)
    o = sigmoid(a_o)                                                  # (B, H) output gate  o = s(a_o)
    c = f * c_prev + i * g                                            # (B, H) c = f c_prev + i g
    tanh_c = np.tanh(c)                                               # (B, H)
    h = o * tanh_c                                                    # (B, H) h = o tanh(c)
    cache = {"x_t": x_t, "h_prev": h_prev, "h_rec": h_rec, "dropout_mask": dropout_mask, "c_prev": c_prev,
             "i": i, "f": f, "g": g, "o": o, "tanh_c": tanh_c, "params": params}
    return h, c, cache


def lstm_dc_total(dh, dc, cache):
    """dL/dc_t in total (B, H): dc from step t+1 plus the path through h = o tanh(c)."""
    return dc + dh * cache["o"] * (1.0 - cache["tanh_c"] ** 2)       # dc_total = dc + dh o (1 - tanh^2 c)


def lstm_step_backward(dh, dc, cache, grads):
    """Backward of one LSTM step.

    dh = dL/dh (B, H) and dc = dL/dc from step t+1 (B, H) -> (dx_t (B, D), dh_prev (B, H),
    dc_prev (B, H)); adds into grads.
    """
    i, f, g, o, tanh_c, params = (cache[k] for k in ("i", "f", "g", "o", "tanh_c", "params"))
    dc_total = lstm_dc_total(dh, dc, cache)                      # (B, H)
    da_i = dc_total * g * i * (1.0 - i)                          # (B, H) da_i = dc g s'(a_i)
    da_f = dc_total * cache["c_prev"] * f * (1.0 - f)            # (B, H) da_f = dc c_prev s'(a_f)
    da_g = dc_total * i * (1.0 - g ** 2)                         # (B, H) da_g = dc i tanh'(a_g)
    da_o = dh * tanh_c * o * (1.0 - o)                           # (B, H) da_o = dh tanh(c) s'(a_o)
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)        # (B, 4H)
    grads["W_x"] += cache["x_t"].T @ da                          # (D, 4H) dW_x += x^T da
    grads["W_h"] += cache["h_rec"].T @ da                        # (H, 4H) dW_h += h_rec^T da
    grads["b"] += da.sum(axis=0)                                 # (4H,)   db += sum over the batch of da
    dx_t = da @ params["W_x"].T                                  # (B, D) dx = da W_x^T
    dh_prev = recurrent_input_backward(da @ params["W_h"].T, cache["dropout_mask"])   # (B, H) da W_h^T (* u)
    dc_prev = dc_total * f                                       # (B, H) dc_prev = dc_total f
    return dx_t, dh_prev, dc_prev


# ----------------------------------------------------------------------------------- GRU
def gru_step_forward(x_t, h_prev, params, dropout_mask=None):
    """One step of GRUCell, in the cell's form: ``params`` with a ``b_hn`` key is the default
    (reset_after=True) form, without one the reset_after=False form.

    x_t (B, D), h_prev (B, H), params {"W_x": (D, 3H), "W_h": (H, 3H), "b": (3H,)[, "b_hn": (H,)]},
    gate blocks r (reset), z (update), n (candidate). Returns h (B, H) and the step's cache.
    The reset gate acts after the recurrent matrix product (PyTorch / cuDNN / Keras
    reset_after=True) when ``b_hn`` is there, before it otherwise (Cho et al. 2014 / Keras
    reset_after=False, :func:`_gru_reset_before_step_forward`). ``dropout_mask`` u (B, H) or None:
    recurrent dropout, h_prev * u wherever h_prev meets W_h (the carry z h_prev is not dropped).
    """
    if "b_hn" not in params:
        return _gru_reset_before_step_forward(x_t, h_prev, params, dropout_mask)
    h_rec = recurrent_input(h_prev, dropout_mask)                # (B, H) h_prev (* u)
    xw_r, xw_z, xw_n = np.split(x_t @ params["W_x"] + params["b"], 3, axis=1)   # 3 x (B, H) x W_x + b
    hw_r, hw_z, hw_n = np.split(h_rec @ params["W_h"], 3, axis=1)               # 3 x (B, H) h_rec W_h
    r = sigmoid(xw_r + hw_r)                                     # (B, H) r = s(x W_xr + h_prev W_hr + b_r)
    z = sigmoid(xw_z + hw_z)                                     # (B, H) z = s(x W_xz + h_prev W_hz + b_z)
    q = hw_n + params["b_hn"]                                    # (B, H) q = h_prev W_hn + b_hn
    n = np.tanh(xw_n + r * q)                                    # (B, H) n = tanh(x W_xn + b_n + r q)
    h = (1.0 - z) * n + z * h_prev                               # (B, H) h = (1 - z) n + z h_prev
    cache = {"x_t": x_t, "h_prev": h_prev, "h_rec": h_rec, "dropout_mask": dropout_mask, "r": r, "z": z,
             "q": q, "n": n, "params": params}
    return h, cache


def gru_step_backward(dh, cache, grads):
    """Backward of one GRU step (either form): dh = dL/dh (B, H) -> (dx_t (B, D), dh_prev (B, H));
    adds into grads."""
    if "rh" in cache:
        return _gru_reset_before_step_backward(dh, cache, grads)
    x_t, h_prev, r, z, q, n, params = (cache[k] for k in ("x_t", "h_prev", "r", "z", "q", "n", "params"))
    da_n = dh * (1.0 - z) * (1.0 - n ** 2)                       # (B, H) da_n = dh (1 - z) tanh'(a_n)
    da_z = dh * (h_prev - n) * z * (1.0 - z)                     # (B, H) da_z = dh (h_prev - n) s'(a_z)
    da_r = da_n * q * r * (1.0 - r)                              # (B, H) da_r = da_n q s'(a_r)
    dq = da_n * r                                                # (B, H) dq = da_n r
    dxw = np.concatenate([da_r, da_z, da_n], axis=1)             # (B, 3H) gradient of x W_x + b
    dhw = np.concatenate([da_r, da_z, dq], axis=1)               # (B, 3H) gradient of h_prev W_h
    grads["W_x"] += x_t.T @ dxw                                  # (D, 3H) dW_x += x^T dxw
    grads["W_h"] += cache["h_rec"].T @ dhw                       # (H, 3H) dW_h += h_rec^T dhw
    grads["b"] += dxw.sum(axis=0)                                # (3H,)   db += sum of dxw
    grads["b_hn"] += dq.sum(axis=0)                              # (H,)    db_hn += sum of dq
    dx_t = dxw @ params["W_x"].T                                 # (B, D) dx = dxw W_x^T
    dh_prev = dh * z + recurrent_input_backward(dhw @ params["W_h"].T, cache["dropout_mask"])   # dh z + dhw W_h^T (* u)
    return dx_t, dh_prev


def _gru_reset_before_step_forward(x_t, h_prev, params, dropout_mask=None):
    """One step of GRUCell(reset_after=False): the reset gate multiplies h_prev before W_hn.

    params {"W_x": (D, 3H), "W_h": (H, 3H), "b": (3H,)}: one bias per gate, no b_hn.
    """
    H = h_prev.shape[1]
    xw_r, xw_z, xw_n = np.split(x_t @ params["W_x"] + params["b"], 3, axis=1)   # 3 x (B, H) x W_x + b
    h_rec = recurrent_input(h_prev, dropout_mask)                # (B, H) h_prev (* u)
    hw_r, hw_z = np.split(h_rec @ params["W_h"][:, :2 * H], 2, axis=1)          # 2 x (B, H) h_rec W_hr, W_hz
    r = sigmoid(xw_r + hw_r)                                     # (B, H) r = s(x W_xr + h_prev W_hr + b_r)
    z = sigmoid(xw_z + hw_z)                                     # (B, H) z = s(x W_xz + h_prev W_hz + b_z)
    rh = r * h_rec                                               # (B, H) the reset state r * h_rec
    n = np.tanh(xw_n + rh @ params["W_h"][:, 2 * H:])            # (B, H) n = tanh(x W_xn + b_n + (r h_prev) W_hn)
    h = (1.0 - z) * n + z * h_prev                               # (B, H) h = (1 - z) n + z h_prev
    cache = {"x_t": x_t, "h_prev": h_prev, "h_rec": h_rec, "dropout_mask": dropout_mask, "r": r, "z": z,
             "rh": rh, "n": n, "params": params}
    return h, cache


def _gru_reset_before_step_backward(dh, cache, grads):
    """Backward of :func:`_gru_reset_before_step_forward`; adds into grads (no b_hn)."""
    x_t, h_prev, r, z, rh, n, params = (cache[k] for k in ("x_t", "h_prev", "r", "z", "rh", "n", "params"))
    H = h_prev.shape[1]
    W_hrz, W_hn = params["W_h"][:, :2 * H], params["W_h"][:, 2 * H:]   # (H, 2H), (H, H)
    da_n = dh * (1.0 - z) * (1.0 - n ** 2)                       # (B, H) da_n = dh (1 - z) tanh'(a_n)
    da_z = dh * (h_prev - n) * z * (1.0 - z)                     # (B, H) da_z = dh (h_prev - n) s'(a_z)
    drh = da_n @ W_hn.T                                          # (B, H) d(r h_prev) = da_n W_hn^T
    da_r = drh * cache["h_rec"] * r * (1.0 - r)                  # (B, H) da_r = d(r h_rec) h_rec s'(a_r)
    dxw = np.concatenate([da_r, da_z, da_n], axis=1)             # (B, 3H) gradient of x W_x + b
    da_rz = dxw[:, :2 * H]                                       # (B, 2H) gradient of h_prev [W_hr, W_hz]
    grads["W_x"] += x_t.T @ dxw                                  # (D, 3H) dW_x += x^T dxw
    grads["W_h"][:, :2 * H] += cache["h_rec"].T @ da_rz          # (H, 2H) dW_hr, dW_hz += h_rec^T da_rz
    grads["W_h"][:, 2 * H:] += rh.T @ da_n                       # (H, H)  dW_hn += (r h_rec)^T da_n
    grads["b"] += dxw.sum(axis=0)                                # (3H,)   db += sum of dxw
    dx_t = dxw @ params["W_x"].T                                 # (B, D) dx = dxw W_x^T
    dh_rec = da_rz @ W_hrz.T + drh * r                           # (B, H) dL/dh_rec = da_rz W_hrz^T + d(rh) r
    dh_prev = dh * z + recurrent_input_backward(dh_rec, cache["dropout_mask"])   # (B, H) dh z + dh_rec (* u)
    return dx_t, dh_prev


# ------------------------------------------------------------------------- sequence loops
def _state_parts(state, B, H, dtype, n):
    """The public state (None, h, or (h, c); entries may be None) -> a tuple of n (B, H) arrays."""
    parts = (None,) * n if state is None else (state,) if n == 1 else tuple(state)
    return tuple(np.zeros((B, H), dtype) if p is None else np.asarray(p, dtype) for p in parts)


def _sequence_forward(step, x, states, mask):
    """Run ``step(x_t, *states) -> (*new_states, step_cache)`` over time, batch-first.

    A row whose mask is False keeps its states and outputs zero. Returns out (B, T, H), the final
    states and the loop's cache {"steps": the step caches, "mask": (B, T) bool}.
    """
    B, T, _ = x.shape
    real = np.ones((B, T), bool) if mask is None else mask       # (B, T) True on real steps
    outputs, step_caches = [], []
    for t in range(T):
        *new, step_cache = step(x[:, t], *states)                # each (B, H); new[0] is h
        m_t = real[:, t][:, None]                                # (B, 1)
        outputs.append(np.where(m_t, new[0], 0.0))               # out_t = m h_new
        states = tuple(np.where(m_t, s_new, s) for s_new, s in zip(new, states))   # s = m s_new + (1 - m) s
        step_caches.append(step_cache)
    return np.stack(outputs, axis=1), states, {"steps": step_caches, "mask": real}   # out (B, T, H)


def _sequence_backward(step_backward, dout, dstates, cache, grads, state_grads=None, names=("h",),
                       totals=None):
    """BPTT through :func:`_sequence_forward`; ``step_backward(*d_states, step_cache, grads)``
    returns (dx_t, *d_prev_states).

    dout (B, T, H) is dL/dout and dstates the gradients of the final states. On a padded step the
    output gradient is ignored and the state gradients pass straight to step t-1. If ``state_grads``
    is a dict it receives name -> (B, T, H), the total gradient reaching each step's states
    (``totals(d_states, step_cache)`` computes them on real steps; default: d_states itself).
    """
    B, T, H = dout.shape
    real = cache["mask"]                                         # (B, T)
    if state_grads is not None:
        state_grads.update({name: np.zeros((B, T, H)) for name in names})
    dx_steps = [None] * T
    for t in range(T - 1, -1, -1):
        m_t = real[:, t][:, None]                                # (B, 1)
        dh_total = dstates[0] + np.where(m_t, dout[:, t], 0.0)   # (B, H) dL/dh_t = dh + m dout_t
        d_new = (dh_total,) + tuple(dstates[1:])                 # with the LSTM's dc
        d_real = tuple(np.where(m_t, d, 0.0) for d in d_new)     # padded rows send nothing into the step
        dx_t, *d_prev = step_backward(*d_real, cache["steps"][t], grads)
        dx_steps[t] = dx_t
        if state_grads is not None:
            got = d_real if totals is None else totals(d_real, cache["steps"][t])
            for name, d_step, d_pass in zip(names, got, d_new):
                state_grads[name][:, t] = np.where(m_t, d_step, d_pass)
        dstates = tuple(dp + np.where(m_t, 0.0, d) for dp, d in zip(d_prev, d_new))   # padded: passed through
    return np.stack(dx_steps, axis=1), dstates                   # dx (B, T, D), gradients of the first states


def rnn_forward(x, state, params, mask=None, nonlinearity="tanh", dropout_mask=None):
    """BasicRNNCell over a sequence: x (B, T, D), state h (B, H) or None -> (out (B, T, H), h_T, cache).

    ``dropout_mask`` u (B, H) or None: recurrent dropout, the same u at every step."""
    B, _, _ = x.shape
    states = _state_parts(state, B, params["W_h"].shape[0], x.dtype, 1)
    out, (h_T,), cache = _sequence_forward(
        lambda x_t, h_prev: rnn_step_forward(x_t, h_prev, params, nonlinearity, dropout_mask), x, states, mask)
    return out, h_T, cache


def rnn_backward(dout, dstate, cache, grads, state_grads=None):
    """BPTT of :func:`rnn_forward`: dout (B, T, H), dstate dL/dh_T or None -> (dx (B, T, D), dh_0 (B, H)).

    ``state_grads`` (a dict, optional) receives {"h": (B, T, H)}, dL/dh_t reaching each step."""
    B, _, H = dout.shape
    dstates = _state_parts(dstate, B, H, dout.dtype, 1)
    dx, (dh0,) = _sequence_backward(rnn_step_backward, dout, dstates, cache, grads, state_grads)
    return dx, dh0


def lstm_forward(x, state, params, mask=None, dropout_mask=None):
    """LSTMCell over a sequence: x (B, T, D), state (h, c) or None -> (out (B, T, H), (h_T, c_T), cache).

    ``dropout_mask`` u (B, H) or None: recurrent dropout, the same u at every step."""
    B, _, _ = x.shape
    states = _state_parts(state, B, params["W_h"].shape[0], x.dtype, 2)
    out, (h_T, c_T), cache = _sequence_forward(
        lambda x_t, h_prev, c_prev: lstm_step_forward(x_t, h_prev, c_prev, params, dropout_mask), x, states, mask)
    return out, (h_T, c_T), cache


def lstm_backward(dout, dstate, cache, grads, state_grads=None):
    """BPTT of :func:`lstm_forward`: dout (B, T, H), dstate (dh_T, dc_T) or None -> (dx, (dh_0, dc_0)).

    ``state_grads`` (a dict, optional) receives {"h": (B, T, H), "c": (B, T, H)}: dL/dh_t and the
    total dL/dc_t (:func:`lstm_dc_total`) reaching each step.
    """
    B, _, H = dout.shape
    dstates = _state_parts(dstate, B, H, dout.dtype, 2)

    def totals(d_real, step_cache):
        dh_total, dc = d_real
        return dh_total, lstm_dc_total(dh_total, dc, step_cache)
    dx, (dh0, dc0) = _sequence_backward(lstm_step_backward, dout, dstates, cache, grads, state_grads,
                                        ("h", "c"), totals)
    return dx, (dh0, dc0)


def gru_forward(x, state, params, mask=None, dropout_mask=None):
    """GRUCell over a sequence: x (B, T, D), state h (B, H) or None -> (out (B, T, H), h_T, cache).

    The form follows ``params`` as in :func:`gru_step_forward` (no ``b_hn``: reset_after=False).
    ``dropout_mask`` u (B, H) or None: recurrent dropout, the same u at every step."""
    B, _, _ = x.shape
    states = _state_parts(state, B, params["W_h"].shape[0], x.dtype, 1)
    out, (h_T,), cache = _sequence_forward(
        lambda x_t, h_prev: gru_step_forward(x_t, h_prev, params, dropout_mask), x, states, mask)
    return out, h_T, cache


def gru_backward(dout, dstate, cache, grads, state_grads=None):
    """BPTT of :func:`gru_forward`: dout (B, T, H), dstate dL/dh_T or None -> (dx (B, T, D), dh_0 (B, H)).

    ``state_grads`` (a dict, optional) receives {"h": (B, T, H)}, dL/dh_t reaching each step."""
    B, _, H = dout.shape
    dstates = _state_parts(dstate, B, H, dout.dtype, 1)
    dx, (dh0,) = _sequence_backward(gru_step_backward, dout, dstates, cache, grads, state_grads)
    return dx, dh0
