"""The first-element task: read T numbers in [-1, 1] and, after the last, output the first.

    python experiments/first_element.py --seq-len 20
    python experiments/first_element.py --sweep        # the maximum solvable length (<= 8 min)

A run trains with MSE and reports test_accuracy, the fraction of --test-batches fresh batches of
--test-size sequences whose answer is within 0.1 of the first element (also the worst and best
batch), beside always answering 0 (~10 %). --init uniform0.2 is the exercise's own setup: every
weight matrix drawn from U(-0.2, 0.2), biases zero. --sweep trains every (cell, init, length,
repetition) in parallel worker processes (joblib), one length per round, a variant going on while
some repetition still succeeds, the lengths doubling after --lengths, until --budget seconds
(first_element_tools.py). It writes sweep.csv (one row per run), table.csv and table.md (one row
per variant x length), accuracy_vs_length.png and summary.json, and prints the maximum solvable
length of each variant.
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread before numpy loads

import argparse
import time

import numpy as np

import first_element_tools
import npnet
from npnet import tasks

TOL = 0.1
INITS = ("default", "uniform0.2")


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
    g.add_argument("--test-size", type=common.positive_int, default=200, help="sequences per fresh test batch")
    g.add_argument("--test-batches", type=common.positive_int, default=5,
                   help="fresh test batches (accuracy pooled over all; worst and best batch kept)")
    g.add_argument("--init", choices=INITS, default="default",
                   help="default: the cell's initialisers; uniform0.2: the exercise's setup, every weight "
                        "matrix U(-0.2, 0.2), biases zero")
    s = p.add_argument_group("sweep")
    s.add_argument("--sweep", action="store_true",
                   help="train every cell x init x length x repetition; double the longest length while "
                        "some repetition still succeeds")
    s.add_argument("--lengths", type=common.int_list, default=[5, 10, 20, 30, 40],
                   help="sequence lengths of round 1")
    s.add_argument("--cells", type=common.str_list(common.CELLS), default=["rnn"], help="cell types")
    s.add_argument("--inits", type=common.str_list(INITS), default=list(INITS), help="initialisations (see --init)")
    s.add_argument("--reps", type=common.positive_int, default=3, help="repetitions (seeds) per setting")
    s.add_argument("--budget", type=common.positive_float, default=420.0,
                   help="seconds for the whole sweep: runs still training then are cut (a failed row; the same "
                        "command with the same --out and a larger budget finishes them) and no longer length starts")
    s.add_argument("--max-len", type=common.positive_int, default=1280, help="never test lengths above this")
    common.add_sweep_options(s)
    s.add_argument("--solved", type=common.fraction, default=0.9,
                   help="a run succeeds when its test accuracy reaches this; a length is solvable when a "
                        "majority of repetitions succeed")
    return p


def check(args):
    if args.sweep:
        if args.jobs == 0:
            raise ValueError("--jobs must be >= 1 or negative (joblib: -1 = all cores)")
        if max(args.lengths) > args.max_len:
            raise ValueError(f"--lengths {max(args.lengths)} is above --max-len {args.max_len}")


def exercise_init(model, rng) -> None:
    """The exercise's initialisation: every weight matrix U(-0.2, 0.2), every bias 0 (in place)."""
    for name, p in model.params.items():
        p[...] = 0.0 if p.ndim == 1 else rng.uniform(-0.2, 0.2, p.shape)


