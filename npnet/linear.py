"""LinearLayer: an affine map on the last axis, shared by every time step."""
from __future__ import annotations

import numpy as np

from . import init as initializers
from .layer import Layer, ShapeError, as_size, check_input


class LinearLayer(Layer):
    """y = x W + b on inputs of any leading shape.

    Equations::

        forward:   y = x W + b                       x: (..., D), W: (D, V), b: (V,)
        backward:  dx = dy W^T
                   dW += x^T dy   (leading axes flattened)
                   db += sum(dy over leading axes)

    Parameters
    ----------
    in_features : int (D)
    out_features : int (V)
    bias : bool, default True
    weight_init : initialiser or name, default glorot_uniform
    dtype, rng : see :class:`npnet.layer.Layer`

    Cache: the input ``x`` (needed for dW); nothing else.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 weight_init="glorot_uniform", dtype=np.float64, rng=None):
        super().__init__(dtype, rng)
        self.in_features = as_size(in_features, "in_features")
        self.out_features = as_size(out_features, "out_features")
        self.bias = bool(bias)
        w = initializers.get(weight_init)((self.in_features, self.out_features), self.rng, self.dtype)
        self.add_param("W", w)
        if self.bias:
            self.add_param("b", np.zeros(self.out_features))

    def get_config(self) -> dict:
        return {"in_features": self.in_features, "out_features": self.out_features,
                "bias": self.bias, "dtype": self.dtype.name}

    def fprop(self, x: np.ndarray) -> np.ndarray:
        """x: (..., D) -> y: (..., V)."""
        x = check_input(x, "x", -1, self.in_features, self.dtype)
        self._cache = x
        return self.forward(x)

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The forward map alone: no checks, no cache (for inference and closed loops)."""
        y = x @ self.params["W"]
        if self.bias:
            y += self.params["b"]
        return y

    def bprop(self, dy: np.ndarray) -> np.ndarray:
        """dy: (..., V) -> dx: (..., D); adds into grads['W'] and grads['b']."""
        x = self._take_cache()
        dy = check_input(dy, "dy", x.ndim, self.out_features, self.dtype)
        if dy.shape[:-1] != x.shape[:-1]:
            raise ShapeError(f"dy must have shape {x.shape[:-1] + (self.out_features,)}, got {dy.shape}")
        x2 = x.reshape(-1, self.in_features)        # (N, D)
        dy2 = dy.reshape(-1, self.out_features)     # (N, V)
        self.grads["W"] += x2.T @ dy2
        if self.bias:
            self.grads["b"] += dy2.sum(axis=0)
        return dy @ self.params["W"].T
