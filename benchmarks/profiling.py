"""Where a cell's time goes: cProfile, a line profiler over its source, and NumPy call costs.

cProfile sees C functions and Python calls but not ufuncs or operators; the line profiler
sees every line of the cell's module, of npnet.activations and of the private speed-trick
modules beside the cell (npnet/cells/_*.py), with hit counts per time step.
"""
from __future__ import annotations

import cProfile
import glob
import inspect
import io
import os
import pstats
import statistics
import sys
import time
from typing import Callable, Iterable

import numpy as np

from .contenders import case_inputs, make_cell
from .spec import Case
from .timing import median_of

Clock = Callable[[], float]


class LineProfiler:
    """A small sys.settrace line profiler for some source files: hits and inclusive time per
    line. Tracing adds roughly a microsecond per line event, so the absolute times are
    inflated on tiny steps; the hit counts are exact."""

    def __init__(self, files: Iterable[str], clock: Clock = time.perf_counter):
        self.files = set(files)
        self.clock = clock
        self.hits, self.time, self.last = {}, {}, {}

    def _global(self, frame, event, arg):
        if event == "call" and frame.f_code.co_filename in self.files:
            return self._local
        return None

    def _local(self, frame, event, arg):
        now = self.clock()
        prev = self.last.get(frame)
        if prev is not None:
            key = (frame.f_code.co_filename, prev[0])
            self.time[key] = self.time.get(key, 0.0) + now - prev[1]
        if event == "line":
            key = (frame.f_code.co_filename, frame.f_lineno)
            self.hits[key] = self.hits.get(key, 0) + 1
            self.last[frame] = (frame.f_lineno, self.clock())
        elif event == "return":
            self.last.pop(frame, None)
        return self._local

    def run(self, fn: Callable[[], object]) -> None:
        sys.settrace(self._global)
        try:
            fn()
        finally:
            sys.settrace(None)


def source_files(cell: object) -> list:
    """The files the line profiler watches: the cell's module, npnet.activations and the
    private modules in the cell's package (the shared speed tricks)."""
    import npnet.activations
    own = inspect.getsourcefile(type(cell))
    private = sorted(f for f in glob.glob(os.path.join(os.path.dirname(own), "_*.py"))
                     if not f.endswith("__init__.py"))
    return [own, inspect.getsourcefile(npnet.activations)] + private


def numpy_call_costs(dtype: str, B: int, H: int, G: int, clock: Clock = time.perf_counter) -> dict:
    """Per-call cost (us) of the small operations a step is made of, at this (B, H)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((B, G * H)).astype(dtype)     # (B, G H)
    h = rng.standard_normal((B, H)).astype(dtype)         # (B, H)
    W = rng.standard_normal((H, G * H)).astype(dtype)     # (H, G H)
    o = np.empty_like(a)                                  # (B, G H)
    S = np.empty((4, B, G * H), dtype)                    # (4, B, G H)
    n = 2000
    costs = {}
    for label, fn in (("np.dot(h, W_h, out=) (B,H)x(H,GH)", lambda: np.dot(h, W, out=o)),
                      ("h @ W_h (allocating)", lambda: h @ W),
                      ("np.tanh(a, out=a) on (B,GH)", lambda: np.tanh(a, out=o)),
                      ("a += b on (B,GH)", lambda: np.add(o, a, out=o)),
                      ("S[t] view", lambda: S[1])):
        costs[label] = median_of(lambda: [fn() for _ in range(n)], 1, 5, clock) / n * 1e6
    return costs


def _cprofile_rows(run: Callable[[], object], steps: int, iters: int, top: int) -> tuple:
    """(the ``top`` functions by own time, calls per step in all)."""
    pr = cProfile.Profile()
    pr.enable()
    run()
    pr.disable()
    rows = []
    for (fname, line, func), (cc, nc, tt, ct, _) in pstats.Stats(pr, stream=io.StringIO()).stats.items():
        rows.append({"func": f"{os.path.basename(fname)}:{line}({func})" if line else func,
                     "calls_per_step": nc / steps, "tottime_ms_per_iter": tt / iters * 1e3,
                     "cumtime_ms_per_iter": ct / iters * 1e3})
    rows.sort(key=lambda r: -r["tottime_ms_per_iter"])
    return rows[:top], sum(r["calls_per_step"] for r in rows)


def _line_rows(run: Callable[[], object], files: list, steps: int, clock: Clock) -> list:
    """Every line hit, with hits per step and its share of the traced time."""
    lp = LineProfiler(files, clock)
    lp.run(run)
    total = sum(lp.time.values()) or 1.0
    lines, sources = [], {}
    for (fname, lineno), hits in lp.hits.items():
        if fname not in sources:
            with open(fname) as f:
                sources[fname] = f.read().splitlines()
        lines.append({"file": os.path.basename(fname), "line": lineno, "hits_per_step": hits / steps,
                      "pct_time": 100.0 * lp.time.get((fname, lineno), 0.0) / total,
                      "src": sources[fname][lineno - 1].strip()})
    lines.sort(key=lambda r: (r["file"], r["line"]))
    return lines


def profile_one(case: Case, cls: type, clock: Clock = time.perf_counter,
                iters: int = 3, top: int = 14) -> dict:
    """Un-instrumented fprop/bprop times, then cProfile and line hits over ``iters`` fprop+bprop."""
    B, T, D, H = case.shape
    x, dout = case_inputs(case)
    cell = make_cell(cls, case.cell, D, H, case.dtype)
    cell.fprop(x)
    cell.bprop(dout)
    res = {"cell": case.cell, "config": case.config, "dtype": case.dtype, "iters": iters}
    tf = median_of(lambda: cell.fprop(x), 0, 5, clock)
    cell.clear_cache()
    tb = []
    for _ in range(5):
        cell.fprop(x)
        t0 = clock()
        cell.bprop(dout)
        tb.append(clock() - t0)
    res["fprop_ms"], res["bprop_ms"] = tf * 1e3, statistics.median(tb) * 1e3
    res["fprop_us_per_step"], res["bprop_us_per_step"] = tf / T * 1e6, statistics.median(tb) / T * 1e6

    def run():
        for _ in range(iters):
            cell.fprop(x)
            cell.bprop(dout)
    res["cprofile"], res["c_calls_per_step"] = _cprofile_rows(run, iters * T, iters, top)
    res["lines"] = _line_rows(run, source_files(cell), iters * T, clock)
    res["loop_lines_per_step"] = sum(r["hits_per_step"] for r in res["lines"] if r["hits_per_step"] >= 0.99
                                     and not r["src"].startswith(("for ", "if ", "else", "def ")))
    res["call_costs_us"] = numpy_call_costs(case.dtype, B, H, case.gates, clock)
    return res