def train_one(args, run=None) -> dict:
    """Train one model on args (a Namespace); return the test numbers (and plots if run is given)."""
    T, dtype = args.seq_len, args.dtype
    quiet_run = run or common.Run(args, folder=False)           # a sweep worker: no folder, no bar

    def batches(rng, n):
        return tasks.first_element_task(args.batch_size, T, rng=rng, dtype=dtype, num_batches=n)

    model = common.build_model(args, 1, 1, return_sequences=False)
    if args.init == "uniform0.2":
        exercise_init(model, common.seed_rng(args.seed, "model"))
    if run is not None:
        run.write_config(input_size=1, output_size=1, params=model.num_params, tolerance=TOL)
        run.log(f"first element: T={T}; {args.cell} H={args.hidden}, {model.num_params} parameters")
    held_out = [tasks.first_element_batch(args.eval_size, T, rng=common.seed_rng(args.seed, "eval"), dtype=dtype)[:2]]
    deadline = getattr(args, "deadline", None)                   # a sweep's --budget, as time.time()
    limit = [npnet.TimeLimit(max(deadline - time.time(), 1e-3))] if deadline else []
    learner = quiet_run.train(model, "mse", within_tol, batches, held_out, callbacks=limit)
    if limit and limit[0].elapsed >= limit[0].seconds and not quiet_run.stopped_early:
        raise TimeoutError(f"cut by --budget after {learner.step} of {args.steps} steps")
    rng = common.seed_rng(args.seed, "test")
    tests = [tasks.first_element_batch(args.test_size, T, rng=rng, dtype=dtype) for _ in range(args.test_batches)]
    x, y = np.concatenate([b.x for b in tests]), np.concatenate([b.y for b in tests])
    pred = learner.predict(x)                                     # (N, 1), N = batches x size
    per_batch = [within_tol(p, t) for p, t in zip(np.split(pred, args.test_batches), np.split(y, args.test_batches))]
    return {"model": model, "learner": learner, "x": x, "y": y, "pred": pred, "batch_accuracy": per_batch,
            "test_accuracy": within_tol(pred, y), "baseline": within_tol(np.zeros_like(y), y),
            "test_mse": float(np.mean((pred - y) ** 2)), "steps": learner.step,
            "train_s": quiet_run.train_s}


def sweep_run(cell: str, init: str, seq_len: int, seed: int, base: dict) -> dict:
    """One sweep run (module level, so joblib can ship it to a worker process)."""
    args = argparse.Namespace(**{**base, "cell": cell, "init": init, "seq_len": seq_len, "seed": seed,
                                 "sweep": False, "quiet": True, "out": None})
    t0 = time.perf_counter()
    r = train_one(args)
    n = args.test_size * args.test_batches
    lo, hi = first_element_tools.wilson(r["test_accuracy"] * n, n)         # 95 % interval of the pooled rate
    return {"test_accuracy": r["test_accuracy"], "wilson_lo": lo, "wilson_hi": hi, "batch_acc_min": min(r["batch_accuracy"]),
            "batch_acc_max": max(r["batch_accuracy"]), "batch_accuracy": common.json_floats(r["batch_accuracy"]),
            "baseline": r["baseline"], "test_mse": r["test_mse"], "steps": r["steps"], "hidden": args.hidden,
            "wall_s": round(time.perf_counter() - t0, 2)}


def main(argv=None):
    args = common.parse(parser(), argv, check)
    if args.sweep:
        return first_element_tools.main_sweep(args, sweep_run)
    run = common.Run(args)
    r = train_one(args, run)
    common.plot_learning_curve(r["learner"].history, run.path("learning_curve.png"),
                               f"accuracy (within {TOL})", target=args.target, baseline=r["baseline"], loss_name="MSE",
                               title=f"first element (T={args.seq_len}): {args.cell} H={args.hidden}")
    fig, ax = common.figure(4.2, 3.6)
    a = ax[0, 0]
    a.plot(r["y"][:, 0], r["pred"][:, 0], ".", ms=2, alpha=0.5)
    a.plot([-1, 1], [-1, 1], "k:", lw=1)
    a.fill_between([-1, 1], [-1 - TOL, 1 - TOL], [-1 + TOL, 1 + TOL], color="g", alpha=0.1, lw=0)
    a.set_xlabel("first element")
    a.set_ylabel("prediction")
    a.set_title(f"{args.cell} ({args.init} init), T={args.seq_len}: test set (band: within {TOL})", fontsize=9)
    fig.tight_layout()
    fig.savefig(run.path("scatter.png"), format="png", dpi=80)
    return run.finish(r["model"], "test_accuracy", r["test_accuracy"], r["baseline"], "answer 0",
                      test_mse=r["test_mse"], seq_len=args.seq_len, init=args.init,
                      test_size=args.test_size * args.test_batches, batch_accuracy=r["batch_accuracy"])


if __name__ == "__main__":
    main()
