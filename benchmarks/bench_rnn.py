#!/usr/bin/env python
"""Benchmark npnet's recurrent cells (RNN tanh, LSTM, GRU) against the plain reference and PyTorch.

A script, not a test: it prints one timing table (median forward and forward+backward time
per cell, configuration and dtype), the GEMM peak of this machine, the activation-cache
memory, and optionally a profile (--profile) and an end-to-end training race (--train).
torch is optional: without it the PyTorch columns are skipped. Run ``--help`` for options.

Reference column: the plain step-by-step implementations in ``tests/reference_<cell>.py``
(tests/ is put on sys.path), found by these documented names (``p`` is the cell's own
``params`` dict, x (B, T, D) batch-first, h0/c0 zeros (B, H))::

    rnn   reference_rnn.reference_forward(p, x) -> (out, h_T, trace)
          reference_rnn.reference_backward(p, trace, dout) -> (dx, dh0, grads)
    lstm  reference_lstm.lstm_forward(x, h0, c0, p) -> (out, (h_T, c_T), caches)
          reference_lstm.lstm_backward(dout, dh_T, dc_T, caches, p) -> (dx, (dh0, dc0), grads, ...)
    gru   reference_gru.gru_forward(x, h0, p) -> (out, h_T, caches)
          reference_gru.gru_backward(dout, dh_T, caches, p) -> (dx, dh0, grads)

A cell whose module or functions are not importable, or whose call fails, gets the
column skipped with a message (see REFERENCE_API below to follow a rename).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TESTS = os.path.join(ROOT, "tests")

# name -> (npnet class, gate blocks G, reference module, torch class)
CELLS = {
    "rnn": ("BasicRNNCell", 1, "reference_rnn", "RNN"),
    "lstm": ("LSTMCell", 4, "npnet.cells.reference", "LSTM"),
    "gru": ("GRUCell", 3, "reference_gru", "GRU"),
}
LABEL = {"rnn": "RNN tanh", "lstm": "LSTM", "gru": "GRU"}
# name -> (B, T, D, H)
CONFIGS = {
    "A": (32, 100, 32, 128),
    "B": (64, 100, 128, 256),
    "C": (64, 50, 256, 512),
    "D": (1, 1000, 16, 64),
}
DTYPES = ("float32", "float64")

# Targets on the forward+backward ratio npnet / PyTorch: (cell, dtype, config) -> bound.
def target_ratio(cell: str, dtype: str, cfg: str):
    if cell == "lstm" and dtype == "float32":
        return {"A": 2.0, "B": 1.25, "C": 1.25, "D": 3.0}[cfg]
    if cell == "lstm" and dtype == "float64":
        return 0.6
    return 1.0
PEAK_TARGET = {"B": 0.75, "C": 0.75}     # fraction of the measured GEMM peak (fwd+bwd GFLOP/s)


# ----------------------------------------------------------------------------- machine
def cpu_info() -> dict:
    model, physical = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            phys = core = None
            for line in f:
                k, _, v = line.partition(":")
                k, v = k.strip(), v.strip()
                if k == "model name":
                    model = v
                elif k == "physical id":
                    phys = v
                elif k == "core id":
                    core = v
                    physical.add((phys, core))
    except OSError:
        pass
    return {"cpu": model, "logical_cpus": os.cpu_count(),
            "physical_cores": len(physical) or None, "python": platform.python_version(),
            "platform": platform.platform()}


def blas_info(np) -> list:
    try:
        from threadpoolctl import threadpool_info
        out = []
        for d in threadpool_info():
            e = {k: d.get(k) for k in ("user_api", "internal_api", "prefix", "version",
                                       "num_threads", "architecture", "threading_layer")}
            fp = d.get("filepath") or ""
            e["library"] = os.path.join(os.path.basename(os.path.dirname(fp)), os.path.basename(fp))
            out.append(e)
        return out
    except ImportError:
        cfg = np.show_config(mode="dicts") if "mode" in np.show_config.__code__.co_varnames else {}
        blas = cfg.get("Build Dependencies", {}).get("blas", {}) if isinstance(cfg, dict) else {}
        return [{"user_api": "blas", "internal_api": blas.get("name"), "version": blas.get("version"),
                 "num_threads": None, "note": "threadpoolctl not installed: threads set by env vars"}]


def load_average() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "unknown"


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "npnet"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty(npnet)" if dirty else "")
    except Exception:
        return "unknown"


# ----------------------------------------------------------------------------- timing
_CLOCK = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = time.perf_counter


def _now():
    return _clock()


def median_time(fn, warmup: int, repeats: int) -> list:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(repeats):
        t0 = _now()
        fn()
        out.append(_now() - t0)
    return out


def gemm_peak(np, dtype: str, n: int, repeats: int) -> dict:
    """GFLOP/s of an n x n x n matmul (2 n^3 flops): median and best of ``repeats``."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(dtype)
    b = rng.standard_normal((n, n)).astype(dtype)
    c = np.empty((n, n), dtype)
    times = median_time(lambda: np.matmul(a, b, out=c), 1, repeats)
    fl = 2.0 * n ** 3
    return {"n": n, "median_gflops": fl / statistics.median(times) / 1e9,
            "best_gflops": fl / min(times) / 1e9}


