"""Numerical gradient checking for any npnet layer, cell, model or loss.

The checker builds the scalar L = sum_k <w_k, y_k> over the outputs y_k of
``fprop`` with fixed random upstream gradients w_k, compares central
differences (L(p + eps) - L(p - eps)) / (2 eps) for every element of every
parameter, of the input and of the initial state with the analytic gradients
from ``bprop``, and reports one relative error per tensor::

    err = max_i |a_i - n_i| / max(max_i |a_i|, max_i |n_i|, tiny)

(the largest deviation measured against the tensor's own scale, so a tensor
of zeros gives 0, never 0/0). Call conventions it understands:

- ``fprop(x, ...) -> y`` with ``bprop(dy) -> dx`` (LinearLayer, conv layers);
- ``fprop(x, state, mask) -> (out, state)`` with ``bprop(dout, dstate) -> (dx, dstate0)`` (cells, models);
- ``fprop(pred, target, mask) -> scalar`` with ``bprop() -> dpred`` (losses).

Example::

    cell = npnet.LSTMCell(3, 4, rng=0)
    x = np.random.default_rng(1).standard_normal((2, 5, 3))
    errors = npnet.gradcheck(cell, x)          # {'param W_x': 3e-10, ..., 'input x': 2e-10}
    assert max(errors.values()) < 1e-6
"""
from __future__ import annotations

import numpy as np

from .layer import NpnetError

TINY = 1e-300


def rel_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |a - n| / max(|a|_inf, |n|_inf, tiny): never 0/0, 0 for two zero tensors."""
    a = np.asarray(analytic, dtype=np.float64)
    n = np.asarray(numeric, dtype=np.float64)
    if a.shape != n.shape:
        raise NpnetError(f"analytic gradient has shape {a.shape}, numeric {n.shape}")
    if a.size == 0:
        return 0.0
    scale = max(np.max(np.abs(a)), np.max(np.abs(n)), TINY)
    return float(np.max(np.abs(a - n)) / scale)


def _flatten(obj) -> list:
    """The arrays of an output structure (array, scalar, or nested tuples), in order."""
    if obj is None:
        return []
    if isinstance(obj, (tuple, list)):
        return [a for o in obj for a in _flatten(o)]
    return [np.asarray(obj, dtype=np.float64)]


def _like(obj, arrays: list):
    """Rebuild the structure of ``obj`` from a flat list of arrays (consumed in order)."""
    if obj is None:
        return None
    if isinstance(obj, (tuple, list)):
        return type(obj)(_like(o, arrays) for o in obj)
    return arrays.pop(0)


def _numeric(f, arr: np.ndarray, eps: float) -> np.ndarray:
    """Central differences of the scalar f() w.r.t. every element of ``arr`` (perturbed in place)."""
    grad = np.zeros(arr.shape, dtype=np.float64)
    flat = arr.reshape(-1)  # a view: arr is contiguous
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        fp = f()
        flat[i] = old - eps
        fm = f()
        flat[i] = old
        grad.flat[i] = (fp - fm) / (2.0 * eps)
    return grad


def gradcheck(layer, x, *args, eps: float = 1e-6, rng=0, check_params: bool = True,
              check_input: bool = True, **kwargs) -> dict:
    """Compare analytic and central-difference gradients of ``layer``.

    Parameters
    ----------
    layer : an npnet layer, cell, model or loss in float64
    x : ndarray
        The differentiable first argument of ``fprop`` (input, or prediction for a loss).
    *args, **kwargs
        Passed on to ``fprop``. For cells and models a ``state`` (second
        positional argument or keyword) is differentiated too.
    eps : float
        Finite-difference step.
    rng : Generator or int
        Seed of the random upstream gradients.

    Returns
    -------
    dict
        ``{"param <name>": err, "input x": err, "state <i>": err}``, one
        relative error per tensor (see :func:`rel_error`).
    """
    dtype = getattr(layer, "dtype", np.dtype(np.float64))
    if np.dtype(dtype) != np.float64:
        raise NpnetError(f"gradcheck needs a float64 layer, got {np.dtype(dtype)}")
    rng = np.random.default_rng(rng)
    x = np.array(x, dtype=np.float64)  # our own copy: perturbed in place
    args = list(args)
    state_in_args = hasattr(layer, "init_state") and len(args) > 0 and args[0] is not None
    state = args[0] if state_in_args else kwargs.get("state")
    state_arrays = [np.array(a, dtype=np.float64) for a in _flatten(state)]

    def call():
        st = _like(state, list(state_arrays)) if state is not None else None
        if state_in_args:
            return layer.fprop(x, st, *args[1:], **kwargs)
        if state is not None:
            return layer.fprop(x, *args, **{**kwargs, "state": st})
        return layer.fprop(x, *args, **kwargs)

    out = call()
    is_loss = not isinstance(out, tuple) and np.ndim(out) == 0
    outs = _flatten(out)
    ws = [rng.standard_normal(o.shape) for o in outs]

    def loss() -> float:
        return float(sum(np.sum(w * o) for w, o in zip(ws, _flatten(call()))))

    # analytic
    if hasattr(layer, "zero_grad"):
        layer.zero_grad()
    call()
    if is_loss:
        grads_in = layer.bprop()
        grads_in = [np.asarray(grads_in) * ws[0]]
    elif isinstance(out, tuple):
        upstream = _like(out, list(ws))          # same structure as the output
        grads_in = _flatten(layer.bprop(*upstream))
    else:
        grads_in = _flatten(layer.bprop(ws[0]))
    analytic_params = {k: np.array(g, dtype=np.float64) for k, g in getattr(layer, "grads", {}).items()}

    errors = {}
    if check_params:
        for name, p in getattr(layer, "params", {}).items():
            errors[f"param {name}"] = rel_error(analytic_params[name], _numeric(loss, p, eps))
    if check_input:
        errors["input x"] = rel_error(grads_in[0], _numeric(loss, x, eps))
    if state is not None and not is_loss:
        for i, s in enumerate(state_arrays):
            errors[f"state {i}"] = rel_error(grads_in[1 + i], _numeric(loss, s, eps))
    return errors
