"""Plain step-by-step reference of BasicRNNCell, for tests and benchmarks.

Batch-first, one step function forward and one backward, a Python loop over
time and over nothing clever. Mask handled per row with np.where.
"""
import numpy as np


def step_forward(x_t, h_prev, p, nonlinearity):
    """h_t = act(x_t W_x + h_prev W_h + b)."""
    a = x_t @ p["W_x"] + h_prev @ p["W_h"] + p["b"]
    return np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0)


def step_backward(g, x_t, h_prev, h_t, p, nonlinearity):
    """Given g = dL/dh_t, return (dx_t, dh_prev, dW_x, dW_h, db)."""
    da = g * (1.0 - h_t ** 2) if nonlinearity == "tanh" else g * (h_t > 0)
    return da @ p["W_x"].T, da @ p["W_h"].T, x_t.T @ da, h_prev.T @ da, da.sum(axis=0)


def reference_forward(p, x, h0=None, mask=None, nonlinearity="tanh"):
    """Return (out (B,T,H), h_T, trace) where trace is what reference_backward needs."""
    B, T, _ = x.shape
    H = p["W_h"].shape[0]
    h = np.zeros((B, H), x.dtype) if h0 is None else h0
    m = np.ones((B, T), bool) if mask is None else mask
    out = np.zeros((B, T, H), x.dtype)
    hs, hnews = [h], []
    for t in range(T):
        h_new = step_forward(x[:, t], h, p, nonlinearity)
        keep = m[:, t][:, None]
        out[:, t] = np.where(keep, h_new, 0.0)
        h = np.where(keep, h_new, h)
        hs.append(h)
        hnews.append(h_new)
    return out, h, (x, hs, hnews, m)


def reference_backward(p, trace, dout, dh_T=None, nonlinearity="tanh"):
    """Return (dx, dh0, grads dict)."""
    x, hs, hnews, m = trace
    B, T, _ = x.shape
    grads = {k: np.zeros_like(v) for k, v in p.items()}
    dx = np.zeros_like(x)
    dh = np.zeros_like(hs[0]) if dh_T is None else dh_T.copy()
    for t in reversed(range(T)):
        keep = m[:, t][:, None]
        g = np.where(keep, dout[:, t] + dh, 0.0)      # gradient reaching the new state
        dx_t, dh_prev, dWx, dWh, db = step_backward(g, x[:, t], hs[t], hnews[t], p, nonlinearity)
        dx[:, t] = dx_t
        grads["W_x"] += dWx
        grads["W_h"] += dWh
        grads["b"] += db
        dh = dh_prev + np.where(keep, 0.0, dh)           # padded rows pass dh straight through
    return dx, dh, grads
