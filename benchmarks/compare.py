#!/usr/bin/env python
"""Before/after table of npnet's cell times: a newer checkout's npnet against an older one's.

Two ways:

    python benchmarks/compare.py --before OLD_CHECKOUT [--after NEW_CHECKOUT] [--cells/--configs/--dtypes ...]
        loads the old checkout's npnet as the package ``npnet_before`` beside the new one (by
        default this checkout's ``npnet``; else NEW_CHECKOUT's, as ``npnet_after``) and times
        both in the same process, interleaved round by round (timing.py), so that load from other
        users of a shared machine hits both alike; also checks that both compute the same out and
        dx (``same numbers``: the largest difference, 0 = bit-identical).
    python benchmarks/compare.py --tables before.json after.json
        tabulates two ``bench_rnn.py --json`` files (taken at different times: less reliable).

A row is flagged SLOWER when after / before exceeds 1 + --tolerance (default 0.05) for the
forward or the forward+backward time.
"""
from __future__ import annotations

import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if __name__ == "__main__" and sys.path and os.path.abspath(sys.path[0]) == HERE:
    sys.path.pop(0)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from benchmarks import threads  # noqa: E402  (first: pins the BLAS threads before NumPy loads)

threads.pin_env(threads.requested_threads(sys.argv[1:]))

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
from types import ModuleType  # noqa: E402
from typing import Optional  # noqa: E402

import numpy as np  # noqa: E402

import npnet  # noqa: E402,F401  (loads SciPy's BLAS too, before limit_blas pins every BLAS)

from benchmarks import contenders, machine, report, timing  # noqa: E402
from benchmarks.spec import CELLS, CONFIGS, DTYPES, LABEL, Case  # noqa: E402


