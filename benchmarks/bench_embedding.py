"""Embedding backward: ways to add the rows of dy into dW without a Python loop over tokens.

    dW[ids[n]] += dy[n]   for n = 0 .. N-1   (ids (N,) ints, dy (N, E), dW (V, E); repeated ids add up)

Contenders: np.add.at (the plain reference), np.add.at on the flattened table (what
npnet.embedding.accumulate_rows does), a sort + np.add.reduceat over equal ids, np.unique +
one np.bincount, a np.bincount per embedding column, and a one-hot matrix product (only where V*N fits).
Prints one table (median of repeats, milliseconds). Run with the OpenBLAS variables unset:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_embedding.py
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from npnet.embedding import accumulate_rows, accumulate_rows_reference


def add_at(dW, ids, dy):
    np.add.at(dW, ids, dy)


def add_at_flat(dW, ids, dy):
    """npnet's path: np.add.at on the flattened table (1-D indices id*E + e take the fast path)."""
    accumulate_rows(dW, ids, dy)


def sort_reduceat(dW, ids, dy):
    order = np.argsort(ids, kind="stable")                                  # (N,)
    s = ids[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])                   # (U,)
    dW[s[starts]] += np.add.reduceat(dy[order], starts, axis=0)            # (U, E)


def unique_bincount(dW, ids, dy):
    """Distinct ids first (np.unique), then one bincount over the (U*E) compact table."""
    E = dW.shape[1]
    rows, inv = np.unique(ids, return_inverse=True)                         # (U,), (N,)
    flat = (inv[:, None] * E + np.arange(E)).reshape(-1)                    # (N*E,)
    dW[rows] += np.bincount(flat, weights=dy.reshape(-1), minlength=rows.size * E).reshape(-1, E)


def bincount_columns(dW, ids, dy):
    V = dW.shape[0]
    for e in range(dW.shape[1]):                       # a loop over E columns, not over tokens
        dW[:, e] += np.bincount(ids, weights=dy[:, e], minlength=V)


def one_hot_matmul(dW, ids, dy):
    onehot = np.zeros((ids.size, dW.shape[0]), dy.dtype)   # (N, V)
    onehot[np.arange(ids.size), ids] = 1
    dW += onehot.T @ dy


CONTENDERS = {"np.add.at (reference)": add_at, "np.add.at on flat W": add_at_flat,
              "sort + add.reduceat": sort_reduceat, "unique + bincount": unique_bincount,
              "bincount per column": bincount_columns, "one-hot matmul": one_hot_matmul}
CASES = [(65, 64, 32, 100), (10000, 256, 32, 100), (10000, 256, 64, 200)]


def median_ms(fn, dW, ids, dy, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(dW, ids, dy)
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    names = list(CONTENDERS)
    print(f"dtype {args.dtype}, median of {args.repeats} runs, ms (lower is better)")
    print(f"{'V':>6} {'E':>4} {'B':>3} {'T':>4} | " + " | ".join(f"{n:>21}" for n in names))
    for V, E, B, T in CASES:
        ids = rng.integers(0, V, size=B * T)                       # (N,)
        dy = rng.standard_normal((B * T, E)).astype(args.dtype)    # (N, E)
        want = np.zeros((V, E), args.dtype)
        accumulate_rows_reference(want, ids, dy)
        row = []
        for n in names:
            fn = CONTENDERS[n]
            if fn is one_hot_matmul and V * B * T > 5e7:
                row.append(f"{'(too big)':>21}")
                continue
            got = np.zeros((V, E), args.dtype)
            fn(got, ids, dy)
            assert np.allclose(got, want, rtol=1e-10 if args.dtype == "float64" else 1e-4, atol=1e-5), n
            row.append(f"{median_ms(fn, np.zeros((V, E), args.dtype), ids, dy, args.repeats):21.3f}")
        print(f"{V:>6} {E:>4} {B:>3} {T:>4} | " + " | ".join(row))


if __name__ == "__main__":
    main()
