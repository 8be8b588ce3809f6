"""Activation-cache memory of a cell: what fprop keeps for bprop, against the T B (G+2) H floor.

Read through the public seams ``cell.cache_nbytes()`` and ``cell.clear_cache()``, for full BPTT
and for truncated windows of k steps, plus the tracemalloc peak of one fprop+bprop.
"""
from __future__ import annotations

import tracemalloc
from typing import Sequence

import numpy as np

from .contenders import case_inputs, make_cell
from .spec import Case


def memory_one(case: Case, cls: type, windows: Sequence[int]) -> dict:
    """Cache bytes after fprop for full BPTT and for each window k < T, the floor of
    T B (G+2) H values (G gate blocks, the state and the output), the input's own bytes and
    the tracemalloc peak of one fprop+bprop."""
    B, T, D, H = case.shape
    G = case.gates
    item = np.dtype(case.dtype).itemsize
    x, dout = case_inputs(case)
    cell = make_cell(cls, case.cell, D, H, case.dtype)
    res = {"cell": case.cell, "config": case.config, "dtype": case.dtype}
    cell.fprop(x)
    res["cache_bytes"] = cell.cache_nbytes()
    res["floor_bytes"] = T * B * (G + 2) * H * item
    res["input_bytes"] = T * B * D * item
    cell.clear_cache()
    res["windows"] = {}
    for k in windows:
        if k >= T:
            continue
        cell.fprop(x[:, :k])
        res["windows"][str(k)] = {"cache_bytes": cell.cache_nbytes(),
                                  "floor_bytes": k * B * (G + 2) * H * item}
        cell.clear_cache()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    cell.fprop(x)
    cell.bprop(dout)
    res["peak_fb_bytes"] = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return res
