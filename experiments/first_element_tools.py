"""The first-element length sweep (``first_element.py --sweep``): one round per length, the lengths
doubling after --lengths, until every variant (cell x initialisation) fails in every repetition or
--budget ends; the results table, the maximum solvable length per variant, and the figure.

Definitions (also in docs/notes/experiments.md). A run *succeeds* when its test accuracy (within 0.1,
pooled over the fresh test batches) reaches ``--solved``. The *maximum solvable length* of a variant is
the largest tested length at which a majority (more than half) of its repetitions succeed; the limit
then lies between it and the next longer tested length (its uncertainty). ``max_len_all`` is the same
with "every repetition" instead of "a majority".
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread before numpy loads

import functools  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

TOL = 0.1
TABLE_FIELDS = ("variant", "cell", "init", "seq_len", "reps", "solved_reps", "majority_solved", "all_solved",
                "mean_accuracy", "min_accuracy", "max_accuracy", "mean_steps", "mean_wall_s")


def wilson(k: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval (95 % for z = 1.96) of a proportion k / n: always inside [0, 1]."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def variant(cell: str, init: str) -> str:
    return cell if init == "default" else f"{cell} {init}"


def pretty(v: str) -> str:
    """'rnn uniform0.2' -> 'tanh RNN, U(-0.2, 0.2) init' (the figure's labels)."""
    cell, _, init = v.partition(" ")
    name = {"rnn": "tanh RNN", "irnn": "IRNN (ReLU, identity)", "lstm": "LSTM", "gru": "GRU"}[cell]
    return f"{name}, " + ("U(-0.2, 0.2) init" if init == "uniform0.2" else "default init")


def ok_rows(rows):
    return [r for r in rows if r.get("status") == "ok"]


def aggregate(rows, solved: float) -> list[dict]:
    """One table row per (variant, length) from the per-run rows (values may be strings, as read back);
    a (variant, length) with a failed or cut run is left out."""
    groups = {}
    for r in rows:
        groups.setdefault((r["cell"], r["init"], int(r["seq_len"])), []).append(r)
    table = []
    for (cell, init, L), runs in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2])):
        if any(r.get("status") != "ok" for r in runs):
            continue
        acc = np.array([float(r["test_accuracy"]) for r in runs])          # (reps,)
        k = int((acc >= solved).sum())
        table.append({"variant": variant(cell, init), "cell": cell, "init": init, "seq_len": L, "reps": len(runs),
                      "solved_reps": k, "majority_solved": 2 * k > len(runs), "all_solved": k == len(runs),
                      "mean_accuracy": float(acc.mean()), "min_accuracy": float(acc.min()),
                      "max_accuracy": float(acc.max()),
                      "mean_steps": float(np.mean([float(r["steps"]) for r in runs])),
                      "mean_wall_s": float(np.mean([float(r["wall_s"]) for r in runs]))})
    return table


def max_solvable(table, key: str = "majority_solved") -> dict:
    """Per variant: {"max_len": largest tested length with ``key`` true (None: none),
    "next_len": the next longer tested length (None: none tested, the limit is open above),
    "tested": the lengths tested}."""
    out = {}
    for v in dict.fromkeys(r["variant"] for r in table):
        rows = sorted((r for r in table if r["variant"] == v), key=lambda r: r["seq_len"])
        good = [r["seq_len"] for r in rows if str(r[key]) in ("True", "true", "1")]
        best = max(good) if good else None
        longer = [r["seq_len"] for r in rows if best is None or r["seq_len"] > best]
        out[v] = {"max_len": best, "next_len": min(longer) if longer else None,
                  "tested": [r["seq_len"] for r in rows]}
    return out


def answer_text(v: str, m: dict) -> str:
    if m["max_len"] is None:
        return f"{v}: no tested length solved (shortest tested {m['tested'][0]})"
    above = f"< {m['next_len']}" if m["next_len"] else "not bounded (no longer length tested)"
    return f"{v}: {m['max_len']} (the limit is >= {m['max_len']} and {above})"