def load_checkout(checkout: str, name: str = "npnet_before") -> ModuleType:
    """The npnet package of another checkout, imported under the package name ``name``."""
    init = os.path.join(checkout, "npnet", "__init__.py")
    if not os.path.exists(init):
        raise SystemExit(f"no npnet/__init__.py in {checkout!r}")
    spec = importlib.util.spec_from_file_location(name, init,
                                                  submodule_search_locations=[os.path.dirname(init)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def compare_case(case: Case, before_pkg: ModuleType, after_pkg: ModuleType,
                 opts: timing.TimingOptions) -> dict:
    """Time the new npnet (columns "npnet_*") and the old one ("before_*") on one case, interleaved."""
    B, T, D, H = case.shape
    x, dout = contenders.case_inputs(case)
    name = CELLS[case.cell].npnet_class
    after = contenders.make_cell(getattr(after_pkg, name), case.cell, D, H, case.dtype)
    before = contenders.make_cell(getattr(before_pkg, name), case.cell, D, H, case.dtype)
    out_a, out_b = after.fprop(x)[0], before.fprop(x)[0]
    dx_a, dx_b = after.bprop(dout)[0], before.bprop(dout)[0]
    row = case.row()
    row["max_abs_diff"] = float(max(np.max(np.abs(out_a - out_b)), np.max(np.abs(dx_a - dx_b))))
    field = [contenders.npnet_contender(before, x, dout, "before"), contenders.npnet_contender(after, x, dout)]
    row.update(timing.summarize(timing.time_rounds(field, opts)))
    return row


def from_tables(before_json: str, after_json: str) -> list:
    """Rows of two bench_rnn.py JSON files, matched by (cell, config, dtype)."""
    with open(before_json) as f:
        old = {(r["cell"], r["config"], r["dtype"]): r for r in json.load(f)["rows"]}
    with open(after_json) as f:
        new = json.load(f)["rows"]
    rows = []
    for r in new:
        o = old.get((r["cell"], r["config"], r["dtype"]))
        if o is not None:
            rows.append({**{k: r[k] for k in ("cell", "config", "B", "T", "D", "H", "dtype")},
                         "before_fwd_s": o["npnet_fwd_s"], "before_fb_s": o["npnet_fb_s"],
                         "npnet_fwd_s": r["npnet_fwd_s"], "npnet_fb_s": r["npnet_fb_s"]})
    return rows


def table(rows: list, tolerance: float) -> str:
    """The before/after table; a row is SLOWER when a ratio exceeds 1 + tolerance."""
    lines = ["| cell | cfg (B,T,D,H) | dtype | before fwd ms | after fwd ms | fwd after/before "
             "| before f+b ms | after f+b ms | f+b after/before | same numbers | verdict |",
             "|" + "|".join(["---"] * 11) + "|"]
    for r in rows:
        fwd, fb = r["npnet_fwd_s"] / r["before_fwd_s"], r["npnet_fb_s"] / r["before_fb_s"]
        same = "-" if "max_abs_diff" not in r else ("bit-identical" if r["max_abs_diff"] == 0
                                                    else f"{r['max_abs_diff']:.1e}")
        lines.append(report.md_row([
            LABEL[r["cell"]], f"{r['config']} ({r['B']},{r['T']},{r['D']},{r['H']})", r["dtype"],
            report.fmt_ms(r["before_fwd_s"]), report.fmt_ms(r["npnet_fwd_s"]), f"{fwd:.3f}",
            report.fmt_ms(r["before_fb_s"]), report.fmt_ms(r["npnet_fb_s"]), f"{fb:.3f}", same,
            "SLOWER" if max(fwd, fb) > 1 + tolerance else "ok"]))
    return "\n".join(lines)


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Before/after table of npnet's cell times.",
                                epilog="Configs (B,T,D,H): " + ", ".join(f"{k}={v}" for k, v in CONFIGS.items()))
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--before", metavar="CHECKOUT", help="an older checkout: time both npnets interleaved")
    p.add_argument("--after", metavar="CHECKOUT", help="the newer checkout (default: the one holding this script)")
    what.add_argument("--tables", nargs=2, metavar=("BEFORE_JSON", "AFTER_JSON"),
                      help="compare two bench_rnn.py --json files instead")
    p.add_argument("--cells", default="rnn,lstm,gru", help="comma list of rnn,lstm,gru (default all)")
    p.add_argument("--configs", default="A,B,C,D", help="comma list of A,B,C,D,E (default A,B,C,D; E is the char-LM layer)")
    p.add_argument("--dtypes", default="float32,float64", help="comma list (default both)")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default 5)")
    p.add_argument("--block", type=int, default=3, help="calls per side per round, the first not recorded (default 3)")
    p.add_argument("--warmup", type=int, default=2, help="untimed calls per side first (default 2)")
    p.add_argument("--clock", choices=("wall", "cpu"), default="wall", help="see bench_rnn.py --help")
    p.add_argument("--threads", type=int, default=threads.DEFAULT_THREADS,
                   help=f"BLAS threads (default {threads.DEFAULT_THREADS})")
    p.add_argument("--tolerance", type=float, default=0.05, help="slower than 1 + this is flagged (default 0.05)")
    p.add_argument("--json", metavar="FILE", help="also write the rows to FILE")
    args = p.parse_args(argv)
    args.cells = [c.strip() for c in args.cells.split(",") if c.strip()]
    args.configs = [c.strip().upper() for c in args.configs.split(",") if c.strip()]
    args.dtypes = [d.strip() for d in args.dtypes.split(",") if d.strip()]
    for values, known, what in ((args.cells, CELLS, "cell"), (args.configs, CONFIGS, "config"),
                                (args.dtypes, DTYPES, "dtype")):
        for v in values:
            if v not in known:
                p.error(f"unknown {what} {v!r}; choose from {', '.join(known)}")
    if min(args.repeats, args.block, args.threads) < 1:
        p.error("--repeats, --block and --threads must be >= 1")
    return args


def main(argv: Optional[list] = None) -> int:
    args = parse_args(argv)
    if args.tables:
        rows = from_tables(*args.tables)
    else:
        limiter = threads.limit_blas(args.threads)
        before_pkg = load_checkout(args.before, "npnet_before")
        after_pkg = load_checkout(args.after, "npnet_after") if args.after else npnet
        after = args.after or f"{ROOT} at {machine.git_commit()}"
        opts = timing.TimingOptions(repeats=args.repeats, block=args.block, warmup=args.warmup,
                                    clock=args.clock)
        print(f"# npnet before/after: {args.before} (before) against {after} "
              f"(after); BLAS threads {args.threads}, {args.clock} clock, {args.repeats} rounds of "
              f"{args.block} calls per side, the first not recorded; load {machine.load_average()}")
        rows = []
        for name in args.cells:
            for cfg in args.configs:
                for dt in args.dtypes:
                    print(f"timing {LABEL[name]} {cfg} {dt} ...", file=sys.stderr, flush=True)
                    rows.append(compare_case(Case(name, cfg, dt), before_pkg, after_pkg, opts))
        print(f"load at end: {machine.load_average()}")
        if limiter is not None:
            limiter.restore_original_limits()
    print(table(rows, args.tolerance))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "tolerance": args.tolerance}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
