"""SequenceRunner: one training step of a sequence model = forward, loss, (truncated) BPTT, clip, update.

It owns the choices a training step makes over time: full or truncated BPTT,
carrying the state across batches (stateful mode), gradient clipping and the
non-finite check. It knows nothing of epochs, logging or data; see npnet.learner.
"""
from __future__ import annotations

import contextlib
import math

import numpy as np

from .clip import NonFiniteError, check_finite, clip_grad_norm, clip_grad_value, global_norm
from ..layer import NonFiniteInputError, NpnetError, ShapeError

CLIP_MODES = ("norm", "value", None)


class SequenceRunner:
    """Train a sequence model with full or truncated backpropagation through time.

    Truncated BPTT with window k (Williams & Peng 1990; min-char-rnn, Chainer's
    ``unchain_backward``)::

        windows  [0, k), [k, 2k), ...  of the T steps
        for each window w:  out_w, s = model.fprop(x_w, s, mask_w)     s: the state's VALUE carried in
                            L_w = loss(out_w, y_w, mask_w)
                            model.bprop(a_w * dL_w/dout_w, dstate=None)   the backward starts with a
                                                                          zero state gradient
        L = sum_w a_w L_w,   a_w = (scored positions in w) / (scored positions in the batch)

    so L is the full-sequence mean loss and the accumulated gradient is its gradient
    with every path through a window boundary cut. Gradients of all windows add up in
    ``model.grads`` and the optimiser takes ONE step per batch (per ``train_step``),
    after clipping. With k >= T there is one window of weight 1 and the step is exactly
    full BPTT.

    A last-step model (``return_sequences=False``: one output per sequence, at each row's
    last real step t_b) has its loss in the LAST window only, so truncation means::

        windows counted back from the end: the last window holds each row's last k real
        steps, [c_b, t_b] (c_b = 0 if the row has <= k real steps); the earlier steps
        [0, c_b) are the earlier windows
        s = model.fprop(x[:, :c], s0, mask_pre)          forward only: the state's VALUE
        out, _ = model.fprop(x[:, c:], s, mask_last)     out = the model's last-step output
        L = loss(out, y);  model.bprop(dL/dout, dstate=None)   zero gradient into s

    i.e. dL/dtheta with s held constant: the gradient reaches back exactly k steps from
    the output (Williams & Peng's BPTT(k) at the one scored step); the earlier windows
    carry the state forward and get no gradient, so they need no cache (running them as
    one forward call or window by window gives the same state). The windows are counted
    from the end, not from step 0 as above, so that the one window that is backpropagated
    always holds k steps rather than the T mod k left over. With a mask each row's window
    is its own last k real steps (padded steps carry the state unchanged). k >= T (or a
    row with <= k real steps) is exactly full BPTT. A bidirectional model is refused for
    k < T, as for per-step models.

    Parameters
    ----------
    model : SequenceModel (or any layer with the model call convention)
    loss : a loss with ``fprop(pred, target, mask) -> scalar`` and ``bprop() -> dpred``
    optimizer : an optimiser over ``model.params`` (``step(grads)``)
    bptt : int >= 1 or None
        Truncation window k in steps; None: full BPTT.
    clip : float > 0 or None
        Threshold for the global gradient norm (``clip_mode="norm"``) or for every
        gradient entry (``clip_mode="value"``); None: no clipping.
    clip_mode : {"norm", "value"}
    stateful : bool
        Carry the final state of each ``train_step`` into the next one (consecutive
        batches are consecutive pieces of the same B streams); ``reset_state()`` clears it.

    Attributes
    ----------
    steps : int, optimiser steps taken so far.
    grad_norms : list of float, the global gradient norm before clipping, one per step.
    state : the carried state (stateful mode) or None.
    last_output : the model output of the last train or eval step (windows concatenated).
    """

    def __init__(self, model, loss, optimizer, bptt: int | None = None, clip: float | None = 5.0,
                 clip_mode: str | None = "norm", stateful: bool = False):
        if bptt is not None and (int(bptt) != bptt or int(bptt) < 1):
            raise NpnetError(f"bptt must be an int >= 1 or None (full BPTT), got {bptt!r}")
        if clip_mode not in CLIP_MODES:
            raise NpnetError(f"clip_mode must be one of {CLIP_MODES}, got {clip_mode!r}")
        if clip is not None and not (math.isfinite(float(clip)) and float(clip) > 0):
            raise NpnetError(f"clip must be a finite number > 0 or None, got {clip!r}")
        self.model, self.loss, self.optimizer = model, loss, optimizer
        self.bptt = None if bptt is None else int(bptt)
        self.clip = None if clip is None else float(clip)
        self.clip_mode = clip_mode if clip is not None else None
        self.stateful = bool(stateful)
        self.state = None
        self.steps = 0
        self.grad_norms: list[float] = []
        self.last_output = None

    def reset_state(self) -> None:
        """Forget the carried state (stateful mode): the next step starts from zeros."""
        self.state = None

    # -- the pieces of a step -------------------------------------------------
    def _windows(self, T: int) -> list:
        k = T if self.bptt is None else self.bptt
        return [(s, min(s + k, T)) for s in range(0, T, k)]

    def _initial_state(self, B: int):
        if not self.stateful or self.state is None:
            return None
        h = self.state[0][0] if isinstance(self.state[0], tuple) else self.state[0]
        if h.shape[0] != B:
            raise ShapeError(f"stateful runner carries a state for batch size {h.shape[0]}, got a batch of {B}; "
                             "keep the batch size fixed or call reset_state()")
        return self.state

    def compute_gradients(self, x, y, mask=None) -> float:
        """Zero the gradients, run forward and (truncated) BPTT; return the loss. No update.

        x (B, T, D); y the loss targets for the model output ((B, T, V) or class indices
        (B, T), or per-sequence (B, V)/(B,) when the model returns the last step only);
        mask (B, T) bool or None. In stateful mode the final state is kept.

        **The override point for custom training modes.** A subclass that computes its
        gradients differently (a free-running unroll feeding outputs back as inputs, a
        read-in applied per frame, an extra loss term, ...) overrides only this method:
        it must zero ``model.grads``, run its forward pass and loss, ADD the gradients of
        that loss into ``model.grads`` (``model.bprop``), set ``self.last_output`` (for
        metrics) and return the loss as a float, without updating any parameter.
        :meth:`train_step`, the one training step of npnet, then does the rest (non-finite
        check, gradient norm, clipping, optimiser update); ``Learner(...,
        runner_class=MyRunner)`` trains with the subclass. See docs/training.md,
        "Custom unrolls: override compute_gradients".
        """
        x = np.asarray(x)
        if x.ndim < 3 and not (x.ndim == 2 and getattr(self.model, "takes_indices", False)):   # (B, T) ids
            raise ShapeError(f"x must have shape (B, T, D) (or (B, T, ...) for a model with a "
                             f"read-in layer, (B, T) ids for an Embedding read-in), got {x.shape}")
        B, T = x.shape[:2]
        model = self.model
        seq = getattr(model, "return_sequences", True)
        if seq:
            y = self._check_targets(y, B, T)
        model.zero_grad()
        state = self._initial_state(B)
        if not seq:                                               # the loss sits in the last window
            value, state = self._last_step_gradients(x, y, mask, state)
        else:
            total = T if mask is None else int(np.count_nonzero(mask))
            if total == 0:
                raise ShapeError("the mask scores no step of this batch")
            value, outs = 0.0, []
            for s, e in self._windows(T):
                m_w = None if mask is None else mask[:, s:e]
                out, state = model.fprop(x[:, s:e], state, m_w)
                outs.append(out)
                n = (e - s) if m_w is None else int(np.count_nonzero(m_w))
                if n == 0:                                        # nothing scored: only carry the state
                    _clear(model)
                    continue
                self._check_output(out, s, e)
                a = n / total                                     # window weight a_w
                value += a * float(self.loss.fprop(out, y[:, s:e], m_w))
                dout = self.loss.bprop()
                if a != 1.0:
                    dout = dout * np.asarray(a, dtype=dout.dtype)
                model.bprop(dout, None)                           # zero state gradient at the window end
            self.last_output = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=1)
        if self.stateful:
            self.state = state
        return value

    def _last_step_gradients(self, x, y, mask, state):
        """Last-step model: forward-only through the earlier windows, fprop + bprop of the last
        window from the state's value (see the class docstring); return (loss, final state)."""
        model, (B, T) = self.model, x.shape[:2]
        if self.bptt is None or self.bptt >= T:                   # one window: exactly full BPTT
            c_lo, m_last = 0, mask
        else:
            self._refuse_bidirectional(T)
            cut = _last_window_starts(mask, B, T, self.bptt)       # (B,) first step of each row's window
            c_lo, c_hi = int(cut.min()), int(cut.max())
            steps = np.arange(T)[None, :]                         # (1, T)
            if c_hi > 0:
                m_pre = None if mask is None else (mask & (steps < cut[:, None]))[:, :c_hi]
                state = self._advance_state(x[:, :c_hi], state, m_pre)
            m_last = None if mask is None else (mask & (steps >= cut[:, None]))[:, c_lo:]
        out, state = model.fprop(x[:, c_lo:], state, m_last)
        self._check_output(out, c_lo, T)
        value = float(self.loss.fprop(out, y, None))
        model.bprop(self.loss.bprop(), None)                      # zero state gradient at the cut
        self.last_output = out
        return value, state

    def _advance_state(self, x, state, mask):
        """Run the model forward only (no gradient will reach these steps): the final state's value.

        Rows with no real step here keep their state (a last-step model refuses such rows, so
        only the others are run)."""
        model, B = self.model, x.shape[0]
        rows = np.arange(B) if mask is None else np.flatnonzero(mask.any(axis=1))
        if rows.size == B:
            _, new = model.fprop(x, state, mask)
            _clear(model)
            return _map_state(np.copy, new)
        state = model.init_state(B) if state is None else state
        if rows.size == 0:
            return state
        _, new = model.fprop(x[rows], _map_state(lambda s: s[rows], state), mask[rows])
        _clear(model)

        def put(old, sub):
            out = np.array(old, copy=True)
            out[rows] = sub
            return out
        return _map_state(put, state, new)

    def _refuse_bidirectional(self, T: int) -> None:
        if getattr(self.model, "bidirectional", False):
            raise NpnetError(f"truncated BPTT with bptt={self.bptt} < T={T} cannot train a bidirectional model: "
                             "its reverse cell would read one window instead of the whole sequence, so it "
                             "would train on outputs other than those it computes in evaluation; use "
                             f"bptt=None (or bptt >= {T})")

    def _check_targets(self, y, B: int, T: int) -> np.ndarray:
        """Refuse targets that do not cover the (B, T) steps of a per-step model, and a cut
        that would split a bidirectional model's sequence; return y as an array.

        Without this a y of shape (B,) fails deep in the window loop (IndexError) and a y
        longer than T is silently cut to T.
        """
        y = np.asarray(y)
        if y.ndim < 2 or y.shape[:2] != (B, T):
            raise ShapeError(f"y must have shape ({B}, {T}) (class indices) or ({B}, {T}, V) for a model "
                             f"that returns every step (x has shape (B, T, ...) = ({B}, {T}, ...)), "
                             f"got {y.shape}")
        if self.bptt is not None and self.bptt < T:
            self._refuse_bidirectional(T)
        return y

    def _check_output(self, out, s: int, e: int) -> None:
        if not np.isfinite(out).all():
            raise NonFiniteError(f"model output is not finite at step {self.steps + 1} "
                                 f"(time steps {s}..{e - 1}); the loss would be NaN")

    def train_step(self, x, y, mask=None) -> float:
        """One optimiser step on a batch: gradients, non-finite check, clipping, update.

        Returns the (full-batch mean) loss as a float. Appends the pre-clip global
        gradient norm to ``grad_norms``.

        Divergence always ends in :class:`npnet.clip.NonFiniteError` naming the step number
        (1-based), never in a NumPy overflow warning or an input error of an inner layer:
        the step runs under ``np.errstate`` (overflow, invalid, divide ignored) and every
        NaN/inf it makes is caught -- in the model output or an activation between two
        layers of a finite batch, in the loss or a gradient (the parameters are then
        untouched), or in a parameter after the update (an update too large for the dtype;
        the message says the parameters now hold it). NaN or inf in ``x`` or ``y``
        themselves stays a :class:`ShapeError`: bad data, not divergence.
        """
        if hasattr(self.model, "train"):
            self.model.train()
        step = self.steps + 1
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            with _divergence_named(self.model, step, x, y):
                value = self.compute_gradients(x, y, mask)
            grads = self.model.grads
            norm = global_norm(grads)
            self.grad_norms.append(norm)
            check_finite(value, grads, step)
            if self.clip_mode == "norm":
                clip_grad_norm(grads, self.clip)
            elif self.clip_mode == "value":
                clip_grad_value(grads, self.clip)
            self.optimizer.step(grads)
        _check_params(self.model.params, step)
        self.steps += 1
        return value

    def eval_step(self, x, y, mask=None, state=None) -> float:
        """Loss on a batch in evaluation mode (no dropout, no gradients, full sequence).

        The output is left in ``last_output``; the training state is not touched.
        """
        model = self.model
        was_training = getattr(model, "training", False)
        if hasattr(model, "eval"):
            model.eval()
        try:
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"), \
                    _divergence_named(model, self.steps, x, y, "evaluation after"):
                out, _ = model.fprop(x, state, mask)
                if not np.isfinite(out).all():
                    raise NonFiniteError(f"model output is not finite in the evaluation after step {self.steps}")
        finally:
            if was_training:
                model.train()
        _clear(model)
        self.last_output = out
        loss_mask = mask if getattr(model, "return_sequences", True) else None
        value = float(self.loss.fprop(out, y, loss_mask))
        self.loss.clear_cache()                                  # no bprop follows
        return value