def alive(table, v: str) -> bool:
    """True while some repetition of variant v still succeeds at its longest tested length."""
    rows = [r for r in table if r["variant"] == v]
    return bool(rows) and max(rows, key=lambda r: r["seq_len"])["solved_reps"] > 0


def run_rounds(fn, args, csv_path, log=print) -> tuple[list, list, str]:
    """One round per length, shortest first: ``args.lengths``, then doubling the longest, up to
    ``args.max_len``. A variant takes part while some repetition succeeded at the previous length (so
    each variant ends at the first length where every repetition fails). Runs still training when
    ``args.budget`` seconds have passed are cut (failed rows, left out of the table), and the sweep ends.
    Returns (all per-run rows, table, why the sweep stopped)."""
    from npnet.training.sweep import run_sweep
    live = [(c, i) for c in args.cells for i in args.inits]
    lengths, rows, k = list(args.lengths), [], 0
    while True:
        L = lengths[k]
        configs = [{"cell": c, "init": i, "seq_len": L, "seed": args.seed + r} for c, i in live for r in range(args.reps)]
        log(f"round T={L}: {len(configs)} runs ({', '.join(variant(*v) for v in live)})")
        new = run_sweep(fn, configs, csv_path, n_jobs=args.jobs, dask_scheduler=args.dask_scheduler,
                        progress=not args.quiet)
        rows += new
        table = aggregate(rows, args.solved)
        cut = [r for r in new if "--budget" in r.get("error", "")]
        if cut:
            return rows, table, (f"--budget {args.budget:g} s ended during the round at T={L}: {len(cut)} of "
                                 f"{len(new)} runs cut (left out; the same command with a larger --budget finishes them)")
        live = [v for v in live if any(r["variant"] == variant(*v) and r["seq_len"] == L and r["solved_reps"] > 0
                                       for r in table)]
        if not live:
            return rows, table, "every variant fails in every repetition at its longest length"
        if k + 1 == len(lengths):
            if 2 * L > args.max_len:
                return rows, table, f"--max-len {args.max_len} reached"
            lengths.append(2 * L)
        k += 1


