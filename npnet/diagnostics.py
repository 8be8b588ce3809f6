"""Measuring exploding and vanishing gradients: per-step state-gradient norms, gradient
statistics per training step, and the state-to-state Jacobians behind both.

Nothing here changes how a model trains; it reads what the cells record when asked
(``cell.track_state_grads``) and replays single steps through the cells' own bprop.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager

import numpy as np

from .layer import NpnetError


# -- per-time-step norms of dL/dh_t ---------------------------------------------------
def _cells(model) -> list:
    """(name, cell) pairs of a cell or of anything exposing recurrent_cells()."""
    if hasattr(model, "recurrent_cells"):
        return list(model.recurrent_cells())
    if hasattr(model, "track_state_grads"):
        return [("cell", model)]
    raise NpnetError(f"{type(model).__name__} has no recurrent cells to track")


@contextmanager
def track_state_grads(model):
    """Within the block, every bprop of the model's cells records dL/dstate_t norms.

    Example::

        with track_state_grads(model) as norms:
            model.fprop(x); model.bprop(dout)
        norms()["l0"]["h"]        # (B, T) ||dL/dh_t|| of layer 0

    ``norms()`` returns {cell name: {"h": (B, T)[, "c": (B, T)]}} from the last bprop.
    """
    cells = _cells(model)
    before = [c.track_state_grads for _, c in cells]
    for _, c in cells:
        c.track_state_grads = True

    def norms() -> dict:
        return {name: dict(c.state_grad_norms or {}) for name, c in cells}

    try:
        yield norms
    finally:
        for (_, c), b in zip(cells, before):
            c.track_state_grads = b


# -- gradient statistics per training step ------------------------------------------------
def grad_stats(grads: dict) -> dict:
    """Statistics of a gradient dict: the global L2 norm and, per parameter, norm, mean |g|, max |g|.

    Returns ``{"global_norm": float, "mean_abs": float, "max_abs": float,
    "params": {name: {"norm", "mean_abs", "max_abs"}}}`` (computed in float64).
    """
    per, sq, total_abs, n, mx = {}, 0.0, 0.0, 0, 0.0
    for name, g in grads.items():
        g64 = np.asarray(g, dtype=np.float64)
        a = np.abs(g64)
        s = float(np.sum(a))
        m = float(a.max()) if a.size else 0.0
        nrm = float(np.sqrt(np.sum(g64 * g64)))
        per[name] = {"norm": nrm, "mean_abs": s / max(a.size, 1), "max_abs": m}
        sq += nrm * nrm
        total_abs += s
        n += a.size
        mx = max(mx, m)
    return {"global_norm": float(np.sqrt(sq)), "mean_abs": total_abs / max(n, 1),
            "max_abs": mx, "params": per}


class GradientMonitor:
    """Collects :func:`grad_stats` once per training step (call ``record(grads)`` before clipping).

    ``rows()`` gives one flat dict per step (step, global_norm, mean_abs, max_abs and
    ``<param>/norm`` etc.), ready for a CSV writer or a plot.
    """

    def __init__(self):
        self.history: list[dict] = []

    def record(self, grads: dict, step: int | None = None) -> dict:
        stats = grad_stats(grads)
        stats["step"] = len(self.history) if step is None else int(step)
        self.history.append(stats)
        return stats

    def rows(self) -> list[dict]:
        out = []
        for s in self.history:
            row = {"step": s["step"], "global_norm": s["global_norm"],
                   "mean_abs": s["mean_abs"], "max_abs": s["max_abs"]}
            for name, p in s["params"].items():
                for k, v in p.items():
                    row[f"{name}/{k}"] = v
            out.append(row)
        return out


# -- state-to-state Jacobians -----------------------------------------------------------------
def state_jacobians(cell, x: np.ndarray, state=None) -> np.ndarray:
    """The Jacobians d s_t / d s_{t-1} along the trajectory the cell takes on ``x``.

    ``s_t`` is the cell's whole state: h_t (H values) for the RNN and GRU, the
    concatenation [h_t, c_t] (2H values) for the LSTM. Each Jacobian is exact: it is
    obtained by running one step through the cell's own fprop/bprop with the unit
    vectors as upstream gradients of the new state (batched, one call per step).

    Parameters
    ----------
    cell : a recurrent cell (BasicRNNCell, LSTMCell, GRUCell)
    x : ndarray of shape (B, T, D)
    state : the initial state, or None for zeros

    Returns
    -------
    J : ndarray of shape (T, B, S, S) with ``J[t, b, i, j] = d s_t[i] / d s_{t-1}[j]``
        for batch row b (t counted from 0), S = H * number of state arrays.
    """
    x = np.asarray(x, dtype=cell.dtype)
    if x.ndim != 3:
        raise NpnetError(f"x must have shape (B, T, D), got {x.shape}")
    B, T, _ = x.shape
    H = cell.hidden_size
    k = len(cell.state_names)
    S = k * H
    st = cell.unpack_state(state, B)
    J = np.empty((T, B, S, S), dtype=np.float64)
    eye = np.eye(S, dtype=cell.dtype)                            # (S, S) unit upstream gradients
    # A shallow copy shares the weights but has its own cache and gradients, so the cell's
    # pending fprop (if any) and its accumulated gradients are left as they were.
    scratch = copy.copy(cell)
    scratch.grads = {n: np.zeros_like(g) for n, g in cell.grads.items()}
    scratch.track_state_grads = False
    for t in range(T):
        # replicate every batch row S times: row (b, i) carries the unit gradient e_i
        xt = np.repeat(x[:, t:t + 1], S, axis=0)                  # (B*S, 1, D)
        s_rep = tuple(np.repeat(p, S, axis=0) for p in st)       # each (B*S, H)
        scratch.fprop(xt, cell.pack_state(s_rep))
        up = np.tile(eye, (B, 1))                                 # (B*S, S)
        dstate = tuple(up[:, j * H:(j + 1) * H] for j in range(k))
        _, d0 = scratch.bprop(np.zeros((B * S, 1, H), cell.dtype), cell.pack_state(dstate))
        d0 = d0 if isinstance(d0, tuple) else (d0,)
        J[t] = np.concatenate(d0, axis=1).reshape(B, S, S)        # row i: d s_t[i] / d s_{t-1}
        _, new = scratch.fprop(x[:, t:t + 1], cell.pack_state(st))  # advance the trajectory
        scratch.clear_cache()
        st = new if isinstance(new, tuple) else (new,)
    return J


def largest_singular_values(J: np.ndarray) -> np.ndarray:
    """Spectral norm of each Jacobian: (T, B, S, S) -> (T, B)."""
    return np.linalg.svd(J, compute_uv=False)[..., 0]


def jacobian_product_norms(J: np.ndarray, log10: bool = False) -> np.ndarray:
    """||d s_{T-1} / d s_{T-1-k}||_2 for k = 1..T: the norm of the product of the last k Jacobians.

    This is the factor by which a gradient arriving at the last state can grow or
    shrink on its way k steps back: dL/ds_{T-1-k} = dL/ds_{T-1} J_{T-1} ... J_{T-k}.
    The running product is renormalised at every step (its scale kept as a log), so
    products far beyond the float range neither overflow nor underflow.

    Parameters
    ----------
    J : (T, B, S, S) from :func:`state_jacobians`
    log10 : return log10 of the norms (exact even where the norm itself would overflow)

    Returns
    -------
    (T, B) array; row k-1 is the norm (or its log10) of the product over the last k steps.
    """
    T, B, S, _ = J.shape
    logs = np.empty((T, B))
    P = np.broadcast_to(np.eye(S), (B, S, S)).copy()             # (B, S, S) running product / scale
    scale = np.zeros(B)                                           # (B,) log10 of the factored-out scale
    for k in range(1, T + 1):
        P = P @ J[T - k]                                          # d s_{T-1} / d s_{T-1-k}, rescaled
        n = np.linalg.svd(P, compute_uv=False)[:, 0]              # (B,)
        zero = n == 0.0
        safe = np.where(zero, 1.0, n)
        P /= safe[:, None, None]
        scale += np.log10(safe)
        logs[k - 1] = np.where(zero, -np.inf, scale)
    if log10:
        return logs
    with np.errstate(over="ignore"):
        return np.power(10.0, logs)