@contextlib.contextmanager
def _divergence_named(model, step: int, x, y, when: str = "step"):
    """Turn a NaN/inf met between two layers of a finite batch into NonFiniteError naming the step.

    An inner layer checks its input (``check_input``) and raises NonFiniteInputError; if the
    batch itself is finite, that value was made by the network: training has diverged.
    """
    try:
        yield
    except NonFiniteInputError as exc:
        _clear(model)
        if not (_all_finite(x) and _all_finite(y)):
            raise                                                # NaN/inf in the data: a ShapeError
        raise NonFiniteError(f"training diverged: a value inside the model is not finite at {when} {step} "
                             f"({exc}, although the batch is finite); lower the learning rate or clip "
                             "the gradients") from None


def _all_finite(a) -> bool:
    a = np.asarray(a)
    return a.dtype.kind not in "fc" or bool(np.isfinite(a).all())


def _check_params(params: dict, step: int) -> None:
    """After the update: a finite gradient times lr can still overflow the parameter's dtype."""
    for name, p in params.items():
        if not np.isfinite(p).all():
            raise NonFiniteError(f"parameter {name!r} is not finite after the update of step {step}: "
                                 "lr times the gradient overflowed its dtype (the parameters now hold "
                                 "NaN/inf; restore them from a checkpoint); lower the learning rate or "
                                 "clip the gradients")


def _last_window_starts(mask, B: int, T: int, k: int) -> np.ndarray:
    """(B,) first step c_b of each row's last window: the row's last k real steps lie in [c_b, T).

    Without a mask c_b = max(T - k, 0). With one, c_b is the first step after which at most k
    real steps remain (0 for a row with <= k real steps)."""
    if mask is None:
        return np.full(B, max(T - k, 0), dtype=np.intp)
    remaining = np.cumsum(mask[:, ::-1], axis=1)[:, ::-1]         # (B, T) real steps in [t, T)
    return np.count_nonzero(remaining > k, axis=1).astype(np.intp)


def _map_state(fn, state, *others):
    """Apply fn leaf-wise to a model state (a list of arrays or of tuples of arrays)."""
    if isinstance(state, (list, tuple)):
        out = [_map_state(fn, s, *(o[i] for o in others)) for i, s in enumerate(state)]
        return tuple(out) if isinstance(state, tuple) else out
    return fn(state, *others)


def _clear(model) -> None:
    """Drop the caches of a forward pass that no backward pass will consume."""
    if hasattr(model, "clear_cache"):
        model.clear_cache()
