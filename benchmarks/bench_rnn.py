#!/usr/bin/env python
"""Benchmark npnet's recurrent cells (RNN tanh, LSTM, GRU) against the plain reference and PyTorch.

A script, not a test: it prints one timing table (median forward and forward+backward time
per cell, configuration and dtype), the GEMM peak of this machine, the activation-cache
memory, and optionally a profile (--profile) and an end-to-end training race (--train).
torch is optional: without it the PyTorch columns are skipped. Run ``--help`` for options.

This file is the CLI; the pieces live in the ``benchmarks`` package beside it (threads,
machine, contenders, timing, floor, memory, profiling, race, report: see benchmarks/__init__.py).
The reference column is npnet.cells.reference (its contract is in benchmarks/contenders.py);
a cell whose reference is missing or fails gets the column skipped with a message.
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
from typing import Optional  # noqa: E402

import numpy as np  # noqa: E402

import npnet  # noqa: E402,F401  (loads SciPy's BLAS too, before limit_blas pins every BLAS)

from benchmarks import contenders, floor, machine, memory, profiling, race, report, timing  # noqa: E402
from benchmarks.spec import CELLS, CONFIGS, DTYPES, LABEL, Case, flops  # noqa: E402


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def measure(case: Case, cls: type, reference: Optional[tuple], use_torch: bool,
            opts: timing.TimingOptions, with_floor: bool) -> dict:
    """Time every contender for one case, interleaving them round by round (see timing.py)."""
    B, T, D, H = case.shape
    x, dout = contenders.case_inputs(case)
    cell = contenders.make_cell(cls, case.cell, D, H, case.dtype)
    row, notes, field = case.row(), [], [contenders.npnet_contender(cell, x, dout)]
    if reference is not None:
        try:
            ref, checks, ref_notes = contenders.reference_contender(case.cell, reference, cell, x, dout)
            field.append(ref)
            row.update(checks)
            notes += ref_notes
        except Exception as exc:
            notes.append(f"reference call failed: {type(exc).__name__}: {exc}")
    if use_torch:
        torch_side, checks = contenders.torch_contender(case, cell, x, dout)
        field.append(torch_side)
        row.update(checks)
    row.update(timing.summarize(timing.time_rounds(field, opts)))
    f_fwd, f_fb = flops(case.shape, case.gates)
    row["gflops_fwd"] = f_fwd / row["npnet_fwd_s"] / 1e9
    row["gflops_fb"] = f_fb / row["npnet_fb_s"] / 1e9
    if use_torch:
        row["torch_gflops_fb"] = f_fb / row["torch_fb_s"] / 1e9
    if with_floor:
        row.update(floor.gemm_floor(case, max(3, opts.repeats // 2), opts.now))
        row["npnet_fb_over_gemm"] = row["npnet_fb_s"] / row["gemm_fb_s"]
        row["gemm_gflops_fb"] = f_fb / row["gemm_fb_s"] / 1e9
    row["notes"] = notes
    cell.clear_cache()
    return row


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Time npnet's RNN/LSTM/GRU fast path against the plain reference and PyTorch.",
        epilog="Configs (B,T,D,H): " + ", ".join(f"{k}={v}" for k, v in CONFIGS.items()) +
               ". The machine may be shared: every time is a median over --repeats interleaved rounds.")
    p.add_argument("--cells", default="rnn,lstm,gru", help="comma list of rnn,lstm,gru (default all)")
    p.add_argument("--configs", default="A,B,C,D", help="comma list of A,B,C,D,E (default A,B,C,D; E is the char-LM layer)")
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
    p.add_argument("--threads", type=int, default=threads.DEFAULT_THREADS,
                   help=f"BLAS and torch threads (default {threads.DEFAULT_THREADS})")
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


def run_info(args: argparse.Namespace, torch_version: Optional[str]) -> dict:
    """The JSON file's ``info``: date, commit, machine, BLAS, torch and the timing options."""
    return {"date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": machine.git_commit(), "numpy": np.__version__, "threads": args.threads,
            **machine.cpu_info(), "blas": machine.blas_info(), "torch": torch_version,
            "torch_threads": contenders.torch_threads() if torch_version else None,
            "repeats": args.repeats, "block": args.block, "ref_repeats": args.ref_repeats,
            "clock": args.clock, "warmup": args.warmup, "load_start": machine.load_average()}


