"""A plain, step-by-step GRU (PyTorch formulation) used only to test npnet.GRUCell.

One function per step forward and backward, explicit loops over time and over
batch rows for the mask, separate gate matrices, no buffers and no tricks: slow
and obviously correct. Not imported by the library.
"""
from __future__ import annotations

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def split(params, H):
    """The per-gate matrices and biases of a params dict (W_x (D,3H), W_h (H,3H), b (3H,), b_hn (H,))."""
    Wx, Wh, b = params["W_x"], params["W_h"], params["b"]
    return {
        "W_xr": Wx[:, :H], "W_xz": Wx[:, H:2 * H], "W_xn": Wx[:, 2 * H:],
        "W_hr": Wh[:, :H], "W_hz": Wh[:, H:2 * H], "W_hn": Wh[:, 2 * H:],
        "b_r": b[:H], "b_z": b[H:2 * H], "b_n": b[2 * H:], "b_hn": params["b_hn"],
    }


def gru_step_forward(x, h_prev, p):
    """One GRU step. x (B, D), h_prev (B, H), p from :func:`split` -> h (B, H), step cache dict."""
    r = sigmoid(x @ p["W_xr"] + h_prev @ p["W_hr"] + p["b_r"])
    z = sigmoid(x @ p["W_xz"] + h_prev @ p["W_hz"] + p["b_z"])
    q = h_prev @ p["W_hn"] + p["b_hn"]
    n = np.tanh(x @ p["W_xn"] + p["b_n"] + r * q)
    h = (1.0 - z) * n + z * h_prev
    return h, {"x": x, "h_prev": h_prev, "r": r, "z": z, "q": q, "n": n}


def gru_step_backward(dh, c, p):
    """Backward of one step. dh = dL/dh (B, H) -> dx (B, D), dh_prev (B, H), dict of param grads."""
    x, h_prev, r, z, q, n = c["x"], c["h_prev"], c["r"], c["z"], c["q"], c["n"]
    dn = dh * (1.0 - z)
    dz = dh * (h_prev - n)
    dh_prev = dh * z
    da_n = dn * (1.0 - n ** 2)
    dr = da_n * q
    dq = da_n * r
    da_r = dr * r * (1.0 - r)
    da_z = dz * z * (1.0 - z)
    dx = da_r @ p["W_xr"].T + da_z @ p["W_xz"].T + da_n @ p["W_xn"].T
    dh_prev = dh_prev + da_r @ p["W_hr"].T + da_z @ p["W_hz"].T + dq @ p["W_hn"].T
    grads = {
        "W_x": np.concatenate([x.T @ da_r, x.T @ da_z, x.T @ da_n], axis=1),
        "W_h": np.concatenate([h_prev.T @ da_r, h_prev.T @ da_z, h_prev.T @ dq], axis=1),
        "b": np.concatenate([da_r.sum(0), da_z.sum(0), da_n.sum(0)]),
        "b_hn": dq.sum(0),
    }
    return dx, dh_prev, grads


def gru_forward(x, h0, params, mask=None):
    """x (B, T, D), h0 (B, H), mask (B, T) bool or None -> out (B, T, H), h_T (B, H), caches."""
    B, T, _ = x.shape
    H = params["W_h"].shape[0]
    p = split(params, H)
    if mask is None:
        mask = np.ones((B, T), dtype=bool)
    h = h0.copy()
    out = np.zeros((B, T, H))
    caches = []
    for t in range(T):
        h_new, c = gru_step_forward(x[:, t], h, p)
        caches.append(c)
        h = h.copy()                          # the cache keeps h_prev; never overwrite it
        for i in range(B):
            if mask[i, t]:
                out[i, t] = h_new[i]
                h[i] = h_new[i]
            # else: padded step, h[i] unchanged and out[i, t] stays 0
    return out, h, caches


def gru_backward(dout, dh_T, caches, params, mask=None):
    """Backward of :func:`gru_forward`. -> dx (B, T, D), dh0 (B, H), dict of param grads."""
    B, T, H = dout.shape
    D = params["W_x"].shape[0]
    p = split(params, H)
    if mask is None:
        mask = np.ones((B, T), dtype=bool)
    grads = {k: np.zeros_like(v) for k, v in params.items()}
    dx = np.zeros((B, T, D))
    dh = dh_T.copy()
    for t in reversed(range(T)):
        g = np.zeros((B, H))                  # gradient reaching this step's update
        carry = np.zeros((B, H))              # gradient passed straight through a padded row
        for i in range(B):
            if mask[i, t]:
                g[i] = dout[i, t] + dh[i]
            else:
                carry[i] = dh[i]
        dx_t, dh_prev, g_params = gru_step_backward(g, caches[t], p)
        dx[:, t] = dx_t
        dh = dh_prev + carry
        for k in grads:
            grads[k] += g_params[k]
    return dx, dh, grads
