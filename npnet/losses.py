"""Losses: mean squared error and softmax cross-entropy, each a scalar with its gradient.

A loss turns predictions (..., V) and targets into one number and hands back
dL/dpred; an optional boolean mask over the leading axes picks the scored
positions (padding in a batch of variable-length sequences). No parameters.
"""
from __future__ import annotations

import numpy as np

from .activations import log_softmax, softmax
from .layer import Layer, ShapeError, check_input


def _check_mask(mask, lead: tuple) -> np.ndarray | None:
    """Validate a mask over the leading axes ``lead``; return it or None."""
    if mask is None:
        return None
    if isinstance(mask, np.bool_):                            # 0-d mask for a single position
        mask = np.asarray(mask)
    if not isinstance(mask, np.ndarray) or mask.dtype != np.bool_:
        got = f"dtype {mask.dtype}" if isinstance(mask, np.ndarray) else type(mask).__name__
        raise ShapeError(f"mask must be a bool array of shape {lead} (pred.shape[:-1]), got {got}")
    if mask.shape != lead:
        raise ShapeError(f"mask must have shape {lead} (pred.shape[:-1]), got {mask.shape}")
    return mask


def _count(mask: np.ndarray | None, lead: tuple) -> int:
    """Number of scored positions; refuses zero (the mean would be 0/0)."""
    n = int(np.prod(lead, dtype=np.int64)) if mask is None else int(np.count_nonzero(mask))
    if n == 0:
        raise ShapeError("no position is scored: the mask is all False or pred has no positions; "
                         f"pred.shape[:-1] = {lead}")
    return n


class MSELoss(Layer):
    """Mean squared error over the scored elements.

    Equations (N = number of scored positions, V = pred.shape[-1], m_n in {0, 1})::

        forward:   L = 1 / (N V) * sum_n m_n sum_v (pred_nv - target_nv)^2
        backward:  dL/dpred_nv = 2 m_n (pred_nv - target_nv) / (N V)

    Without a mask this is torch.nn.MSELoss() (reduction "mean").

    Parameters
    ----------
    dtype : float32 or float64
        Predictions and targets are cast to it; the loss and gradient keep it.

    Call
    ----
    ``loss = fprop(pred, target, mask=None)``

    pred : ndarray of shape (..., V)
    target : ndarray of shape (..., V), same shape as ``pred``
    mask : bool ndarray of shape pred.shape[:-1] or None (all scored)

    ``dpred = bprop()`` returns an array shaped like ``pred``.
    Cache: the masked, scaled difference 2 m (pred - target) / (N V), which is
    exactly the gradient; nothing else is needed.
    """

    def __init__(self, dtype=np.float64):
        super().__init__(dtype, rng=0)

    def get_config(self) -> dict:
        return {"dtype": self.dtype.name}

    def fprop(self, pred, target, mask=None):
        """pred (..., V), target (..., V), mask pred.shape[:-1] bool -> scalar loss (dtype)."""
        pred = check_input(pred, "pred", -1, None, self.dtype)
        target = check_input(target, "target", -1, None, self.dtype)
        if target.shape != pred.shape:
            raise ShapeError(f"target must have the shape of pred {pred.shape}, got {target.shape}")
        lead, V = pred.shape[:-1], pred.shape[-1]
        mask = _check_mask(mask, lead)
        n = _count(mask, lead) * V
        diff = pred - target                                  # (..., V)
        if mask is not None:
            diff *= mask[..., None]
        loss = np.vdot(diff, diff) / n
        diff *= 2.0 / n                                       # = dL/dpred, kept for bprop
        self._cache = {"dpred": diff}
        return self.dtype.type(loss)

    def bprop(self):
        """-> dL/dpred, shaped and typed like pred (one call per fprop)."""
        return self._take_cache()["dpred"]

    @staticmethod
    def predict(pred):
        """The prediction itself (regression): here for symmetry with the classifier."""
        return pred