def load_cells(args: argparse.Namespace) -> tuple:
    """({cell: npnet class}, {cell: reference functions}) for the selected cells."""
    classes, refs = {}, {}
    for name in args.cells:
        cls, why = contenders.load_cell_class(name)
        if cls is None:
            log(f"skipping {LABEL[name]}: {why}")
            continue
        classes[name] = cls
        if not args.no_reference and not args.profile_only:
            refs[name], why = contenders.reference_functions(name)
            if why:
                log(f"{LABEL[name]}: reference column skipped: {why}")
    return classes, refs


def time_all(args: argparse.Namespace, info: dict, peaks: dict, classes: dict, refs: dict,
             use_torch: bool) -> tuple:
    """The timing table (and memory table) over every selected case; (rows, mem)."""
    opts = timing.TimingOptions(repeats=args.repeats, block=args.block, ref_repeats=args.ref_repeats,
                                warmup=args.warmup, clock=args.clock)
    rows, mem = [], []
    for name, cls in classes.items():
        for cfg in args.configs:
            for dt in args.dtypes:
                case = Case(name, cfg, dt)
                log(f"timing {LABEL[name]} {cfg} {dt} ...")
                row = measure(case, cls, refs.get(name), use_torch, opts, args.gemm_floor)
                for n in row["notes"]:
                    log(f"  note: {n}")
                rows.append(row)
                if not args.no_memory:
                    mem.append(memory.memory_one(case, cls, args.windows))
                if args.json:     # partial results survive an interrupted run
                    report.write_json(args.json, info, peaks, rows, mem, [], None, partial=True)
    print()
    print(report.table_markdown(rows, peaks))
    if any("gemm_fb_s" in r for r in rows):
        print()
        print(report.floor_markdown(rows, peaks))
    if mem:
        print()
        print("Activation cache (bytes kept by fprop for bprop; floor = T*B*(G+2)*H values):")
        print(report.memory_markdown(mem))
    info["load_end"] = machine.load_average()
    print(f"\nload average at end: {info['load_end']}")
    vs = report.verdicts(rows, peaks)
    if vs:
        print(report.verdicts_text(vs))
    return rows, mem


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    limiter = threads.limit_blas(args.threads)
    if limiter is None:
        log("threadpoolctl not installed: BLAS threads pinned through environment variables only")
    torch_version = None
    if not args.no_torch:
        torch_version = contenders.import_torch(args.threads)
        if torch_version is None:
            log("torch not installed: PyTorch columns skipped")
    info = run_info(args, torch_version)
    print(report.header_text(info))
    if args.clock == "cpu" and args.threads > 1:
        log("warning: --clock cpu with --threads > 1 sums the CPU time of all threads (spin-waits too)")
    print(report.method_text(info))
    clock = timing.CLOCKS[args.clock]

    peaks = {}
    if args.train_only:
        args.train, args.profile_only = True, True
        args.cells = []
    if not args.no_peak and not args.profile_only:
        for dt in args.dtypes:
            peaks[dt] = floor.gemm_peak(dt, args.peak_n, 5 if not args.quick else 3, clock)
            print(f"GEMM peak {dt}: {peaks[dt]['median_gflops']:.1f} GFLOP/s median "
                  f"(best {peaks[dt]['best_gflops']:.1f}) for {args.peak_n}^3 matmul")
    classes, refs = load_cells(args)
    rows, mem, profiles = [], [], []
    if not args.profile_only:
        rows, mem = time_all(args, info, peaks, classes, refs, torch_version is not None)
    if args.profile or args.profile_only:
        for name, cls in classes.items():
            for cfg in args.profile_configs:
                for dt in args.dtypes:
                    res = profiling.profile_one(Case(name, cfg, dt), cls, clock)
                    print(report.profile_text(res))
                    profiles.append(res)
    train = None
    if args.train:
        train = race.train_race(race_options(args), torch_version is not None, log)
        print("\nTraining race:", json.dumps(train, indent=1))
    if args.json:
        report.write_json(args.json, info, peaks, rows, mem, profiles, train)
        log(f"wrote {args.json}")
    if limiter is not None:
        limiter.restore_original_limits()
    return 0


def race_options(args: argparse.Namespace) -> race.RaceOptions:
    return race.RaceOptions(seq_len=args.train_seq_len, hidden=args.train_hidden, lr=args.train_lr,
                            batch=args.train_batch, dtype=args.train_dtype, target=args.train_target,
                            eval_every=args.train_eval_every, max_steps=args.train_max_steps,
                            extra_args=tuple(args.train_args))


if __name__ == "__main__":
    sys.exit(main())
