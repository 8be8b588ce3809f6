"""ReLU: the elementwise rectifier as a layer (fprop/bprop), for feed-forward stacks such as a
convolutional read-in. The plain function lives in npnet.activations.relu; the recurrent cells
use that one directly.
"""
from __future__ import annotations

import numpy as np

from .activations import relu
from .layer import Layer, ShapeError, check_input


class ReLU(Layer):
    """Elementwise rectifier, ``torch.nn.ReLU`` / ``keras.layers.ReLU``.

    Equations::

        forward:   y = max(x, 0)
        backward:  dx = dy * [y > 0]        (the subgradient at x = 0 is taken as 0, as PyTorch)

    Parameters
    ----------
    dtype : float32 or float64, default float64
        Inputs are cast to it; outputs and input gradients have it.
    rng : unused (accepted so every layer is built the same way)

    Shapes: any (..., ) -> the same shape. No parameters.

    Cache: the mask [y > 0] (bool: a quarter of a float32 copy of x), all dx needs.
    """

    def __init__(self, dtype=np.float64, rng=None):
        super().__init__(dtype, rng)

    def get_config(self) -> dict:
        return {"dtype": self.dtype.name}

    def fprop(self, x: np.ndarray) -> np.ndarray:
        """x (...) -> y (...) = max(x, 0); x itself is never modified."""
        y = self.forward(x)
        self._cache = y > 0                                   # (...) bool
        return y

    def forward(self, x: np.ndarray) -> np.ndarray:
        """The forward map alone: no cache (for inference)."""
        x = check_input(x, "x", -1, None, self.dtype)
        return relu(x)                                        # a new array

    def bprop(self, dy: np.ndarray) -> np.ndarray:
        """dy (...) -> dx (...) = dy * [y > 0]; dy itself is never modified."""
        mask = self._take_cache()
        dy = check_input(dy, "dy", -1, None, self.dtype)
        if dy.shape != mask.shape:
            raise ShapeError(f"ReLU.bprop expects dy of shape {mask.shape}, got {dy.shape}")
        return dy * mask                                      # bool mask: the dtype of dy


__all__ = ["ReLU"]