def gemm_floor(np, cfg, G: int, dtype: str, repeats: int) -> dict:
    """Time only the GEMMs one fprop+bprop of the fast path performs, with their real shapes:
    the input projection (T B, D) x (D, G H), T recurrent (B, H) x (H, G H) forward and
    (B, G H) x (G H, H) backward, dW_x, dW_h and dX. Elementwise work and Python are left out,
    so this is the time the cell would take if everything but the GEMMs were free."""
    B, T, D, H = cfg
    rng = np.random.default_rng(0)
    X = rng.standard_normal((T * B, D)).astype(dtype)
    S = rng.standard_normal((T * B, H)).astype(dtype)
    dA = rng.standard_normal((T * B, G * H)).astype(dtype)
    Wx = rng.standard_normal((D, G * H)).astype(dtype)
    Wh = rng.standard_normal((H, G * H)).astype(dtype)
    WhT = np.ascontiguousarray(Wh.T)
    A = np.empty((T * B, G * H), dtype)
    hw = np.empty((B, G * H), dtype)
    dh = np.empty((B, H), dtype)
    Sv = [S[t * B:(t + 1) * B] for t in range(T)]
    dAv = [dA[t * B:(t + 1) * B] for t in range(T)]

    def fwd():
        np.matmul(X, Wx, out=A)
        for t in range(T):
            np.dot(Sv[t], Wh, out=hw)

    def fb():
        fwd()
        for t in range(T - 1, -1, -1):
            np.dot(dAv[t], WhT, out=dh)
        X.T @ dA
        S.T @ dA
        dA @ Wx.T

    # The least transcendental work any NumPy cell must do: one exp (NumPy's cheapest
    # transcendental ufunc, vectorised) over every gate pre-activation of every step, plus
    # one over the cells for the LSTM's tanh(c). Single-threaded, like every NumPy ufunc.
    E = rng.standard_normal((B, G * H)).astype(dtype)
    Ec = rng.standard_normal((B, H if G == 4 else 0)).astype(dtype)

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

    f = statistics.median(median_time(fwd, 1, repeats))
    b = statistics.median(median_time(fb, 1, repeats))
    e = max(0.0, statistics.median(median_time(exps, 1, repeats))
            - statistics.median(median_time(fills, 1, repeats)))
    return {"gemm_fwd_s": f, "gemm_fb_s": b, "exp_s": e}


def flops(cfg, G: int) -> tuple:
    """(forward, forward+backward) flop counts: 2 T B (D+H) G H forward, backward about twice."""
    B, T, D, H = cfg
    f = 2.0 * T * B * (D + H) * G * H
    return f, 3.0 * f


# ----------------------------------------------------------------------------- contenders
def load_cell_class(npnet, name: str):
    cls_name = CELLS[name][0]
    cls = getattr(npnet, cls_name, None)
    if cls is None:
        try:
            mod = importlib.import_module(f"npnet.{name}")
            cls = getattr(mod, cls_name)
        except Exception as exc:  # not written yet
            return None, f"npnet.{cls_name} not importable ({type(exc).__name__}: {exc})"
    return cls, None


def make_cell(cls, name: str, D: int, H: int, dtype: str):
    if name == "rnn":
        return cls(D, H, nonlinearity="tanh", dtype=dtype, rng=0)
    return cls(D, H, dtype=dtype, rng=0)


# cell -> (module, forward name, backward name): npnet.cells.reference, one signature shape for
# all three cells; fwd(p, x) -> (out, trace) and bwd(p, trace, dout) adapt it.
REFERENCE_API = {
    "rnn": ("npnet.cells.reference", "rnn_forward", "rnn_backward"),
    "lstm": ("npnet.cells.reference", "lstm_forward", "lstm_backward"),
    "gru": ("npnet.cells.reference", "gru_forward", "gru_backward"),
}


def load_reference(name: str):
    """(fwd(p, x) -> (out, trace), bwd(p, trace, dout)) for one cell, or (None, reason)."""
    mod_name, fname, bname = REFERENCE_API[name]
    try:
        mod = importlib.import_module(mod_name)
    except Exception as exc:
        return None, f"{mod_name} not importable ({type(exc).__name__}: {exc})"
    f, b = getattr(mod, fname, None), getattr(mod, bname, None)
    if f is None or b is None:
        return None, f"{mod_name} has no {fname}/{bname}"
    import numpy as np

    def fwd(p, x):
        out, _, cache = f(x, None, p)                         # state None = zeros
        return out, cache

    def bwd(p, trace, dout):
        grads = {k: np.zeros_like(v) for k, v in p.items()}   # the reference adds into grads
        return b(dout, None, trace, grads)
    return (fwd, bwd), None


def torch_module(torch, name: str, D: int, H: int, dtype: str, cell=None):
    cls = getattr(torch.nn, CELLS[name][3])
    kw = {"nonlinearity": "tanh"} if name == "rnn" else {}
    m = cls(D, H, batch_first=True, **kw)
    m = m.double() if dtype == "float64" else m.float()
    if cell is not None:   # copy npnet's weights (PyTorch layout) so the outputs can be compared
        with torch.no_grad():
            p = cell.params
            m.weight_ih_l0.copy_(torch.from_numpy(p["W_x"].T.copy()))
            m.weight_hh_l0.copy_(torch.from_numpy(p["W_h"].T.copy()))
            m.bias_ih_l0.copy_(torch.from_numpy(p["b"].copy()))
            m.bias_hh_l0.zero_()
            if name == "gru" and "b_hn" in p:
                m.bias_hh_l0[2 * H:].copy_(torch.from_numpy(p["b_hn"].copy()))
    return m


