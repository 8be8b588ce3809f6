"""The GEMM peak of this machine and the GEMMs-plus-exp lower bound of a cell.

``gemm_floor`` times only the matrix products one fprop+bprop of the fast path performs, with
their real shapes, plus the least transcendental work any NumPy cell must do: the time a cell
would take if every other elementwise pass and all Python were free.
"""
from __future__ import annotations

import statistics
import time
from typing import Callable

import numpy as np

from .spec import Case
from .timing import median_of, sample_times

Clock = Callable[[], float]


def gemm_peak(dtype: str, n: int, repeats: int, clock: Clock = time.perf_counter) -> dict:
    """GFLOP/s of an n x n x n matmul (2 n^3 flops): median and best of ``repeats``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    times = sample_times(lambda: np.matmul(a, b, out=c), 1, repeats, clock)
    fl = 2.0 * n ** 3
    return {"n": n, "median_gflops": fl / statistics.median(times) / 1e9,
            "best_gflops": fl / min(times) / 1e9}


def gemm_floor(case: Case, repeats: int, clock: Clock = time.perf_counter) -> dict:
    """Time only the GEMMs one fprop+bprop of the fast path performs, with their real shapes:
    the input projection (T B, D) x (D, G H), T recurrent (B, H) x (H, G H) forward and
    (B, G H) x (G H, H) backward, dW_x, dW_h and dX; and the exp floor (see ``_exps``).
    Returns gemm_fwd_s, gemm_fb_s and exp_s (medians over ``repeats``)."""
    B, T, D, H = case.shape
    G, dtype = case.gates, case.dtype
    rng = np.random.default_rng(0)
    X = rng.standard_normal((T * B, D)).astype(dtype)           # (T B, D) inputs
    S = rng.standard_normal((T * B, H)).astype(dtype)           # (T B, H) states
    dA = rng.standard_normal((T * B, G * H)).astype(dtype)      # (T B, G H) gate gradients
    Wx = rng.standard_normal((D, G * H)).astype(dtype)          # (D, G H)
    Wh = rng.standard_normal((H, G * H)).astype(dtype)          # (H, G H)
    WhT = np.ascontiguousarray(Wh.T)                            # (G H, H)
    A = np.empty((T * B, G * H), dtype)                         # (T B, G H) projections
    hw = np.empty((B, G * H), dtype)                            # (B, G H) one step's h W_h
    dh = np.empty((B, H), dtype)                                # (B, H) one step's dh
    S_t = [S[t * B:(t + 1) * B] for t in range(T)]
    dA_t = [dA[t * B:(t + 1) * B] for t in range(T)]

    def fwd():
        np.matmul(X, Wx, out=A)
        for t in range(T):
            np.dot(S_t[t], Wh, out=hw)

    def fb():
        fwd()
        for t in range(T - 1, -1, -1):
            np.dot(dA_t[t], WhT, out=dh)
        X.T @ dA
        S.T @ dA
        dA @ Wx.T

    exps, fills = _exps(B, T, H, G, dtype, rng)
    return {"gemm_fwd_s": median_of(fwd, 1, repeats, clock),
            "gemm_fb_s": median_of(fb, 1, repeats, clock),
            "exp_s": max(0.0, median_of(exps, 1, repeats, clock) - median_of(fills, 1, repeats, clock))}


def _exps(B: int, T: int, H: int, G: int, dtype: str, rng: np.random.Generator) -> tuple:
    """(exps, fills): the least transcendental work any NumPy cell must do, one exp (NumPy's
    cheapest transcendental ufunc, vectorised) over every gate pre-activation of every step plus
    one over the cells for the LSTM's tanh(c), single-threaded like every NumPy ufunc; and the
    same loop without the exps, whose time is subtracted."""
    E = rng.standard_normal((B, G * H)).astype(dtype)                  # (B, G H)
    Ec = rng.standard_normal((B, H if G == 4 else 0)).astype(dtype)   # (B, H) LSTM cells only

    def exps():
        for t in range(T):
            np.exp(E, out=E)
            np.exp(Ec, out=Ec)
            E[:] = 0.0 if t % 2 else 1.0
            Ec[:] = 0.0 if t % 2 else 1.0

    def fills():
        for t in range(T):
            E[:] = 0.0 if t % 2 else 1.0
            Ec[:] = 0.0 if t % 2 else 1.0
    return exps, fills
