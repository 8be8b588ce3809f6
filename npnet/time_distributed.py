"""TimeDistributed: one feed-forward layer applied to every time step, in the sequence-model call
convention, so that the runner, the Learner and the gradient checker train and check a per-step
model with no recurrence (e.g. a digit classifier over images (B, T, 1, 28, 28)).
"""
from __future__ import annotations

import numpy as np

from .layer import Layer, ShapeError, check_input
from .sequential import check_layer, layer_config, layer_from_config


class TimeDistributed(Layer):
    """y_t = f(x_t) at every step t with one shared layer f (``keras.layers.TimeDistributed``).

    Equations (x (B, T, ...))::

        forward:   y[b, t] = f(x[b, t])     one call of f on x reshaped to (B*T, ...), output
                                            (B*T, F) reshaped to (B, T, F)
        backward:  dx = f.bprop(dy as (B*T, F)) as x's shape; f's parameter gradients add up
                   over all B*T steps (the weights are shared over time)

    Parameters
    ----------
    layer : an object with fprop/bprop/params/grads (e.g. an :class:`npnet.Sequential`) mapping
        (N, ...) to (N, F); its dtype becomes this layer's.

    Call convention: that of a sequence model, unlike Keras's (which returns y alone):
    ``y, None = fprop(x, state=None, mask=None)`` and ``dx, None = bprop(dy, dstate=None)``.
    There is no state; every step is computed and ``mask`` is ignored (the loss's mask decides
    which steps count). ``params``/``grads`` are the layer's own dicts; ``train()``/``eval()``
    reach the layer.

    Cache: x's shape; the layer keeps its own cache.
    """

    def __init__(self, layer):
        check_layer(layer, "TimeDistributed layer")
        super().__init__(getattr(layer, "dtype", np.float64))
        self.layer, self.params, self.grads = layer, layer.params, layer.grads
        self.return_sequences, self.training = True, True

    def get_config(self) -> dict:
        return {"layer": layer_config(self.layer)}

    @classmethod
    def from_config(cls, config: dict) -> "TimeDistributed":
        return cls(layer_from_config(config["layer"]))

    def train(self) -> "TimeDistributed":
        self.training = True
        if hasattr(self.layer, "train"):
            self.layer.train()
        return self

    def eval(self) -> "TimeDistributed":
        self.training = False
        if hasattr(self.layer, "eval"):
            self.layer.eval()
        return self

    def clear_cache(self) -> None:
        self._cache = None
        if hasattr(self.layer, "clear_cache"):
            self.layer.clear_cache()

    def fprop(self, x, state=None, mask=None):
        """x (B, T, ...) -> (y (B, T, F), None)."""
        x = check_input(x, "x", -1, None, self.dtype)
        if x.ndim < 3 or x.shape[0] < 1 or x.shape[1] < 1:
            raise ShapeError(f"TimeDistributed expects x of shape (B, T, ...) with B, T >= 1, got {x.shape}")
        B, T = x.shape[:2]
        y = self.layer.fprop(x.reshape(B * T, *x.shape[2:]))                 # (B*T, F)
        if np.ndim(y) != 2 or np.shape(y)[0] != B * T:
            raise ShapeError(f"the layer must map (B*T, ...) to (B*T, F), got shape {np.shape(y)}")
        self._cache = x.shape
        return y.reshape(B, T, -1), None

    def bprop(self, dy, dstate=None):
        """dy (B, T, F) -> (dx like x, None)."""
        shape = self._take_cache()
        dy = check_input(dy, "dy", 3, None, self.dtype)
        if dy.shape[:2] != shape[:2]:
            raise ShapeError(f"TimeDistributed.bprop expects dy of shape {shape[:2]} + (F,), got {dy.shape}")
        return self.layer.bprop(dy.reshape(shape[0] * shape[1], -1)).reshape(shape), None


__all__ = ["TimeDistributed"]
