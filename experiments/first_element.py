"""The first-element task: read T numbers in [-1, 1] and, after the last, output the first.

    python experiments/first_element.py --seq-len 20
    python experiments/first_element.py --sweep --lengths 5,10,20,40 --cells rnn,irnn,lstm,gru --reps 3

A run trains with MSE and reports test_accuracy, the fraction of 1,000 fresh sequences whose
answer is within 0.1 of the first element, beside always answering 0 (~10 %). --sweep trains
every (cell, length, repetition) in parallel worker processes (joblib), writes one sweep.csv
and plots accuracy against length with error bars, marking each cell's longest solved length.
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread before numpy loads

import argparse
import functools
import os
import time

import numpy as np

from npnet import tasks

TOL = 0.1


def within_tol(pred, y, mask=None) -> float:
    """Fraction of answers within TOL of the target."""
    return float((np.abs(np.asarray(pred) - y) < TOL).mean())


def parser():
    p = common.make_parser(
        "first_element", __doc__.split("\n\n")[0].strip(),
        hidden=32, batch_size=64, steps=3000, lr=1e-2, clip=1.0, eval_every=25, target=0.99)
    g = p.add_argument_group("the first-element task")
    g.add_argument("--seq-len", type=common.positive_int, default=20, help="numbers per sequence (T)")
    g.add_argument("--eval-size", type=common.positive_int, default=500, help="held-out sequences for early stopping")
    g.add_argument("--test-size", type=common.positive_int, default=1000, help="fresh sequences for the final test")
    s = p.add_argument_group("sweep")
    s.add_argument("--sweep", action="store_true", help="train every cell x length x repetition")
    s.add_argument("--lengths", type=common.int_list, default=[5, 10, 20, 40], help="sequence lengths")
    s.add_argument("--cells", type=common.str_list(common.CELLS), default=list(common.CELLS), help="cell types")
    s.add_argument("--reps", type=common.positive_int, default=3, help="repetitions (seeds) per setting")
    common.add_sweep_options(s)
    s.add_argument("--solved", type=common.fraction, default=0.9,
                   help="a length counts as solved when the mean test accuracy reaches this")
    return p


def check(args):
    if args.sweep:
        if args.jobs == 0:
            raise ValueError("--jobs must be >= 1 or negative (joblib: -1 = all cores)")


def train_one(args, run=None) -> dict:
    """Train one model on args (a Namespace); return the test numbers (and plots if run is given)."""
    T, dtype = args.seq_len, args.dtype
    quiet_run = run or common.Run(args, folder=False)           # a sweep worker: no folder, no bar

    def batches(rng, n):
        return tasks.first_element_task(args.batch_size, T, rng=rng, dtype=dtype, num_batches=n)

    model = common.build_model(args, 1, 1, return_sequences=False)
    if run is not None:
        run.write_config(input_size=1, output_size=1, params=model.num_params, tolerance=TOL)
        run.log(f"first element: T={T}; {args.cell} H={args.hidden}, {model.num_params} parameters")
    held_out = [tasks.first_element_batch(args.eval_size, T, rng=common.seed_rng(args.seed, "eval"), dtype=dtype)[:2]]
    learner = quiet_run.train(model, "mse", within_tol, batches, held_out)
    x, y, _ = tasks.first_element_batch(args.test_size, T, rng=common.seed_rng(args.seed, "test"), dtype=dtype)
    pred = learner.predict(x)                                     # (N, 1)
    return {"model": model, "learner": learner, "x": x, "y": y, "pred": pred,
            "test_accuracy": within_tol(pred, y), "baseline": within_tol(np.zeros_like(y), y),
            "test_mse": float(np.mean((pred - y) ** 2)), "steps": learner.step,
            "train_s": quiet_run.train_s}


def sweep_run(cell: str, seq_len: int, seed: int, base: dict) -> dict:
    """One sweep run (module level, so joblib can ship it to a worker process)."""
    args = argparse.Namespace(**{**base, "cell": cell, "seq_len": seq_len, "seed": seed,
                                        "sweep": False, "quiet": True, "out": None})
    t0 = time.perf_counter()
    r = train_one(args)
    return {"test_accuracy": r["test_accuracy"], "baseline": r["baseline"], "test_mse": r["test_mse"],
            "steps": r["steps"], "hidden": args.hidden, "wall_s": round(time.perf_counter() - t0, 2)}


def plot_sweep(path, rows, cells, lengths, solved_at, threshold):
    fig, ax = common.figure(6.5, 4)
    a = ax[0, 0]
    for i, cell in enumerate(cells):
        means, stds = [], []
        for L in lengths:
            acc = [float(r["test_accuracy"]) for r in rows
                   if r["cell"] == cell and int(r["seq_len"]) == L and r.get("status") == "ok"]
            means.append(np.mean(acc) if acc else np.nan)
            stds.append(np.std(acc) if acc else np.nan)
        line = a.errorbar(lengths, means, yerr=stds, marker="o", ms=4, capsize=3, label=cell,
                          alpha=0.9, lw=1)
        if solved_at.get(cell):
            a.plot([solved_at[cell]], [np.nanmax(means[:lengths.index(solved_at[cell]) + 1])], "*", ms=14,
                   color=line[0].get_color(), markeredgecolor="k")
    a.axhline(threshold, color="k", ls=":", lw=1, label=f"solved ({threshold:g})")
    a.set_xscale("log")
    a.minorticks_off()
    a.set_xticks(lengths, [str(v) for v in lengths])
    a.set_xlabel("sequence length T")
    a.set_ylabel(f"test accuracy (within {TOL})")
    a.set_title("first element: accuracy vs length (star: longest solved)", fontsize=9)
    a.set_ylim(0, 1.02)
    a.grid(alpha=0.3)
    a.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=80)


def main_sweep(args):
    from npnet.training.sweep import run_sweep

    run = common.Run(args)
    run.write_config()
    # the worker processes must find this folder and npnet (they start afresh)
    here = os.path.dirname(os.path.abspath(__file__))
    os.environ["PYTHONPATH"] = os.pathsep.join([here, os.path.dirname(here), os.environ.get("PYTHONPATH", "")])
    base = {k: v for k, v in vars(args).items()
            if k not in ("cell", "seq_len", "seed", "lengths", "cells", "reps", "jobs", "solved")}
    configs = [{"cell": c, "seq_len": L, "seed": args.seed + r}
               for c in args.cells for L in args.lengths for r in range(args.reps)]
    rows = run_sweep(functools.partial(sweep_run, base=base), configs, run.path("sweep.csv"), n_jobs=args.jobs,
                     dask_scheduler=args.dask_scheduler, progress=not args.quiet)
    solved_at, best = {}, {}
    for c in args.cells:
        for L in args.lengths:
            acc = [float(r["test_accuracy"]) for r in rows if r["cell"] == c and int(r["seq_len"]) == L
                   and r.get("status") == "ok"]
            if acc and np.mean(acc) >= args.solved:
                solved_at[c] = L
        best[c] = solved_at.get(c)
    plot_sweep(run.path("accuracy_vs_length.png"), rows, args.cells, args.lengths, solved_at, args.solved)
    failed = sum(r.get("status") != "ok" for r in rows)
    summary = {"headline": "longest_solved", "longest_solved": best, "baseline": TOL,
               "baseline_name": "answer 0", "solved_threshold": args.solved, "runs": len(rows),
               "failed": failed, "wall_s": round(run.elapsed(), 2)}
    common.write_json(run.path("summary.json"), summary)
    print(f"first_element sweep: longest solved length {best} (accuracy >= {args.solved:g}; "
          f"answer-0 baseline {TOL:g}), {len(rows)} runs, {failed} failed, {run.elapsed():.1f} s -> {run.dir}",
          flush=True)
    return summary


def main(argv=None):
    args = common.parse(parser(), argv, check)
    if args.sweep:
        return main_sweep(args)
    run = common.Run(args)
    r = train_one(args, run)
    common.plot_learning_curve(r["learner"].history, run.path("learning_curve.png"),
                               f"accuracy (within {TOL})", target=args.target, baseline=r["baseline"])
    fig, ax = common.figure(4.2, 3.6)
    a = ax[0, 0]
    a.plot(r["y"][:, 0], r["pred"][:, 0], ".", ms=2, alpha=0.5)
    a.plot([-1, 1], [-1, 1], "k:", lw=1)
    a.fill_between([-1, 1], [-1 - TOL, 1 - TOL], [-1 + TOL, 1 + TOL], color="g", alpha=0.1, lw=0)
    a.set_xlabel("first element")
    a.set_ylabel("prediction")
    a.set_title(f"test set, T={args.seq_len} (band: within {TOL})", fontsize=9)
    fig.tight_layout()
    fig.savefig(run.path("scatter.png"), format="png", dpi=80)
    return run.finish(r["model"], "test_accuracy", r["test_accuracy"], r["baseline"], "answer 0",
                      test_mse=r["test_mse"], seq_len=args.seq_len, test_size=args.test_size)


if __name__ == "__main__":
    main()
