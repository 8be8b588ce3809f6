"""The speed tricks the fast cells share, each written once with the reason for it.

Private to npnet.cells. Nothing here changes the math: npnet/cells/reference.py computes the same
numbers plainly, and tests/cells/test_contract.py proves the cells equal it. Measurements behind
every choice are in docs/performance.md.
"""
from __future__ import annotations

import numpy as np

from ..activations import sigmoid_from_negated, tanh_from_scaled

# float64 tanh through exp (5 NumPy calls instead of 1) pays from about this many elements per
# step (B * H): NumPy's float64 tanh is scalar code, its exp is vectorised; below this size the
# per-call overhead dominates (config D). float32 tanh is vectorised: always one np.tanh call.
# See docs/performance.md, "float64 tanh through exp on big blocks". Read at call time, so
# tests can lower it.
EXP_TANH_MIN = 4096

# Bytes of factor arrays per block of the backward pass: a block's arrays should stay in a
# 256 KiB L2 cache while the sequential loop walks through it. See docs/performance.md,
# "Backward factors in blocks".
BLOCK_BYTES = 1 << 18


def exp_tanh_pays(dtype: np.dtype, size: int) -> bool:
    """Whether to evaluate tanh as 2 / (1 + exp(-2a)) - 1 on blocks of ``size`` elements."""
    return dtype != np.float32 and size >= EXP_TANH_MIN


def tanh_kernel(through_exp: bool):
    """The function ``f(a, out)`` computing out = tanh(a) (``out`` may be ``a``) for the hot loops.

    ``np.tanh`` itself (a ufunc: no Python call in between) unless ``through_exp`` (see
    :func:`exp_tanh_pays`), then :func:`_tanh_through_exp`. Chosen once per call of the cell,
    not per step: at config D every per-step Python call shows."""
    return _tanh_through_exp if through_exp else np.tanh


def _tanh_through_exp(a: np.ndarray, out: np.ndarray) -> np.ndarray:
    """out = tanh(a) = 2 / (1 + exp(-2a)) - 1. exp(-2a) may overflow to inf for a < -354,
    giving -1 exactly: call under ``np.errstate(over="ignore")``."""
    np.multiply(a, -2.0, out=out)
    return tanh_from_scaled(out)


def gate_scales(kinds: str, H: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray]:
    """Per-column constants of the exp-form gates, one letter per gate block of H columns.

    "s": sigmoid, "t": tanh, "-": left alone. Returns (scale, numerator), each (len(kinds) H,):
    the fast cells multiply their weights by ``scale`` once per call (exact: |scale| is 1 or 2),
    so the loop gets a' = scale * a directly, and then, in one exp for all the gate blocks,

        gate = numerator / (1 + exp(a')) [- 1 on the tanh blocks]

    since sigmoid(a) = 1 / (1 + exp(-a)) and tanh(a) = 2 / (1 + exp(-2a)) - 1. NumPy's exp is
    vectorised (AVX2) where SciPy's expit and NumPy's float64 tanh are not: one exp and three
    cheap passes beat them (docs/performance.md, "Exp-form gates").
    """
    per_kind = {"s": (-1.0, 1.0), "t": (-2.0, 2.0), "-": (1.0, 1.0)}
    scale = np.concatenate([np.full(H, per_kind[k][0], dtype) for k in kinds])
    numerator = np.concatenate([np.full(H, per_kind[k][1], dtype) for k in kinds])
    return scale, numerator


def exp_gates(a_scaled: np.ndarray, numerator: np.ndarray) -> np.ndarray:
    """In place: a' = scale * a -> numerator / (1 + exp(a')) (see :func:`gate_scales`).

    The caller subtracts 1 on its tanh blocks. exp(a') may overflow to inf for a' > 709
    (float64) or 88 (float32): the gate is then numerator / inf = 0, its exact limit, so call
    under ``np.errstate(over="ignore")``: no warning for any finite input.
    """
    np.exp(a_scaled, out=a_scaled)
    a_scaled += 1.0
    return np.divide(numerator, a_scaled, out=a_scaled)


# exp_gates when every gate is a sigmoid (numerator 1): 1 / (1 + exp(a')) with one reciprocal,
# cheaper than a division by an array of ones. The same function object as the activation, so a
# per-step call costs no extra Python call (about 0.2 us, 2 % of a GRU step at config D).
exp_sigmoid_gates = sigmoid_from_negated


def block_steps(T: int, bytes_per_step: int) -> int:
    """Steps per block of the backward pass: as many as fit BLOCK_BYTES, at least 1, at most T."""
    return int(min(T, max(1, BLOCK_BYTES // bytes_per_step)))


def reverse_blocks(T: int, K: int):
    """The blocks [t0, t1) of K steps covering 0..T, last block first (the backward order).

    The backward pass first computes, for a whole block at once, every factor that does not
    depend on the running state gradient (a few big NumPy calls instead of many per step),
    then walks the block's steps in reverse with only what must be sequential (docs/performance.md,
    "Backward factors in blocks")."""
    for t1 in range(T, 0, -K):
        yield max(0, t1 - K), t1


class Workspace:
    """The big arrays of a spent cache, kept for the next fprop of the same shapes.

    Why: a fresh multi-megabyte NumPy array is new memory from the kernel and its first touch
    page-faults. Measured on the char-LM layer (B, T, D, H) = (32, 100, 256, 256) float32, one
    thread: 4629 page faults per fprop+bprop, fprop 71 ms against 62 ms without them
    (docs/notes/performance.md, "Page faults"). So bprop hands the cache arrays it has spent back
    (:meth:`give`) and the next fprop takes them (:meth:`take`) when the shape and dtype match.

    Only dead arrays are ever held: bprop has consumed them and returns none of them, and take()
    removes what it hands out. So a shallow copy of the cell that shares this object (the
    diagnostics' scratch cell) can never receive an array the original's pending cache still
    uses. The cost: between a bprop and the next fprop the cell keeps one cache's worth of memory.
    """

    def __init__(self):
        self._free: dict[str, np.ndarray] = {}

    def take(self, name: str, shape: tuple, dtype: np.dtype) -> np.ndarray:
        """An array of ``shape`` and ``dtype`` with arbitrary contents: the spare one, else new."""
        a = self._free.pop(name, None)
        if a is None or a.shape != shape or a.dtype != dtype:
            a = np.empty(shape, dtype)
        return a

    def give(self, **arrays: np.ndarray) -> None:
        """Keep arrays nobody uses any more for the next take() of the same name."""
        self._free.update(arrays)

    def clear(self) -> None:
        """Drop the spare arrays (give their memory back)."""
        self._free.clear()
