#!/usr/bin/env python
"""Benchmark one whole training step: npnet's SequenceRunner.train_step against a PyTorch twin.

Workloads (benchmarks/train_workloads.py): a char LM (one-hot and Embedding read-in), names
(last-step CE with a ragged mask), copy, and a GRU regression; float32 by default. Both sides
run forward, loss, BPTT, global-norm clipping (5) and an Adam update on the same batch, with
the same BLAS / torch threads, in interleaved rounds; the table gives median step times and
npnet / PyTorch. A second table says where npnet's step goes (cells forward and backward,
read-in/out, loss, clipping, optimiser). torch is optional. Run with the native BLAS kernel:

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python benchmarks/bench_train.py
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if __name__ == "__main__" and sys.path and os.path.abspath(sys.path[0]) == HERE:
    sys.path.pop(0)             # the package's modules are imported as benchmarks.<name> only
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import threads  # noqa: E402  (first: pins the BLAS threads before NumPy loads)

threads.pin_env(threads.requested_threads(sys.argv[1:]))

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
from typing import Optional  # noqa: E402

import numpy as np  # noqa: E402

import npnet  # noqa: E402,F401  (loads SciPy's BLAS too, before limit_blas pins every BLAS)

from benchmarks import contenders, machine, timing  # noqa: E402
from benchmarks.train_workloads import PIECES, WORKLOADS, breakdown, npnet_runner, scaled, \
    time_interleaved, torch_step  # noqa: E402

KERNEL_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default=",".join(WORKLOADS),
                    help=f"comma-separated, from {','.join(WORKLOADS)}")
    ap.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    ap.add_argument("--threads", type=int, default=threads.DEFAULT_THREADS, help="BLAS and torch threads")
    ap.add_argument("--repeats", type=int, default=7, help="interleaved rounds")
    ap.add_argument("--block", type=int, default=3, help="steps per contender per round, the first not recorded")
    ap.add_argument("--warmup", type=int, default=3, help="untimed steps per contender first")
    ap.add_argument("--breakdown-steps", type=int, default=7, help="steps timed piece by piece (0: none)")
    ap.add_argument("--clock", default="wall", choices=sorted(timing.CLOCKS),
                    help="wall: perf_counter; cpu: process CPU time (all threads)")
    ap.add_argument("--scale", type=int, default=1, help="divide B, T and H by this (smoke tests)")
    ap.add_argument("--no-torch", action="store_true", help="time npnet only")
    ap.add_argument("--json", default=None, help="write the results to this file")
    args = ap.parse_args(argv)
    names = [w for w in args.workloads.split(",") if w]
    bad = [w for w in names if w not in WORKLOADS]
    if bad or not names:
        ap.error(f"--workloads: unknown {bad or '(empty)'}; expected names from {','.join(WORKLOADS)}")
    for opt in ("threads", "repeats", "block", "scale"):
        if getattr(args, opt) < 1:
            ap.error(f"--{opt} must be >= 1, got {getattr(args, opt)}")
    for opt in ("warmup", "breakdown_steps"):
        if getattr(args, opt) < 0:
            ap.error(f"--{opt.replace('_', '-')} must be >= 0, got {getattr(args, opt)}")
    args.workload_list = names
    return args


def kernel_lines(environ=os.environ) -> list:
    """The BLAS libraries threadpoolctl reports (kernel = its ``architecture``), and a warning
    when the variables that force OpenBLAS onto an older kernel are set."""
    lines = []
    for b in machine.blas_info():
        lines.append(f"threadpool: {b.get('user_api')} {b.get('internal_api')} {b.get('version') or ''} "
                     f"threads={b.get('num_threads')} kernel={b.get('architecture') or '?'} "
                     f"{b.get('library') or ''}".rstrip())
    set_vars = [f"{v}={environ[v]}" for v in KERNEL_VARS if v in environ]
    if set_vars:
        lines.append(f"WARNING: {' '.join(set_vars)} is set: NumPy's OpenBLAS runs an older kernel than this "
                     "CPU's (PyTorch is not affected); rerun with "
                     "env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE")
    return lines


def measure(name: str, args: argparse.Namespace, use_torch: bool) -> dict:
    """One workload: interleaved step times (npnet, PyTorch) and npnet's breakdown."""
    w = scaled(WORKLOADS[name], args.scale)
    runner, np_step = npnet_runner(w, args.dtype)
    steps = {"npnet": np_step}
    if use_torch:
        steps["torch"] = torch_step(w, args.dtype)
    now = timing.CLOCKS[args.clock]
    samples = time_interleaved(steps, args.repeats, args.block, args.warmup, now)
    shapes = w.shapes if args.scale == 1 else f"{w.shapes} (B, T, H divided by {args.scale})"
    row = {"workload": name, "shapes": shapes, "B": w.B, "T": w.T, "H": w.H, "dtype": args.dtype}
    for k, v in samples.items():
        row[f"{k}_s"] = statistics.median(v)
        row[f"{k}_min_s"] = min(v)
    if use_torch:
        row["ratio"] = row["npnet_s"] / row["torch_s"]
    if args.breakdown_steps:
        row["breakdown"] = breakdown(runner, np_step, args.breakdown_steps, now)
    loss = np_step()
    if not np.isfinite(loss):
        raise SystemExit(f"{name}: npnet's loss is not finite ({loss})")
    row["npnet_loss"] = loss
    return row


