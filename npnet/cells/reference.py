"""A plain, step-by-step LSTM (forward and BPTT) that the fast npnet.LSTMCell is tested against.

One function per step forward and one per step backward, a Python loop over time, a
per-row mask; no buffers, no in-place tricks, no speed. Not part of the library.
"""
from __future__ import annotations

import numpy as np


def sigmoid(a):
    """Stable logistic function: for a >= 0 use 1 / (1 + exp(-a)), else exp(a) / (1 + exp(a))."""
    out = np.empty_like(a)
    pos = a >= 0
    out[pos] = 1.0 / (1.0 + np.exp(-a[pos]))
    e = np.exp(a[~pos])
    out[~pos] = e / (1.0 + e)
    return out


def lstm_step_forward(x, h_prev, c_prev, W_x, W_h, b):
    """One LSTM step for a batch, gate order i, f, g, o.

    x (B, D), h_prev (B, H), c_prev (B, H), W_x (D, 4H), W_h (H, 4H), b (4H,)
    Returns h (B, H), c (B, H) and a step cache dict.
    """
    H = h_prev.shape[1]
    a = x @ W_x + h_prev @ W_h + b                 # (B, 4H) pre-activations
    i = sigmoid(a[:, 0 * H:1 * H])                 # input gate
    f = sigmoid(a[:, 1 * H:2 * H])                 # forget gate
    g = np.tanh(a[:, 2 * H:3 * H])                 # candidate
    o = sigmoid(a[:, 3 * H:4 * H])                 # output gate
    c = f * c_prev + i * g
    tc = np.tanh(c)
    h = o * tc
    cache = {"x": x, "h_prev": h_prev, "c_prev": c_prev, "i": i, "f": f, "g": g, "o": o, "tc": tc}
    return h, c, cache


def lstm_step_backward(dh, dc, cache, W_x, W_h):
    """Backward of one step: total dL/dh_t (B, H) and dL/dc_t from step t+1 (B, H).

    Returns dx (B, D), dh_prev (B, H), dc_prev (B, H), dW_x (D, 4H), dW_h (H, 4H), db (4H,)
    and the total dL/dc_t (B, H) (including the path through h_t), for diagnostics.
    """
    i, f, g, o, tc = cache["i"], cache["f"], cache["g"], cache["o"], cache["tc"]
    do = dh * tc
    dc = dc + dh * o * (1.0 - tc ** 2)             # total dL/dc_t
    di = dc * g
    df = dc * cache["c_prev"]
    dg = dc * i
    dc_prev = dc * f
    da_i = di * i * (1.0 - i)
    da_f = df * f * (1.0 - f)
    da_g = dg * (1.0 - g ** 2)
    da_o = do * o * (1.0 - o)
    da = np.concatenate([da_i, da_f, da_g, da_o], axis=1)   # (B, 4H)
    dx = da @ W_x.T
    dh_prev = da @ W_h.T
    dW_x = cache["x"].T @ da
    dW_h = cache["h_prev"].T @ da
    db = da.sum(axis=0)
    return dx, dh_prev, dc_prev, dW_x, dW_h, db, dc


def lstm_forward(x, h0, c0, params, mask=None):
    """Run a whole batch-first sequence, one step and one row at a time.

    x (B, T, D), h0, c0 (B, H), params {"W_x", "W_h", "b"}, mask (B, T) bool or None.
    On a padded step (mask False) the row keeps its (h, c) and outputs zero.
    Returns out (B, T, H), (h_T, c_T), and a cache list for lstm_backward.
    """
    B, T, _ = x.shape
    H = h0.shape[1]
    if mask is None:
        mask = np.ones((B, T), dtype=bool)
    out = np.zeros((B, T, H))
    h = h0.copy()
    c = c0.copy()
    caches = []
    for t in range(T):
        row_caches = []
        for n in range(B):
            if mask[n, t]:
                hn, cn, cache = lstm_step_forward(x[n:n + 1, t].copy(), h[n:n + 1].copy(), c[n:n + 1].copy(),
                                                  params["W_x"], params["W_h"], params["b"])
                h[n] = hn[0]
                c[n] = cn[0]
                out[n, t] = hn[0]
                row_caches.append(cache)
            else:
                row_caches.append(None)            # state carried, output stays zero
        caches.append(row_caches)
    return out, (h, c), caches


def lstm_backward(dout, dh_T, dc_T, caches, params):
    """BPTT for lstm_forward: dout (B, T, H), dh_T, dc_T (B, H).

    Returns dx (B, T, D), (dh_0, dc_0), grads {"W_x", "W_h", "b"} and the total state
    gradients {"h": (B, T, H), "c": (B, T, H)} reaching each step's (h_t, c_t).
    """
    B, T, H = dout.shape
    D = params["W_x"].shape[0]
    dx = np.zeros((B, T, D))
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dh = dh_T.copy()
    dc = dc_T.copy()
    total = {"h": np.zeros((B, T, H)), "c": np.zeros((B, T, H))}
    for t in range(T - 1, -1, -1):
        for n in range(B):
            cache = caches[t][n]
            if cache is None:
                total["h"][n, t] = dh[n]           # padded: dh, dc pass straight to step t-1
                total["c"][n, t] = dc[n]
                continue
            dh_total = dh[n:n + 1] + dout[n:n + 1, t]
            dxn, dhn, dcn, dW_x, dW_h, db, dc_total = lstm_step_backward(
                dh_total, dc[n:n + 1], cache, params["W_x"], params["W_h"])
            total["h"][n, t] = dh_total[0]
            total["c"][n, t] = dc_total[0]
            dx[n, t] = dxn[0]
            dh[n] = dhn[0]
            dc[n] = dcn[0]
            grads["W_x"] += dW_x
            grads["W_h"] += dW_h
            grads["b"] += db
    return dx, (dh, dc), grads, total
