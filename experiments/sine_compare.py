"""``sine.py --compare``: RNN vs LSTM at matched parameter counts, each trained teacher-forced and free
running, reporting the closed-loop MSE beside the predict-zero baseline.

Parameters of a one-layer SequenceModel with input D = 1 and a linear read-out to 1 output:
    tanh RNN  G = 1:  H (D + H + 1) + (H + 1)   = H^2 + 3 H + 1
    LSTM      G = 4:  4 H (D + H + 1) + (H + 1) = 4 H^2 + 9 H + 1
    GRU       G = 3:  3 H (D + H + 1) + H + (H + 1)
The LSTM keeps --hidden units; every other cell gets the H whose count is closest to the LSTM's
(common.matched_hidden): H_lstm = 32 -> 4,385 parameters, H_rnn = 65 -> 4,421 (+0.8 %).
"""
from __future__ import annotations

import common  # first: pins BLAS to one thread before numpy loads

import argparse  # noqa: E402
import csv  # noqa: E402
import functools  # noqa: E402
import os  # noqa: E402

MODES = ("teacher", "free")
FIELDS = ("cell", "hidden", "params", "params_vs_lstm", "train_mode", "closed_loop_mse", "predict_zero_mse",
          "repeat_last_mse", "ratio_to_zero", "steps", "stopped_early", "train_s")


def add_options(g) -> None:
    g.add_argument("--compare", action="store_true",
                   help="train --cells (LSTM with --hidden units, the others resized to about its parameter "
                        "count) with each of --modes, in parallel; table.csv, table.md, compare.png")
    g.add_argument("--cells", type=common.str_list(("rnn", "lstm", "gru")), default=["rnn", "lstm"],
                   help="cells to compare")
    g.add_argument("--modes", type=common.str_list(MODES + ("mixed",)), default=list(MODES),
                   help="training modes to compare (see --train-mode)")
    common.add_sweep_options(g)


def matched(args) -> dict:
    """{cell: (H, parameter count)}: the LSTM with args.hidden, the others matched to it."""
    out = {}
    for cell in args.cells:
        H = args.hidden if cell == "lstm" else common.matched_hidden(cell, 1, args.hidden, args.layers, 1)
        out[cell] = (H, common.count_params(cell, 1, H, args.layers, 1))
    return out


def compare_run(cell: str, hidden: int, train_mode: str, base: dict) -> dict:
    """One run of the comparison in its own sub-folder (module level: joblib ships it to a worker)."""
    import sine
    args = argparse.Namespace(**{**base, "cell": cell, "hidden": hidden, "train_mode": train_mode,
                                 "match_params": False, "compare": False, "quiet": True,
                                 "out": os.path.join(base["out"], f"{cell}-{train_mode}")})
    s = sine.run_one(args)
    return {k: s[k] for k in ("closed_loop_mse", "baseline", "repeat_last_mse", "ratio_to_zero", "steps",
                              "stopped_early", "train_s", "params")}


def table_rows(rows, lstm_params: int) -> list[dict]:
    out = []
    for r in rows:
        if r.get("status") != "ok":
            continue
        out.append({"cell": r["cell"], "hidden": int(r["hidden"]), "params": int(r["params"]),
                    "params_vs_lstm": int(r["params"]) / lstm_params - 1.0, "train_mode": r["train_mode"],
                    "closed_loop_mse": float(r["closed_loop_mse"]), "predict_zero_mse": float(r["baseline"]),
                    "repeat_last_mse": float(r["repeat_last_mse"]), "ratio_to_zero": float(r["ratio_to_zero"]),
                    "steps": int(r["steps"]), "stopped_early": r["stopped_early"], "train_s": float(r["train_s"])})
    return out