def write_tables(run, table) -> None:
    """table.csv and table.md (one row per variant x length)."""
    common.write_table(run.path("table.csv"), table, fields=list(TABLE_FIELDS))
    lines = ["| variant | T | solved reps | mean acc | min .. max acc | mean steps | mean wall s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['variant']} | {r['seq_len']} | {r['solved_reps']}/{r['reps']} | {r['mean_accuracy']:.3f} | "
              f"{r['min_accuracy']:.3f} .. {r['max_accuracy']:.3f} | {r['mean_steps']:.0f} | {r['mean_wall_s']:.1f} |"
              for r in table]
    with open(run.path("table.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(path, rows, table, answers: dict, solved: float) -> None:
    """Each run's accuracy (pooled over its fresh test batches) with a bar from the worst to the best
    test batch (always inside [0, 1]), offset per variant and spread per repetition on the log-length
    axis so no marker hides another; a line through the mean over repetitions; a star at each variant's
    maximum solvable length."""
    fig, ax = common.figure(7.5, 4.4)
    a = ax[0, 0]
    variants = list(dict.fromkeys(r["variant"] for r in table))
    for vi, v in enumerate(variants):
        mine = [r for r in ok_rows(rows) if variant(r["cell"], r["init"]) == v]
        seeds = sorted({int(r["seed"]) for r in mine})
        centre = 1.06 ** (vi - (len(variants) - 1) / 2)
        color = f"C{vi}"
        for r in mine:
            j = seeds.index(int(r["seed"])) - (len(seeds) - 1) / 2
            x = int(r["seq_len"]) * centre * 1.015 ** j
            acc, lo, hi = float(r["test_accuracy"]), float(r["batch_acc_min"]), float(r["batch_acc_max"])
            a.errorbar([x], [acc], yerr=[[acc - lo], [hi - acc]], fmt="o", ms=3.5, color=color, alpha=0.55,
                       elinewidth=1, capsize=2)
        t = sorted((r for r in table if r["variant"] == v), key=lambda r: r["seq_len"])
        a.plot([r["seq_len"] * centre for r in t], [r["mean_accuracy"] for r in t], "-", color=color, lw=1.5,
               label=f"{pretty(v)}: max solvable T = {answers[v]['max_len'] or 'none'}")
        if answers[v]["max_len"]:
            best = next(r for r in t if r["seq_len"] == answers[v]["max_len"])
            a.plot([best["seq_len"] * centre], [best["mean_accuracy"]], "*", ms=15, color=color, markeredgecolor="k")
    a.axhline(solved, color="k", ls=":", lw=1, label=f"success threshold ({solved:g})")
    a.axhline(TOL, color="gray", ls="--", lw=1, label=f"answer 0 ({TOL:g})")
    lengths = sorted({r["seq_len"] for r in table})
    a.set_xscale("log")
    a.minorticks_off()
    a.set_xticks(lengths, [str(v) for v in lengths])
    a.set_xlabel("sequence length T (time steps, log scale)")
    a.set_ylabel(f"test accuracy (share within {TOL:g})")
    a.set_ylim(0, 1.03)
    a.set_title("first element: each run (bar: worst..best fresh test batch), line: mean over runs,\n"
                "star: max solvable length (majority of runs >= threshold)", fontsize=9)
    a.grid(alpha=0.3)
    a.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def main_sweep(args, sweep_run) -> dict:
    """The sweep command: rounds, table.csv/table.md, sweep.csv, accuracy_vs_length.png, summary.json."""
    run = common.Run(args)
    run.write_config()
    here = os.path.dirname(os.path.abspath(__file__))            # worker processes start afresh
    os.environ["PYTHONPATH"] = os.pathsep.join([here, os.path.dirname(here), os.environ.get("PYTHONPATH", "")])
    skip = ("cell", "init", "seq_len", "seed", "lengths", "cells", "inits", "reps", "jobs", "solved", "budget",
            "max_len", "dask_scheduler")
    base = {k: v for k, v in vars(args).items() if k not in skip}
    base["deadline"] = time.time() + args.budget                 # wall clock, shared with the workers
    log = (lambda m: None) if args.quiet else (lambda m: print(m, flush=True))
    rows, table, reason = run_rounds(functools.partial(sweep_run, base=base), args, run.path("sweep.csv"), log)
    write_tables(run, table)
    answers = max_solvable(table)
    answers_all = max_solvable(table, "all_solved")
    plot(run.path("accuracy_vs_length.png"), rows, table, answers, args.solved)
    cut = sum("--budget" in r.get("error", "") for r in rows)
    failed = sum(r.get("status") != "ok" for r in rows) - cut
    summary = {"headline": "max_solvable_length", "max_solvable_length": {v: m["max_len"] for v, m in answers.items()},
               "limit_below": {v: m["next_len"] for v, m in answers.items()},
               "max_len_all_reps": {v: m["max_len"] for v, m in answers_all.items()},
               "baseline": TOL, "baseline_name": "answer 0", "solved_threshold": args.solved, "runs": len(rows),
               "failed": failed, "cut_by_budget": cut, "stop_reason": reason, "wall_s": round(run.elapsed(), 2)}
    common.write_json(run.path("summary.json"), summary)
    print(f"first_element sweep: maximum solvable length (a majority of {args.reps} runs reach test accuracy "
          f">= {args.solved:g}; answer-0 baseline {TOL:g}):", flush=True)
    for v, m in answers.items():
        print(f"  {answer_text(v, m)}; every run solved up to {answers_all[v]['max_len']}", flush=True)
    print(f"  stopped: {reason}; {len(rows)} runs, {cut} cut by the budget, {failed} failed, "
          f"{run.elapsed():.0f} s -> {run.dir}", flush=True)
    return summary