def bench_one(np, torch, name, cls, cfg_name, dtype, args, ref_fns, log):
    """Time every contender for one (cell, config, dtype), interleaving them round by round
    so that load from other users of the machine hits all contenders alike."""
    B, T, D, H = CONFIGS[cfg_name]
    G = CELLS[name][1]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    dout = rng.standard_normal((B, T, H)).astype(dtype)      # loss = sum(out * dout)
    cell = make_cell(cls, name, D, H, dtype)

    def np_fwd():
        cell.fprop(x)

    def np_fb():
        cell.fprop(x)
        cell.bprop(dout)

    contenders = {"npnet": (np_fwd, np_fb)}
    row = {"cell": name, "config": cfg_name, "B": B, "T": T, "D": D, "H": H, "dtype": dtype}
    notes = []

    if ref_fns is not None:
        rf, rb = ref_fns
        p = cell.params
        try:
            out_ref, trace = rf(p, x)
            rb(p, trace, dout)                                   # fails here, not mid-timing
            out_np = cell.fprop(x)[0]
            cell.clear_cache()
            tol = 1e-3 if dtype == "float32" else 1e-8
            row["ref_max_abs_diff"] = float(np.max(np.abs(out_ref - out_np)))
            if row["ref_max_abs_diff"] > tol:
                notes.append(f"reference differs from fast path by {row['ref_max_abs_diff']:.2e}")

            def ref_fwd():
                rf(p, x)

            def ref_fb():
                trace = rf(p, x)[1]
                rb(p, trace, dout)
            contenders["ref"] = (ref_fwd, ref_fb)
        except Exception as exc:
            notes.append(f"reference call failed: {type(exc).__name__}: {exc}")

    if torch is not None:
        m = torch_module(torch, name, D, H, dtype, cell)
        tx = torch.from_numpy(x.copy()).requires_grad_(True)
        tdout = torch.from_numpy(dout.copy())
        with torch.no_grad():
            out_t = m(tx)[0].numpy()
        out_np = cell.fprop(x)[0]
        cell.clear_cache()
        row["torch_max_abs_diff"] = float(np.max(np.abs(out_t - out_np)))

        def t_fwd():   # a training forward (autograd records the graph), like npnet's cached fprop
            m(tx)

        def t_fb():
            out = m(tx)[0]
            out.backward(tdout)
        contenders["torch"] = (t_fwd, t_fb)

    for k, (fwd, fb) in contenders.items():     # warm-up (the reference was warmed by its check)
        for _ in range(args.warmup if k != "ref" else 0):
            fwd()
            fb()
    samples = {k: ([], []) for k in contenders}
    for rnd in range(args.repeats):
        for k, (fwd, fb) in contenders.items():
            if k == "ref" and rnd >= args.ref_repeats:
                continue
            block = 1 if k == "ref" else args.block   # the slow reference: one pair per round
            for rep in range(block):            # the first pair of a block is not recorded: it
                t0 = _now()                     # absorbs the previous contender's still-spinning
                fwd()                           # BLAS / OpenMP threads (they slowed the next
                t1 = _now()                     # library's calls by up to 1.6x when interleaved
                fb()                            # call by call; see docs/performance.md)
                t2 = _now()
                if rep > 0 or block == 1:
                    samples[k][0].append(t1 - t0)
                    samples[k][1].append(t2 - t1)
    for k, (sf, sb) in samples.items():
        row[f"{k}_fwd_s"] = statistics.median(sf)
        row[f"{k}_fb_s"] = statistics.median(sb)
        row[f"{k}_fb_min_s"] = min(sb)
    if "torch" in samples:
        row["ratio_fwd"] = row["npnet_fwd_s"] / row["torch_fwd_s"]
        row["ratio_fb"] = row["npnet_fb_s"] / row["torch_fb_s"]
        row["ratio_fb_of_min"] = row["npnet_fb_min_s"] / row["torch_fb_min_s"]
    f_fwd, f_fb = flops(CONFIGS[cfg_name], G)
    row["gflops_fwd"] = f_fwd / row["npnet_fwd_s"] / 1e9
    row["gflops_fb"] = f_fb / row["npnet_fb_s"] / 1e9
    if "torch" in samples:
        row["torch_gflops_fb"] = f_fb / row["torch_fb_s"] / 1e9
    if args.gemm_floor:
        row.update(gemm_floor(np, CONFIGS[cfg_name], G, dtype, max(3, args.repeats // 2)))
        row["npnet_fb_over_gemm"] = row["npnet_fb_s"] / row["gemm_fb_s"]
        row["gemm_gflops_fb"] = f_fb / row["gemm_fb_s"] / 1e9
    row["notes"] = notes
    cell.clear_cache()
    return row


def memory_one(np, name, cls, cfg_name, dtype, windows):
    """Cache bytes after fprop for full BPTT and for truncated windows of k steps, the
    T*B*(G+2)*H floor, and the tracemalloc peak of one fprop+bprop."""
    import tracemalloc
    B, T, D, H = CONFIGS[cfg_name]
    G = CELLS[name][1]
    item = np.dtype(dtype).itemsize
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    dout = rng.standard_normal((B, T, H)).astype(dtype)
    cell = make_cell(cls, name, D, H, dtype)
    res = {"cell": name, "config": cfg_name, "dtype": dtype}
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


# ----------------------------------------------------------------------------- profile
class LineProfiler:
    """A small sys.settrace line profiler for the npnet source files: hits and inclusive time
    per line. Tracing adds roughly a microsecond per line event, so the absolute times are
    inflated on tiny steps; the hit counts are exact."""

    def __init__(self, files):
        self.files = set(files)
        self.hits, self.time, self.last = {}, {}, {}

    def _global(self, frame, event, arg):
        if event == "call" and frame.f_code.co_filename in self.files:
            return self._local
        return None

    def _local(self, frame, event, arg):
        now = _now()
        prev = self.last.get(frame)
        if prev is not None:
            key = (frame.f_code.co_filename, prev[0])
            self.time[key] = self.time.get(key, 0.0) + now - prev[1]
        if event == "line":
            key = (frame.f_code.co_filename, frame.f_lineno)
            self.hits[key] = self.hits.get(key, 0) + 1
            self.last[frame] = (frame.f_lineno, _now())
        elif event == "return":
            self.last.pop(frame, None)
        return self._local

    def run(self, fn):
        sys.settrace(self._global)
        try:
            fn()
        finally:
            sys.settrace(None)


def numpy_call_costs(np, dtype, B, H, G):
    """Per-call cost (us) of the small operations a step is made of, at this (B, H)."""
    rng = np.random.default_rng(0)
    a = rng.standard_normal((B, G * H)).astype(dtype)
    h = rng.standard_normal((B, H)).astype(dtype)
    W = rng.standard_normal((H, G * H)).astype(dtype)
    o = np.empty_like(a)
    S = np.empty((4, B, G * H), dtype)
    n = 2000
    costs = {}
    for label, fn in (("np.dot(h, W_h, out=) (B,H)x(H,GH)", lambda: np.dot(h, W, out=o)),
                      ("h @ W_h (allocating)", lambda: h @ W),
                      ("np.tanh(a, out=a) on (B,GH)", lambda: np.tanh(a, out=o)),
                      ("a += b on (B,GH)", lambda: np.add(o, a, out=o)),
                      ("S[t] view", lambda: S[1])):
        ts = median_time(lambda: [fn() for _ in range(n)], 1, 5)
        costs[label] = statistics.median(ts) / n * 1e6
    return costs


def profile_one(np, name, cls, cfg_name, dtype, iters=3, top=14):
    import cProfile
    import inspect
    import io
    import pstats
    B, T, D, H = CONFIGS[cfg_name]
    G = CELLS[name][1]
    rng = np.random.default_rng(1)
    x = rng.standard_normal((B, T, D)).astype(dtype)
    dout = rng.standard_normal((B, T, H)).astype(dtype)
    cell = make_cell(cls, name, D, H, dtype)
    cell.fprop(x)
    cell.bprop(dout)
    res = {"cell": name, "config": cfg_name, "dtype": dtype, "iters": iters}

    # un-instrumented split of time between fprop and bprop
    tf = statistics.median(median_time(lambda: cell.fprop(x), 0, 5))
    cell.clear_cache()
    tb = []
    for _ in range(5):
        cell.fprop(x)
        t0 = _now()
        cell.bprop(dout)
        tb.append(_now() - t0)
    res["fprop_ms"], res["bprop_ms"] = tf * 1e3, statistics.median(tb) * 1e3
    res["fprop_us_per_step"], res["bprop_us_per_step"] = tf / T * 1e6, statistics.median(tb) / T * 1e6

    def run():
        for _ in range(iters):
            cell.fprop(x)
            cell.bprop(dout)

    pr = cProfile.Profile()
    pr.enable()
    run()
    pr.disable()
    st = pstats.Stats(pr, stream=io.StringIO())
    rows = []
    for (fname, line, func), (cc, nc, tt, ct, _) in st.stats.items():
        rows.append({"func": f"{os.path.basename(fname)}:{line}({func})" if line else func,
                     "calls_per_step": nc / (iters * T), "tottime_ms_per_iter": tt / iters * 1e3,
                     "cumtime_ms_per_iter": ct / iters * 1e3})
    rows.sort(key=lambda r: -r["tottime_ms_per_iter"])
    res["cprofile"] = rows[:top]
    res["c_calls_per_step"] = sum(r["calls_per_step"] for r in rows)

    files = [inspect.getsourcefile(type(cell))]
    import npnet.activations as _act
    files.append(inspect.getsourcefile(_act))
    lp = LineProfiler(files)
    lp.run(run)
    total = sum(lp.time.values()) or 1.0
    lines = []
    cache = {}
    for (fname, lineno), hits in lp.hits.items():
        if fname not in cache:
            with open(fname) as f:
                cache[fname] = f.read().splitlines()
        src = cache[fname][lineno - 1].strip()
        lines.append({"file": os.path.basename(fname), "line": lineno,
                      "hits_per_step": hits / (iters * T),
                      "pct_time": 100.0 * lp.time.get((fname, lineno), 0.0) / total, "src": src})
    lines.sort(key=lambda r: (r["file"], r["line"]))
    res["lines"] = lines
    res["loop_lines_per_step"] = sum(r["hits_per_step"] for r in lines if r["hits_per_step"] >= 0.99
                                     and not r["src"].startswith(("for ", "if ", "else", "def ")))
    res["call_costs_us"] = numpy_call_costs(np, dtype, B, H, G)
    return res


def print_profile(res):
    print(f"\n### Profile {LABEL[res['cell']]} config {res['config']} {res['dtype']}: "
          f"fprop {res['fprop_ms']:.2f} ms ({res['fprop_us_per_step']:.1f} us/step), "
          f"bprop {res['bprop_ms']:.2f} ms ({res['bprop_us_per_step']:.1f} us/step)")
    print(f"cProfile (C functions and Python calls; ufuncs and operators are invisible to it), "
          f"{res['c_calls_per_step']:.1f} calls per step in all:")
    print(f"  {'calls/step':>10} {'tottime ms/iter':>16} {'cumtime ms/iter':>16}  function")
    for r in res["cprofile"]:
        print(f"  {r['calls_per_step']:>10.2f} {r['tottime_ms_per_iter']:>16.3f} "
              f"{r['cumtime_ms_per_iter']:>16.3f}  {r['func']}")
    print("Lines (hits per step, % of traced time, inclusive of calls), lines hit >= 0.01/step:")
    for r in res["lines"]:
        if r["hits_per_step"] >= 0.01 or r["pct_time"] >= 1.0:
            print(f"  {r['file']}:{r['line']:<4} {r['hits_per_step']:>6.2f}/step {r['pct_time']:5.1f}%  {r['src']}")
    print(f"Per-step loop lines executed (fprop+bprop): {res['loop_lines_per_step']:.0f}")
    print("NumPy per-call costs on this machine at this (B, H):")
    for k, v in res["call_costs_us"].items():
        print(f"  {v:7.2f} us  {k}")


# ----------------------------------------------------------------------------- training race
def train_race(args, np, torch, log):
    """Time experiments/memory.py --seq-len L (to --train-target held-out recall) against a
    PyTorch twin of the same model and recipe. memory.py pins BLAS to one thread, so the twin
    runs torch with one thread too. Reported: training seconds (summary.json's train_s, the
    fit loop with its evaluations), the script's whole wall time, updates, and the ratio."""
    import tempfile
    script = os.path.join(ROOT, "experiments", "memory.py")
    if not os.path.exists(script):
        log("--train: experiments/memory.py not present yet; skipping the training race")
        return {"skipped": "experiments/memory.py absent"}
    out_dir = tempfile.mkdtemp(prefix="bench-memory-")
    cmd = [sys.executable, script, "--seq-len", str(args.train_seq_len), "--target", str(args.train_target),
           "--hidden", str(args.train_hidden), "--batch-size", str(args.train_batch),
           "--lr", str(args.train_lr), "--steps", str(args.train_max_steps), "--dtype", args.train_dtype, "--quiet", "--out", out_dir] + args.train_args
    env = dict(os.environ, MPLBACKEND="Agg", OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1",
               MKL_NUM_THREADS="1")                   # memory.py's own default (experiments/common.py)
    log(f"--train: running {' '.join(cmd)}")
    import resource
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    res = {"npnet_cmd": " ".join(cmd[1:]), "npnet_script_wall_s": time.perf_counter() - t0,
           "npnet_script_cpu_s": (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime),
           "npnet_returncode": p.returncode, "npnet_tail": (p.stdout + p.stderr).strip().splitlines()[-4:]}
    log("\n".join("  | " + s for s in res["npnet_tail"]))
    try:
        with open(os.path.join(out_dir, "summary.json")) as f:
            summ = json.load(f)
        res.update(npnet_train_s=summ.get("train_s"), npnet_steps=summ.get("steps"),
                   npnet_test_accuracy=summ.get("test_accuracy"), npnet_stopped_early=summ.get("stopped_early"))
    except (OSError, ValueError) as exc:
        log(f"--train: no summary.json from memory.py ({exc})")
    if torch is None:
        log("--train: torch not installed; no PyTorch side")
        return res
    try:
        tasks = importlib.import_module("npnet.tasks")
    except Exception as exc:
        log(f"--train: npnet.tasks not importable ({exc}); no PyTorch side")
        return res
    n_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        res.update(torch_memory_train(args, np, torch, tasks, log))
    finally:
        torch.set_num_threads(n_threads)
    if res.get("npnet_train_s") and res.get("torch_train_s"):
        res["ratio_train_s"] = res["npnet_train_s"] / res["torch_train_s"]
        res["ratio_per_update"] = (res["npnet_train_s"] / res["npnet_steps"]) / (res["torch_train_s"] / res["torch_updates"])
        # CPU seconds: the whole memory.py process (imports, final test, plots included) against
        # the twin's training loop: an upper bound for npnet, robust to other users' load.
        res["ratio_cpu_s_upper_bound"] = res["npnet_script_cpu_s"] / res["torch_train_cpu_s"]
    return res


def torch_memory_train(args, np, torch, tasks, log):
    """PyTorch twin of experiments/memory.py: nn.LSTM(H) + a linear read-out per step, Adam,
    gradient-norm clipping 1.0, cross-entropy on the recall steps, batches from
    npnet.tasks.memory_task; evaluated every --train-eval-every updates on 500 held-out
    sequences, stopping at recall >= --train-target."""
    gen = getattr(tasks, "memory_task", None)
    if gen is None:
        log("--train: npnet.tasks has no memory_task; no PyTorch side")
        return {"torch_skipped": "no npnet.tasks.memory_task"}
    torch.manual_seed(0)
    H, lr, bs, L = args.train_hidden, args.train_lr, args.train_batch, args.train_seq_len
    tdt = torch.float64 if args.train_dtype == "float64" else torch.float32
    stream = gen(bs, seq_len=L, rng=np.random.default_rng([0, 1]), dtype=args.train_dtype)
    ev = tasks.memory_batch(500, seq_len=L, rng=np.random.default_rng([0, 2]), dtype=args.train_dtype)
    D = ev.x.shape[2]
    V = D - 1                                              # symbols + blank
    lstm = torch.nn.LSTM(D, H, batch_first=True).to(tdt)
    head = torch.nn.Linear(H, V).to(tdt)
    init = "PyTorch default"
    try:   # the same initial weights as memory.py: its model built the way experiments/common.py does
        import npnet
        model = npnet.SequenceModel(D, H, cell="lstm", output_size=V, return_sequences=True,
                                    dtype=args.train_dtype, rng=np.random.default_rng([0, 0]))
        cp, rp = model.cells[0].params, model.read_out.params
        with torch.no_grad():
            lstm.weight_ih_l0.copy_(torch.from_numpy(cp["W_x"].T.copy()))
            lstm.weight_hh_l0.copy_(torch.from_numpy(cp["W_h"].T.copy()))
            lstm.bias_ih_l0.copy_(torch.from_numpy(cp["b"].copy()))
            lstm.bias_hh_l0.zero_()
            head.weight.copy_(torch.from_numpy(rp["W"].T.copy()))
            head.bias.copy_(torch.from_numpy(rp["b"].copy()))
        init = "npnet SequenceModel(rng=[0, 0]) weights, as memory.py --seed 0"
    except Exception as exc:
        log(f"--train: could not copy npnet's initial weights ({type(exc).__name__}: {exc}); "
            "PyTorch default init")
    params = list(lstm.parameters()) + list(head.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    ex, ey, em = torch.from_numpy(ev.x), torch.from_numpy(ev.y), torch.from_numpy(ev.mask)

    def recall():
        with torch.no_grad():
            pred = head(lstm(ex)[0]).argmax(-1)
            return float((pred[em] == ey[em]).double().mean())

    t0, cpu0 = time.perf_counter(), time.process_time()
    step, acc = 0, 0.0
    while step < args.train_max_steps:
        b = next(stream)
        x, y, m = torch.from_numpy(b.x), torch.from_numpy(b.y), torch.from_numpy(b.mask)
        logits = head(lstm(x)[0])
        loss = torch.nn.functional.cross_entropy(logits[m], y[m])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        step += 1
        if step % args.train_eval_every == 0:
            acc = recall()
            if acc >= args.train_target:
                break
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    log(f"--train: PyTorch LSTM H={H} reached recall {acc:.4f} after {step} updates in {wall:.1f} s")
    return {"torch_train_s": wall, "torch_train_cpu_s": cpu, "torch_updates": step, "torch_recall": acc,
            "torch_setup": {"H": H, "lr": lr, "batch": bs, "seq_len": L, "dtype": args.train_dtype,
                            "eval_every": args.train_eval_every, "clip_norm": 1.0, "threads": 1,
                            "init": init}}


# ----------------------------------------------------------------------------- output
def fmt_ms(v):
    if v is None:
        return "-"
    return f"{v * 1e3:.2f}" if v < 10 else f"{v * 1e3:.0f}"


def table_markdown(rows, peaks) -> str:
    head = ("| cell | cfg (B,T,D,H) | dtype | npnet fwd ms | npnet f+b ms | ref fwd ms | ref f+b ms "
            "| torch fwd ms | torch f+b ms | fwd ratio | f+b ratio (target) | f+b ratio of mins | npnet f+b GFLOP/s "
            "| % GEMM peak |")
    lines = [head, "|" + "|".join(["---"] * 14) + "|"]
    for r in rows:
        cfg = f"{r['config']} ({r['B']},{r['T']},{r['D']},{r['H']})"
        tr = target_ratio(r["cell"], r["dtype"], r["config"])
        ratio = "-"
        if "ratio_fb" in r:
            ok = "ok" if r["ratio_fb"] <= tr else "MISS"
            ratio = f"{r['ratio_fb']:.2f} (<={tr:g} {ok})"
        pk = peaks.get(r["dtype"], {}).get("median_gflops")
        pct = f"{100 * r['gflops_fb'] / pk:.0f}%" if pk else "-"
        if r["config"] in PEAK_TARGET and pk:
            pct += " ok" if r["gflops_fb"] / pk >= PEAK_TARGET[r["config"]] else " MISS"
        lines.append("| " + " | ".join([
            LABEL[r["cell"]], cfg, r["dtype"], fmt_ms(r.get("npnet_fwd_s")), fmt_ms(r.get("npnet_fb_s")),
            fmt_ms(r.get("ref_fwd_s")), fmt_ms(r.get("ref_fb_s")), fmt_ms(r.get("torch_fwd_s")),
            fmt_ms(r.get("torch_fb_s")),
            f"{r['ratio_fwd']:.2f}" if "ratio_fwd" in r else "-", ratio,
            f"{r['ratio_fb_of_min']:.2f}" if "ratio_fb_of_min" in r else "-",
            f"{r['gflops_fb']:.1f}", pct]) + " |")
    return "\n".join(lines)


def floor_markdown(rows, peaks) -> str:
    lines = ["GEMM-only floor (the same GEMMs, no elementwise work, no Python beyond the loop); exp floor: "
             "one np.exp per step over every gate pre-activation (and c for the LSTM), the least "
             "transcendental work a NumPy cell can do. GEMMs + exp is a lower bound for any NumPy "
             "implementation on this machine: its % of peak and ratio to PyTorch are the best reachable.",
             "| cell | cfg | dtype | npnet f+b ms | GEMMs only f+b ms | npnet / GEMMs | GEMMs GFLOP/s "
             "| GEMMs % of peak | exp floor ms | GEMMs + exp ms | its % of peak | its ratio to torch |",
             "|" + "|".join(["---"] * 12) + "|"]
    for r in rows:
        if "gemm_fb_s" not in r:
            continue
        pk = peaks.get(r["dtype"], {}).get("median_gflops")
        f_fb = flops((r["B"], r["T"], r["D"], r["H"]), CELLS[r["cell"]][1])[1]
        least = r["gemm_fb_s"] + r["exp_s"]
        lines.append("| " + " | ".join([LABEL[r["cell"]], r["config"], r["dtype"], fmt_ms(r["npnet_fb_s"]),
                                          fmt_ms(r["gemm_fb_s"]), f"{r['npnet_fb_over_gemm']:.2f}",
                                          f"{r['gemm_gflops_fb']:.1f}",
                                          f"{100 * r['gemm_gflops_fb'] / pk:.0f}%" if pk else "-",
                                          fmt_ms(r["exp_s"]), fmt_ms(least),
                                          f"{100 * f_fb / least / 1e9 / pk:.0f}%" if pk else "-",
                                          f"{least / r['torch_fb_s']:.2f}" if "torch_fb_s" in r else "-"]) + " |")
    return "\n".join(lines)


def memory_markdown(mem) -> str:
    if not mem:
        return ""
    ks = sorted({int(k) for m in mem for k in m["windows"]})
    head = ["cell", "cfg", "dtype", "cache MB (full BPTT)", "floor T*B*(G+2)*H MB", "cache/floor",
            "x itself MB"] + [f"cache MB k={k}" for k in ks] + ["peak MB fprop+bprop (tracemalloc)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * len(head)) + "|"]
    mb = 1 / 2 ** 20
    for m in mem:
        w = [f"{m['windows'][str(k)]['cache_bytes'] * mb:.2f}" if str(k) in m["windows"] else "-" for k in ks]
        lines.append("| " + " | ".join([LABEL[m["cell"]], m["config"], m["dtype"],
                                          f"{m['cache_bytes'] * mb:.2f}", f"{m['floor_bytes'] * mb:.2f}",
                                          f"{m['cache_bytes'] / m['floor_bytes']:.2f}",
                                          f"{m['input_bytes'] * mb:.2f}"] + w +
                                         [f"{m['peak_fb_bytes'] * mb:.2f}"]) + " |")
    return "\n".join(lines)


def verdicts(rows, peaks) -> list:
    """One entry per target. With ``--gemm-floor`` each also carries ``bound``: the same measure
    for the GEMMs + exp lower bound (see :func:`gemm_floor`), and ``reachable``: whether any
    NumPy implementation could meet the target on this machine by that bound."""
    out = []
    for r in rows:
        least = r["gemm_fb_s"] + r["exp_s"] if "gemm_fb_s" in r else None
        if "ratio_fb" in r:
            tr = target_ratio(r["cell"], r["dtype"], r["config"])
            v = {"cell": r["cell"], "config": r["config"], "dtype": r["dtype"], "kind": "ratio f+b",
                 "value": round(r["ratio_fb"], 3), "target": f"<= {tr:g}", "met": r["ratio_fb"] <= tr}
            if least is not None:
                v["bound"] = round(least / r["torch_fb_s"], 3)
                v["reachable"] = v["bound"] <= tr
            out.append(v)
        pk = peaks.get(r["dtype"], {}).get("median_gflops")
        if r["config"] in PEAK_TARGET and pk:
            frac = r["gflops_fb"] / pk
            v = {"cell": r["cell"], "config": r["config"], "dtype": r["dtype"], "kind": "% GEMM peak",
                 "value": round(100 * frac, 1), "target": f">= {100 * PEAK_TARGET[r['config']]:.0f}%",
                 "met": frac >= PEAK_TARGET[r["config"]]}
            if least is not None:
                f_fb = flops((r["B"], r["T"], r["D"], r["H"]), CELLS[r["cell"]][1])[1]
                v["bound"] = round(100 * f_fb / least / 1e9 / pk, 1)
                v["reachable"] = v["bound"] >= 100 * PEAK_TARGET[r["config"]]
            out.append(v)
    return out


# ----------------------------------------------------------------------------- main
def write_json(path, info, peaks, rows, mem, profiles, train, partial=False):
    with open(path, "w") as f:
        json.dump({"info": info, "partial": partial, "peaks": peaks, "rows": rows, "memory": mem,
                   "targets": verdicts(rows, peaks) if rows else [], "profiles": profiles,
                   "train": train}, f, indent=1)


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Time npnet's RNN/LSTM/GRU fast path against the plain reference and PyTorch.",
        epilog="Configs (B,T,D,H): " + ", ".join(f"{k}={v}" for k, v in CONFIGS.items()) +
               ". The machine may be shared: every time is a median over --repeats interleaved rounds.")
    p.add_argument("--cells", default="rnn,lstm,gru", help="comma list of rnn,lstm,gru (default all)")
    p.add_argument("--configs", default="A,B,C,D", help="comma list of A,B,C,D (default all)")
    p.add_argument("--dtypes", default="float32,float64", help="comma list (default both)")
    p.add_argument("--repeats", type=int, default=5, help="rounds per measurement (default 5)")
    p.add_argument("--block", type=int, default=3,
                   help="forward + forward-backward pairs per contender per round, the first not "
                        "recorded (default 3: 2 timed pairs per round; 1 = interleave call by call)")
    p.add_argument("--ref-repeats", type=int, default=3,
                   help="timed rounds for the slow reference column (default 3)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall",
                   help="wall: perf_counter (default); cpu: process CPU time, robust to other users of a "
                        "shared machine but only meaningful with --threads 1")
    p.add_argument("--warmup", type=int, default=2, help="untimed rounds first (default 2)")
    p.add_argument("--threads", type=int, default=2, help="BLAS and torch threads (default 2)")
    p.add_argument("--no-reference", action="store_true", help="skip the slow step-by-step reference column")
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch even if installed")
    p.add_argument("--no-peak", action="store_true", help="skip the GEMM peak measurement")
    p.add_argument("--peak-n", type=int, default=2048, help="size of the square GEMM for the peak (default 2048)")
    p.add_argument("--gemm-floor", action="store_true",
                   help="also time only the GEMMs of each fprop+bprop (the floor if elementwise work were free)")
    p.add_argument("--no-memory", action="store_true", help="skip the activation-cache memory table")
    p.add_argument("--windows", default="10,25", help="truncated-BPTT windows k for the memory table")
    p.add_argument("--profile", action="store_true",
                   help="also profile each selected cell (cProfile + line hits) on --profile-configs")
    p.add_argument("--profile-configs", default="A,D", help="configs to profile (default A,D)")
    p.add_argument("--profile-only", action="store_true", help="only profile, no timing table")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: configs A,D, float32, 3 repeats, 1 warm-up, no reference, 1024 GEMM")
    p.add_argument("--json", metavar="FILE", help="write everything measured to FILE as JSON")
    p.add_argument("--train", action="store_true",
                   help="also race experiments/memory.py against a PyTorch twin to 99%% recall")
    p.add_argument("--train-only", action="store_true", help="only the training race, no timing table")
    p.add_argument("--train-seq-len", type=int, default=20)
    p.add_argument("--train-hidden", type=int, default=64, help="LSTM units on both sides (default 64)")
    p.add_argument("--train-lr", type=float, default=2e-2, help="Adam learning rate, both sides (default 2e-2)")
    p.add_argument("--train-batch", type=int, default=64)
    p.add_argument("--train-dtype", choices=DTYPES, default="float64", help="both sides (default float64)")
    p.add_argument("--train-target", type=float, default=0.99, help="held-out recall to reach (default 0.99)")
    p.add_argument("--train-eval-every", type=int, default=25)
    p.add_argument("--train-max-steps", type=int, default=5000, help="most updates, both sides (default 5000)")
    p.add_argument("--train-args", nargs=argparse.REMAINDER, default=[],
                   help="extra arguments passed on to experiments/memory.py (must come last)")
    args = p.parse_args(argv)
    if args.quick:   # smaller defaults; options given explicitly still win
        for name, value in (("configs", "A,D"), ("dtypes", "float32"), ("repeats", 3), ("block", 2), ("warmup", 1),
                            ("ref_repeats", 1), ("peak_n", 1024)):
            if getattr(args, name) == p.get_default(name):
                setattr(args, name, value)
        args.no_reference = True
    args.cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    args.configs = [c.strip().upper() for c in args.configs.split(",") if c.strip()]
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    args.windows = [int(k) for k in args.windows.split(",") if k.strip()]
    args.profile_configs = [c.strip().upper() for c in args.profile_configs.split(",") if c.strip()]
    for c in args.cells:
        if c not in CELLS:
            p.error(f"unknown cell {c!r}; choose from {', '.join(CELLS)}")
    for c in args.configs + args.profile_configs:
        if c not in CONFIGS:
            p.error(f"unknown config {c!r}; choose from {', '.join(CONFIGS)}")
    for d in args.dtypes:
        if d not in DTYPES:
            p.error(f"unknown dtype {d!r}; choose from {', '.join(DTYPES)}")
    if args.repeats < 1 or args.threads < 1 or args.block < 1:
        p.error("--repeats, --threads and --block must be >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    global _clock
    _clock = _CLOCK[args.clock]
    # Pin threads before NumPy starts its BLAS (fallback when threadpoolctl is absent).
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    import numpy as np
    import npnet

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    limiter = None
    try:
        from threadpoolctl import threadpool_limits
        limiter = threadpool_limits(limits=args.threads, user_api="blas")
    except ImportError:
        log("threadpoolctl not installed: BLAS threads pinned through environment variables only")
    torch = None
    if not args.no_torch:
        try:
            import torch as _torch
            torch = _torch
            torch.set_num_threads(args.threads)
            try:
                torch.set_num_interop_threads(1)
            except RuntimeError:
                pass
        except ImportError:
            log("torch not installed: PyTorch columns skipped")

    info = {"date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": git_commit(), "numpy": np.__version__, "threads": args.threads,
            **cpu_info(), "blas": blas_info(np),
            "torch": (torch.__version__ if torch is not None else None),
            "torch_threads": (torch.get_num_threads() if torch is not None else None),
            "repeats": args.repeats, "block": args.block, "ref_repeats": args.ref_repeats, "clock": args.clock, "warmup": args.warmup, "load_start": load_average()}
    print(f"# npnet RNN benchmark, {info['date']}, commit {info['commit']}")
    print(f"machine: {info['cpu']}, {info['logical_cpus']} logical CPUs"
          f" ({info['physical_cores']} physical cores), Python {info['python']}, NumPy {info['numpy']}")
    for b in info["blas"]:
        print(f"threadpool: {b.get('user_api')} {b.get('internal_api')} {b.get('version') or ''} "
              f"threads={b.get('num_threads')} {b.get('architecture') or ''} {b.get('library') or ''}".rstrip())
    print(f"threads pinned: BLAS {args.threads}, torch "
          f"{info['torch_threads'] if torch is not None else '(not installed)'}"
          f"{' (torch ' + info['torch'] + ')' if torch is not None else ''}")
    print(f"load average (1, 5, 15 min) at start: {load_average()} on {info['logical_cpus']} CPUs"
          " (a shared machine: times above ~1 mean other processes compete for the cores)")
    if args.clock == "cpu" and args.threads > 1:
        log("warning: --clock cpu with --threads > 1 sums the CPU time of all threads (spin-waits too)")
    print(f"timing: {args.clock} clock, median of {args.repeats} interleaved rounds "
          f"({args.ref_repeats} for the reference) of {args.block} calls per contender, the first "
          f"not recorded, after {args.warmup} warm-up rounds; "
          "backward loss = sum(out * fixed random tensor)")

    peaks = {}
    if args.train_only:
        args.train, args.profile_only = True, True
        args.cells = []
    if not args.no_peak and not args.profile_only:
        for dt in args.dtypes:
            peaks[dt] = gemm_peak(np, dt, args.peak_n, 5 if not args.quick else 3)
            print(f"GEMM peak {dt}: {peaks[dt]['median_gflops']:.1f} GFLOP/s median "
                  f"(best {peaks[dt]['best_gflops']:.1f}) for {args.peak_n}^3 matmul")

    classes, refs = {}, {}
    for name in args.cells:
        cls, why = load_cell_class(npnet, name)
        if cls is None:
            log(f"skipping {LABEL[name]}: {why}")
            continue
        classes[name] = cls
        if not args.no_reference and not args.profile_only:
            refs[name], why = load_reference(name)
            if why:
                log(f"{LABEL[name]}: reference column skipped: {why}")

    rows, mem, profiles = [], [], []
    if not args.profile_only:
        for name, cls in classes.items():
            for cfg in args.configs:
                for dt in args.dtypes:
                    log(f"timing {LABEL[name]} {cfg} {dt} ...")
                    row = bench_one(np, torch, name, cls, cfg, dt, args, refs.get(name), log)
                    for n in row["notes"]:
                        log(f"  note: {n}")
                    rows.append(row)
                    if not args.no_memory:
                        mem.append(memory_one(np, name, cls, cfg, dt, args.windows))
                    if args.json:     # partial results survive an interrupted run
                        write_json(args.json, info, peaks, rows, mem, [], None, partial=True)
        print()
        print(table_markdown(rows, peaks))
        if any("gemm_fb_s" in r for r in rows):
            print()
            print(floor_markdown(rows, peaks))
        if mem:
            print()
            print("Activation cache (bytes kept by fprop for bprop; floor = T*B*(G+2)*H values):")
            print(memory_markdown(mem))
        info["load_end"] = load_average()
        print(f"\nload average at end: {info['load_end']}")
        vs = verdicts(rows, peaks)
        if vs:
            met = sum(v["met"] for v in vs)
            print(f"\nTargets met: {met} of {len(vs)}")
            for v in vs:
                if not v["met"]:
                    bound = ""
                    if "bound" in v:
                        bound = (f"; NumPy lower bound {v['bound']}: "
                                 + ("reachable in principle" if v["reachable"] else "unreachable here"))
                    print(f"  MISS {LABEL[v['cell']]} {v['config']} {v['dtype']} {v['kind']}: "
                          f"{v['value']} (target {v['target']}{bound})")
    if args.profile or args.profile_only:
        for name, cls in classes.items():
            for cfg in args.profile_configs:
                for dt in args.dtypes:
                    res = profile_one(np, name, cls, cfg, dt)
                    print_profile(res)
                    profiles.append(res)
    train = None
    if args.train:
        train = train_race(args, np, torch, log)
        print("\nTraining race:", json.dumps(train, indent=1))
    if args.json:
        write_json(args.json, info, peaks, rows, mem, profiles, train)
        log(f"wrote {args.json}")
    if limiter is not None:
        limiter.restore_original_limits()
    return 0


if __name__ == "__main__":
    sys.exit(main())