def write_markdown(path, table) -> None:
    lines = ["| cell | H | parameters (vs LSTM) | training | closed-loop MSE | predict-zero MSE | ratio | "
             "repeat-last MSE | steps |", "|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {r['cell']} | {r['hidden']} | {r['params']:,} ({100 * r['params_vs_lstm']:+.1f} %) | {r['train_mode']} | "
              f"{r['closed_loop_mse']:.4f} | {r['predict_zero_mse']:.4f} | {r['ratio_to_zero']:.3f} | "
              f"{r['repeat_last_mse']:.4f} | {r['steps']} |" for r in table]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def plot(path, out_dir, table, horizon: int) -> None:
    """Left: closed-loop test MSE per cell and training mode (linear axis from 0) beside the baselines.
    Right: the held-out closed-loop MSE during training (log axis), one line per run."""
    fig, ax = common.figure(11, 4, 1, 2)
    a, b = ax[0, 0], ax[0, 1]
    labels = [f"{r['cell']} H={r['hidden']}\n{r['params']:,} params\n{r['train_mode']}" for r in table]
    mse = [r["closed_loop_mse"] for r in table]
    bars = a.bar(range(len(table)), mse, color=[f"C{['rnn', 'lstm', 'gru'].index(r['cell'])}" for r in table],
                 alpha=0.8)
    for i, (bar, r) in enumerate(zip(bars, table)):
        bar.set_hatch("//" if r["train_mode"] == "teacher" else "")
        a.text(i, r["closed_loop_mse"], f"{r['closed_loop_mse']:.3f}", ha="center", va="bottom", fontsize=8)
    zero = table[0]["predict_zero_mse"] if table else 0.5
    a.axhline(zero, color="k", ls="--", lw=1, label=f"predict zero ({zero:.3f})")
    a.axhline(table[0]["repeat_last_mse"] if table else 0, color="gray", ls=":", lw=1,
              label=f"repeat last sample ({table[0]['repeat_last_mse']:.3f})" if table else None)
    a.set_xticks(range(len(table)), labels, fontsize=7)
    a.set_ylim(0, max(mse + [zero, table[0]["repeat_last_mse"]]) * 1.15 if table else 1)
    a.set_ylabel(f"closed-loop test MSE ({horizon} steps)")
    a.set_title("sine: RNN vs LSTM at matched parameter counts (hatched: teacher forced)", fontsize=9)
    a.legend(fontsize=7, loc="upper right")
    for i, r in enumerate(table):
        path_csv = os.path.join(out_dir, f"{r['cell']}-{r['train_mode']}", "metrics.csv")
        with open(path_csv, newline="") as f:
            ev = [(int(x["step"]), float(x["eval_metric"])) for x in csv.DictReader(f) if x.get("eval_metric")]
        if ev:
            b.plot(*zip(*ev), "-" if r["train_mode"] == "free" else "--", marker="o", ms=2,
                   color=a.patches[i].get_facecolor(), label=f"{r['cell']} {r['train_mode']}")
    b.axhline(zero, color="k", ls="--", lw=1, label="predict zero")
    b.set_yscale("log")
    b.set_xlabel("optimiser step")
    b.set_ylabel("held-out closed-loop MSE (log scale)")
    b.set_title("during training (the --eval-size held-out curves)", fontsize=9)
    b.grid(alpha=0.3)
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, format="png", dpi=100)


def main_compare(args) -> dict:
    from npnet.training.sweep import run_sweep
    run = common.Run(args)
    sizes = matched(args)
    run.write_config(matched={c: {"hidden": h, "params": n} for c, (h, n) in sizes.items()})
    here = os.path.dirname(os.path.abspath(__file__))            # worker processes start afresh
    os.environ["PYTHONPATH"] = os.pathsep.join([here, os.path.dirname(here), os.environ.get("PYTHONPATH", "")])
    lstm_n = common.count_params("lstm", 1, args.hidden, args.layers, 1)
    print("sine --compare: parameter counts (LSTM H=%d: %d)" % (args.hidden, lstm_n), flush=True)
    for c, (h, n) in sizes.items():
        print(f"  {c:4s} H={h:3d}: {n:,} parameters ({100 * (n / lstm_n - 1):+.1f} % vs the LSTM)", flush=True)
    base = {k: v for k, v in vars(args).items() if k not in ("cells", "modes", "jobs", "dask_scheduler")}
    base["out"] = run.dir
    configs = [{"cell": c, "hidden": sizes[c][0], "train_mode": m} for c in args.cells for m in args.modes]
    rows = run_sweep(functools.partial(compare_run, base=base), configs, run.path("compare.csv"), n_jobs=args.jobs,
                     dask_scheduler=args.dask_scheduler, progress=not args.quiet)
    table = table_rows(rows, lstm_n)
    common.write_table(run.path("table.csv"), table, fields=list(FIELDS))
    write_markdown(run.path("table.md"), table)
    plot(run.path("compare.png"), run.dir, table, args.seq_len - args.prime)
    best = min(table, key=lambda r: r["closed_loop_mse"]) if table else None
    summary = {"headline": "best", "best": best and f"{best['cell']} {best['train_mode']}",
               "closed_loop_mse": {f"{r['cell']} {r['train_mode']}": r["closed_loop_mse"] for r in table},
               "params": {c: n for c, (h, n) in sizes.items()}, "hidden": {c: h for c, (h, n) in sizes.items()},
               "baseline": table[0]["predict_zero_mse"] if table else None, "baseline_name": "predict-zero",
               "steps": args.steps, "failed": sum(r.get("status") != "ok" for r in rows),
               "wall_s": round(run.elapsed(), 2)}
    common.write_json(run.path("summary.json"), summary)
    for r in table:
        print(f"  {r['cell']:4s} H={r['hidden']:3d} {r['train_mode']:7s}: closed-loop MSE {r['closed_loop_mse']:.4f} "
              f"(predict-zero {r['predict_zero_mse']:.4f}, ratio {r['ratio_to_zero']:.3f}), {r['steps']} steps", flush=True)
    print(f"sine --compare: lowest closed-loop MSE: {summary['best']}; {len(rows)} runs, {summary['failed']} failed, "
          f"{run.elapsed():.0f} s -> {run.dir}", flush=True)
    return summary