class SoftmaxCrossEntropyLoss(Layer):
    """Softmax cross-entropy against integer class labels, mean over scored positions.

    Equations (N = number of scored positions, C classes, m_n in {0, 1})::

        forward:   log p_n = z_n - logsumexp(z_n)              (stable: shifted by max_c z_nc)
                   L = -1 / N * sum_n m_n log p_n[y_n]
        backward:  dL/dz_nc = m_n (p_nc - [c == y_n]) / N

    Without a mask this is torch.nn.CrossEntropyLoss() on logits flattened to (N, C).

    Parameters
    ----------
    dtype : float32 or float64
        Logits are cast to it; the loss and gradient keep it.
    ignore_index : int or None
        Targets equal to it are not scored (PyTorch's ``ignore_index``): the way to score
        only some steps of a sequence (a task's score mask) without passing that mask to the
        model, where a mask means padding. When nothing at all is scored the loss is 0 and its
        gradient zero (a truncated-BPTT window before the first scored step), instead of 0/0.

    Call
    ----
    ``loss = fprop(pred, target, mask=None)``

    pred : ndarray of shape (..., C)
        Unnormalised logits; any finite values (1e4 is fine).
    target : integer ndarray of shape pred.shape[:-1], values in [0, C)
    mask : bool ndarray of shape pred.shape[:-1] or None (all scored)

    ``dpred = bprop()`` returns an array shaped like ``pred``.
    Cache: the probabilities p (..., C), the targets and the mask; p - onehot is
    formed in bprop.
    """

    def __init__(self, dtype=np.float64, ignore_index: int | None = None):
        super().__init__(dtype, rng=0)
        self.ignore_index = None if ignore_index is None else int(ignore_index)

    def get_config(self) -> dict:
        cfg = {"dtype": self.dtype.name}
        if self.ignore_index is not None:
            cfg["ignore_index"] = self.ignore_index
        return cfg

    def _check_target(self, target, lead: tuple, C: int) -> np.ndarray:
        target = np.asarray(target)
        if target.dtype.kind not in "iu":
            raise ShapeError(f"target must hold integer class indices in [0, {C}) of shape {lead}, "
                             f"got dtype {target.dtype}")
        if target.shape != lead:
            raise ShapeError(f"target must have shape {lead} (pred.shape[:-1]), got {target.shape}")
        if target.size and (target.min() < 0 or target.max() >= C):
            raise ShapeError(f"target values must lie in [0, {C}), got min {target.min()}, max {target.max()}")
        return target

    def fprop(self, pred, target, mask=None):
        """pred (..., C) logits, target pred.shape[:-1] ints, mask same shape bool -> scalar loss."""
        pred = check_input(pred, "pred", -1, None, self.dtype)
        lead, C = pred.shape[:-1], pred.shape[-1]
        mask = _check_mask(mask, lead)
        if self.ignore_index is not None:
            target = np.asarray(target)
            scored = target != self.ignore_index                 # (...,) bool
            mask = scored if mask is None else (mask & scored)
            target = np.where(scored, target, 0).astype(target.dtype, copy=False)
            if not mask.any():                                  # nothing scored: L = 0, dL = 0
                self._check_target(target, lead, C)
                self._cache = {"p": np.zeros(pred.shape, self.dtype), "target": target,
                               "mask": mask, "n": 1}
                return self.dtype.type(0.0)
        target = self._check_target(target, lead, C)
        n = _count(mask, lead)
        logp = log_softmax(pred, axis=-1)                      # (..., C)
        picked = np.take_along_axis(logp, target[..., None], axis=-1)[..., 0]   # (...,) log p[y]
        if mask is not None:
            picked = picked[mask]
        loss = -picked.sum() / n
        np.exp(logp, out=logp)                                 # p, in place: (..., C)
        self._cache = {"p": logp, "target": target.copy(),             # copies: the caller may reuse
                       "mask": None if mask is None else mask.copy(), "n": n}
        return self.dtype.type(loss)

    def bprop(self):
        """-> dL/dpred = m (p - onehot(target)) / N, shaped and typed like pred."""
        cache = self._take_cache()
        d = cache["p"]                                         # (..., C), ours: modified in place
        idx = cache["target"][..., None]                       # (..., 1)
        picked = np.take_along_axis(d, idx, axis=-1)           # (..., 1) p[y]
        picked -= 1.0
        np.put_along_axis(d, idx, picked, axis=-1)             # p - onehot(y)
        if cache["mask"] is not None:
            d *= cache["mask"][..., None]
        d *= 1.0 / cache["n"]
        return d

    def probs(self, pred) -> np.ndarray:
        """Softmax probabilities p (..., C) of logits pred (..., C), computed stably."""
        pred = check_input(pred, "pred", -1, None, self.dtype)
        return softmax(pred, axis=-1)

    @staticmethod
    def predict(pred) -> np.ndarray:
        """Most probable class (argmax of the logits): pred (..., C) -> (...,) int."""
        return np.argmax(pred, axis=-1)