def fmt(v: Optional[float]) -> str:
    return "-" if v is None else f"{1e3 * v:.2f}"


def tables(rows: list, use_torch: bool) -> str:
    out = ["| workload | shapes | npnet ms | PyTorch ms | npnet / PyTorch |", "|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['ratio']:.2f}" if "ratio" in r else "-"
        out.append(f"| {r['workload']} | {r['shapes']} | {fmt(r['npnet_s'])} | {fmt(r.get('torch_s'))} | {ratio} |")
    if any("breakdown" in r for r in rows):
        out += ["", "Where npnet's step goes (ms per step, median over the breakdown steps; % of the step):", "",
                "| workload | " + " | ".join(PIECES) + " | step |", "|---" * (len(PIECES) + 2) + "|"]
        for r in rows:
            b = r.get("breakdown")
            if b:
                cells = [f"{fmt(b[p])} ({100 * b[p] / b['total']:.0f}%)" if b[p] else "-" for p in PIECES]
                out.append(f"| {r['workload']} | " + " | ".join(cells) + f" | {fmt(b['total'])} |")
    if not use_torch:
        out.append("\n(torch not installed or --no-torch: npnet only)")
    return "\n".join(out)


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    limiter = threads.limit_blas(args.threads)
    torch_version = None if args.no_torch else contenders.import_torch(args.threads)
    use_torch = torch_version is not None
    info = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": machine.git_commit(), **machine.cpu_info(), "numpy": np.__version__,
            "blas": machine.blas_info(), "torch": torch_version, "threads": args.threads,
            "torch_threads": contenders.torch_threads() if use_torch else None,
            "kernel_vars": {v: os.environ.get(v) for v in KERNEL_VARS},
            "clock": args.clock, "repeats": args.repeats, "block": args.block, "warmup": args.warmup,
            "load_start": machine.load_average()}
    print(f"# npnet whole-training-step benchmark, {info['date']}, commit {info['commit']}")
    print(f"machine: {info['cpu']}, {info['logical_cpus']} logical CPUs, NumPy {info['numpy']}, "
          f"torch {torch_version or '(not used)'}; threads: BLAS {args.threads}, torch {info['torch_threads']}")
    print("\n".join(kernel_lines()))
    print(f"load average (1, 5, 15 min) at start: {info['load_start']}")
    print(f"timing: {args.clock} clock, median of {args.repeats} interleaved rounds of {args.block} steps per contender (the first "
          f"not recorded), after {args.warmup} warm-up steps; {args.dtype}; Adam, clip_grad_norm 5\n", flush=True)
    rows = []
    try:
        for name in args.workload_list:
            log(f"timing {name} ...")
            rows.append(measure(name, args, use_torch))
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
    info["load_end"] = machine.load_average()
    print(tables(rows, use_torch))
    print(f"\nload average at end: {info['load_end']}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"info": info, "rows": rows}, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
